#!/bin/bash
# Confinement (docs/formats.md): backing files, VMDK parents and extents
# never make vab read a host file the user did not name.  Each hostile
# image is refused by convert (every output format) and inspect with
# exit 1, an error naming the image, the name and the reason, and no
# output file; FIFOs never block; --trust-backing (and the template's
# source.image.trust_backing) reads a trusted chain in another folder.
. "$SRCDIR/tests/formats/functions.sh"
require qemu-img qemu-io timeout python3

tmp=$(realpath "$tmp")
a=$tmp/a b=$tmp/b out=$tmp/out
mkdir -p "$a" "$b" "$out"
formats="raw qcow2 vmdk vhd vhdx"

# refused IMAGE "error text" [inspect|convert-only]: exit 1, the text,
# no output and no temporary file, for every output format and inspect.
refused() {
  local img=$1 text=$2 fmt
  for fmt in $formats; do
    timeout 20 "$VAB" convert -q -O "$fmt" "$img" "$out/x.$fmt" 2>"$tmp/err"
    local got=$?
    [ $got = 1 ] || problem "$(basename "$img") -> $fmt: exit $got, want 1"
    grep -qxF -- "vab convert: error: $text" "$tmp/err" ||
      problem "$(basename "$img") -> $fmt: stderr: $(cat "$tmp/err")"
    [ ! -e "$out/x.$fmt" ] || problem "$(basename "$img") -> $fmt: output left"
  done
  no_leftovers "$out"
  timeout 20 "$VAB" inspect "$img" >"$tmp/stdout" 2>"$tmp/err"
  local got=$?
  [ $got = 1 ] || problem "$(basename "$img"): inspect exit $got, want 1"
  grep -qxF -- "vab inspect: error: $text" "$tmp/err" ||
    problem "$(basename "$img"): inspect stderr: $(cat "$tmp/err")"
}

outside() {  # IMAGE NAME RESOLVED [WHAT]
  echo "'$1' names ${4:-backing file} '$2', which resolves to '$3', outside the folder '$(dirname "$1")' of the image"
}

# 1. The issue's example: an absolute backing name.
qemu-img create -q -f qcow2 -F raw -b /etc/shadow "$a/evil.qcow2" 1M
refused "$a/evil.qcow2" "$(outside "$a/evil.qcow2" /etc/shadow /etc/shadow)"

# 2. ../ out of the folder, to a file that exists.
make_data mixed "$b/base.raw" 4194304
qemu-img create -q -f qcow2 -F raw -b ../b/base.raw "$a/dotdot.qcow2" 4M
refused "$a/dotdot.qcow2" "$(outside "$a/dotdot.qcow2" ../b/base.raw "$b/base.raw")"

# 3. A format-less backing name (qemu-img no longer writes one; drop the
#    backing format header extension by hand).
qemu-img create -q -f qcow2 -F raw -b /etc/passwd "$a/nofmt.qcow2" 1M
python3 - "$a/nofmt.qcow2" <<'PY'
import struct, sys
p = sys.argv[1]
d = bytearray(open(p, "rb").read())
hlen = struct.unpack(">I", d[100:104])[0]
pos = hlen
while True:
    t, n = struct.unpack(">II", d[pos:pos + 8])
    if t == 0:
        break
    if t == 0xE2792ACA:       # backing format: make it an unknown extension
        d[pos:pos + 4] = struct.pack(">I", 0x12345678)
    pos += 8 + ((n + 7) & ~7)
open(p, "wb").write(d)
PY
qemu-img info "$a/nofmt.qcow2" | grep -q "backing file format" &&
  problem "nofmt.qcow2 still has a backing format"
refused "$a/nofmt.qcow2" "$(outside "$a/nofmt.qcow2" /etc/passwd /etc/passwd)"

# 4. A symlink inside the folder that leads out of it.
ln -s /etc/passwd "$a/link.raw"
qemu-img create -q -f qcow2 -F raw -b link.raw -u "$a/symlink.qcow2" 1M
refused "$a/symlink.qcow2" "$(outside "$a/symlink.qcow2" link.raw /etc/passwd)"

# 5. A FIFO as backing file: refused at once, never waited on.
mkfifo "$a/fifo"
qemu-img create -q -f qcow2 -F raw -b fifo -u "$a/fifo-backing.qcow2" 1M
refused "$a/fifo-backing.qcow2" \
  "'$a/fifo-backing.qcow2' names backing file 'fifo', which is a FIFO, not a regular file"

# 6. Devices as backing files, even inside the folder.
qemu-img create -q -f qcow2 -F raw -b /dev/zero -u "$a/chardev.qcow2" 1M
refused "$a/chardev.qcow2" \
  "'$a/chardev.qcow2' names backing file '/dev/zero', which is a character device, not a regular file"
blk=$(find /dev -maxdepth 1 -type b 2>/dev/null | head -1)
if [ -n "$blk" ]; then
  ln -s "$blk" "$a/disk.blk"
  qemu-img create -q -f qcow2 -F raw -b disk.blk -u "$a/blockdev.qcow2" 1M
  refused "$a/blockdev.qcow2" \
    "'$a/blockdev.qcow2' names backing file 'disk.blk', which is a block device, not a regular file"
fi

# 7. A FIFO as SRC: a usage error (exit 2) at once, no output.
for cmd in "inspect $a/fifo" "convert -q -O raw $a/fifo $out/fifo.raw"; do
  timeout 10 "$VAB" $cmd >/dev/null 2>"$tmp/err"
  got=$?
  [ $got = 2 ] || problem "$cmd: exit $got, want 2 (124 = it blocked)"
  grep -qF "'$a/fifo' is a FIFO, not a regular file" "$tmp/err" ||
    problem "$cmd: stderr: $(cat "$tmp/err")"
done
[ ! -e "$out/fifo.raw" ] || problem "fifo convert left an output"

# 8. A chain inside the folder needs no option and reads right.
qemu-img convert -f raw -O qcow2 "$b/base.raw" "$a/base.qcow2"
qemu-img create -q -f qcow2 -F qcow2 -b base.qcow2 "$a/top.qcow2" 4M
qemu-io -f qcow2 -c "write -P 0x7e 1M 64k" "$a/top.qcow2" >/dev/null
for fmt in $formats; do
  "$VAB" convert -q -O "$fmt" "$a/top.qcow2" "$out/top.$fmt" ||
    problem "top.qcow2 -> $fmt failed"
  qemu-img compare -q "$a/top.qcow2" "$out/top.$fmt" 2>/dev/null ||
    [ "$fmt" = vhd ] ||   # VHD rounds its size up: compare the data only
    problem "top.qcow2 -> $fmt differs"
done
"$VAB" inspect "$a/top.qcow2" >/dev/null || problem "inspect top.qcow2"

# 9. --trust-backing reads a trusted chain in another folder.
for fmt in $formats; do
  "$VAB" convert -q --trust-backing -O "$fmt" "$a/dotdot.qcow2" "$out/t.$fmt" ||
    problem "--trust-backing dotdot.qcow2 -> $fmt failed"
  [ "$fmt" = vhd ] || qemu-img compare -q "$a/dotdot.qcow2" "$out/t.$fmt" ||
    problem "--trust-backing dotdot.qcow2 -> $fmt differs"
done
cmp -s "$b/base.raw" "$out/t.raw" || problem "trusted chain read wrong data"
"$VAB" inspect --trust-backing "$a/dotdot.qcow2" >"$tmp/stdout" ||
  problem "inspect --trust-backing"
grep -qF "../b/base.raw" "$tmp/stdout" || problem "inspect shows no chain"
# -o backing_file=X is named by the user, but X's own chain is not.
"$VAB" convert -q -O qcow2 -o backing_file=dotdot.qcow2 "$b/base.raw" \
  "$a/layer.qcow2" 2>"$tmp/err"
[ $? = 1 ] && grep -qxF "vab convert: error: $(outside "$a/dotdot.qcow2" ../b/base.raw "$b/base.raw")" "$tmp/err" ||
  problem "backing_file= with a chain out of its folder: $(cat "$tmp/err")"
[ ! -e "$a/layer.qcow2" ] || problem "backing_file=: output left"
"$VAB" convert -q --trust-backing -O qcow2 -o backing_file=dotdot.qcow2 \
  "$b/base.raw" "$a/layer.qcow2" && qemu-img compare -q "$b/base.raw" "$a/layer.qcow2" ||
  problem "--trust-backing -o backing_file=dotdot.qcow2"
# Trust lifts the folder rule only: FIFOs and devices stay refused.
timeout 10 "$VAB" convert -q --trust-backing -O raw "$a/fifo-backing.qcow2" \
  "$out/tf.raw" 2>/dev/null
[ $? = 1 ] || problem "--trust-backing: a FIFO backing file not refused"

# 10. VMDK delta disks read through their parent (CID checked).
qemu-img create -q -f vmdk "$a/parent.vmdk" 4M
qemu-io -f vmdk -c "write -P 0x5a 0 128k" -c "write -P 0x11 3M 64k" \
  "$a/parent.vmdk" >/dev/null
qemu-img create -q -f vmdk -b parent.vmdk -F vmdk "$a/child.vmdk"
qemu-io -f vmdk -c "write -P 0x33 64k 64k" -c "write -P 0x44 2M 4k" \
  "$a/child.vmdk" >/dev/null
for fmt in $formats; do
  "$VAB" convert -q -O "$fmt" "$a/child.vmdk" "$out/child.$fmt" ||
    problem "child.vmdk -> $fmt failed"
  [ "$fmt" = vhd ] || qemu-img compare -q "$a/child.vmdk" "$out/child.$fmt" ||
    problem "child.vmdk -> $fmt differs from qemu's reading"
done
"$VAB" inspect "$a/child.vmdk" >"$tmp/stdout" || problem "inspect child.vmdk"
grep -q "^backing file: *parent.vmdk" "$tmp/stdout" ||
  problem "inspect child.vmdk: $(cat "$tmp/stdout")"

# ... a parent outside the folder is refused, and trusted with the option.
qemu-img create -q -f vmdk "$b/far-parent.vmdk" 4M
qemu-io -f vmdk -c "write -P 0x66 0 64k" "$b/far-parent.vmdk" >/dev/null
qemu-img create -q -f vmdk -b ../b/far-parent.vmdk -F vmdk "$a/far-child.vmdk"
refused "$a/far-child.vmdk" \
  "$(outside "$a/far-child.vmdk" ../b/far-parent.vmdk "$b/far-parent.vmdk" parent)"
"$VAB" convert -q --trust-backing -O qcow2 "$a/far-child.vmdk" "$out/far.qcow2" &&
  qemu-img compare -q "$a/far-child.vmdk" "$out/far.qcow2" ||
  problem "--trust-backing far-child.vmdk"

# ... a parent changed since the child was made gives wrong data: refused.
cp "$a/parent.vmdk" "$a/parent2.vmdk"
qemu-img create -q -f vmdk -b parent2.vmdk -F vmdk "$a/stale.vmdk"
qemu-io -f vmdk -c "write -P 0x01 0 64k" "$a/parent2.vmdk" >/dev/null
# qemu writes CIDs without leading zeros; vab prints all eight digits.
pcid=$(printf '%08x' "0x$(grep -a -m1 '^parentCID=' "$a/stale.vmdk" | cut -d= -f2)")
ncid=$(printf '%08x' "0x$(grep -a -m1 '^CID=' "$a/parent2.vmdk" | cut -d= -f2)")
refused "$a/stale.vmdk" \
  "'$a/stale.vmdk' was made from a parent with CID $pcid, but its parent 'parent2.vmdk' has CID $ncid (the parent changed since; reading through it would give wrong data)"

# 11. VMDK descriptors that name extents are refused, never followed.
qemu-img create -q -f vmdk -o subformat=monolithicFlat "$a/flat.vmdk" 1M
refused "$a/flat.vmdk" \
  "'$a/flat.vmdk' is a VMDK descriptor file (createType \"monolithicFlat\") whose data is in 1 other file (the first: FLAT extent 'flat-flat.vmdk'); vab reads only VMDKs that hold their own data (monolithicSparse, streamOptimized) and does not open files a descriptor names"
qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse "$a/split.vmdk" 1M
timeout 20 "$VAB" inspect "$a/split.vmdk" >/dev/null 2>"$tmp/err"
[ $? = 1 ] && grep -qF "createType \"twoGbMaxExtentSparse\"" "$tmp/err" ||
  problem "twoGbMaxExtentSparse: $(cat "$tmp/err")"
printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="vmfs"\nRW 2048 VMFS "/etc/shadow" 0\n' \
  >"$a/hostile-desc.vmdk"
refused "$a/hostile-desc.vmdk" \
  "'$a/hostile-desc.vmdk' is a VMDK descriptor file (createType \"vmfs\") whose data is in 1 other file (the first: VMFS extent '/etc/shadow'); vab reads only VMDKs that hold their own data (monolithicSparse, streamOptimized) and does not open files a descriptor names"
# A sparse file whose embedded descriptor names a FLAT host file.
qemu-img create -q -f vmdk "$a/embedded.vmdk" 1M
python3 - "$a/embedded.vmdk" <<'PY'
import sys
p = sys.argv[1]
d = bytearray(open(p, "rb").read())
old = b'RW 2048 SPARSE "embedded.vmdk"'
new = b'RW 2048 FLAT "/etc/shadow" 0'
i = d.find(old)
assert i > 0
d[i:i + len(old)] = new.ljust(len(old), b" ")
open(p, "wb").write(d)
PY
refused "$a/embedded.vmdk" \
  "'$a/embedded.vmdk': its descriptor names 1 extent (the first: FLAT '/etc/shadow'); vab reads only one sparse extent, the file itself"

# 12. vab build with source.image: a chain out of the template's folder
#     fails at once (before any VM), and trust_backing is a checked key.
mkdir "$tmp/t"
qemu-img create -q -f qcow2 -F raw -b ../b/base.raw "$tmp/t/img.qcow2" 4M
cat >"$tmp/t/t.yaml" <<YAML
vab: 1
name: confined
version: "1"
source:
  image: {path: img.qcow2, format: qcow2}
disk: {size: 1G}
outputs:
  - {format: qcow2}
YAML
start=$(date +%s)
timeout 60 "$VAB" build "$tmp/t/t.yaml" -o "$tmp/t/out" --no-test --accel tcg \
  --cache-dir "$tmp/t/cache" >/dev/null 2>"$tmp/err"
got=$?
[ $got = 1 ] || problem "build: exit $got, want 1"
grep -qF "$(outside "$tmp/t/img.qcow2" ../b/base.raw "$b/base.raw")" "$tmp/err" ||
  problem "build stderr: $(cat "$tmp/err")"
[ $(( $(date +%s) - start )) -lt 30 ] || problem "build did not fail at once"
ls "$tmp/t/out" 2>/dev/null | grep -qv '\.log$' && problem "build left artifacts"
sed -i "/image:/ s/format: qcow2}/format: qcow2, trust_backing: true}/" "$tmp/t/t.yaml"
grep -q "trust_backing: true" "$tmp/t/t.yaml" || problem "sed"
"$VAB" validate "$tmp/t/t.yaml" >/dev/null 2>"$tmp/err" ||
  problem "validate trust_backing: $(cat "$tmp/err")"
sed -i 's/trust_backing: true/trust_backing: maybe/' "$tmp/t/t.yaml"
"$VAB" validate "$tmp/t/t.yaml" >/dev/null 2>"$tmp/err"
[ $? = 1 ] && grep -qF "'source.image.trust_backing' must be true or false, not 'maybe'" "$tmp/err" ||
  problem "validate trust_backing: maybe: $(cat "$tmp/err")"
# A block device as source.image: not named on the command line, refused.
if [ -n "$blk" ]; then
  sed "s|path: img.qcow2, format: qcow2[^}]*}|path: $blk, format: raw}|" \
    "$tmp/t/t.yaml" >"$tmp/t/dev.yaml"
  grep -qF "path: $blk" "$tmp/t/dev.yaml" || problem "sed dev.yaml"
  timeout 60 "$VAB" build "$tmp/t/dev.yaml" -o "$tmp/t/out" --no-test \
    --accel tcg --cache-dir "$tmp/t/cache" >/dev/null 2>"$tmp/err"
  got=$?
  [ $got = 1 ] && grep -qF "image '$blk' is not a file" "$tmp/err" ||
    problem "block device source.image: exit $got: $(cat "$tmp/err")"
fi

exit $fail
