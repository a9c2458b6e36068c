#!/bin/sh
# vab convert / vab inspect for VMDK, VHD and VHDX, checked with qemu-img.
# Needs $VAB (the vab binary); skips (77) without qemu-img or python3.
set -eu

command -v qemu-img >/dev/null 2>&1 || { echo "no qemu-img: skip"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "no python3: skip"; exit 77; }
: "${VAB:?VAB must name the vab binary}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vab-vmdk.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
cd "$tmp"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# Run a command that must exit with status $1 and print $2 on stderr.
expect_error() {
    want_status=$1
    want=$2
    shift 2
    status=0
    "$@" >out.txt 2>err.txt || status=$?
    [ "$status" -eq "$want_status" ] ||
        fail "'$*' exited $status, expected $want_status: $(cat err.txt)"
    grep -qF -- "$want" err.txt ||
        fail "'$*' said '$(cat err.txt)', expected '$want'"
}

# Test data: all-zero, random, text-like, and a mix whose size is not a
# multiple of the 64 KiB grain.
python3 - <<'EOF'
import random
rng = random.Random(7)
G = 65536
with open("zero.raw", "wb") as f:
    f.truncate(8 << 20)
with open("random.raw", "wb") as f:
    f.write(rng.randbytes(5 * (1 << 20) + 123))
with open("text.raw", "wb") as f:
    words = [b"appliance", b"grain", b"vmdk", b"kernel", b"root", b"\n"]
    f.write(b" ".join(rng.choice(words) for _ in range(700000))[: 6 * (1 << 20) + 777])
with open("mixed.raw", "wb") as f:
    for g in range(150):
        kind = g % 4
        if kind == 0:
            f.write(bytes(G))
        elif kind == 1:
            f.write(rng.randbytes(G))
        else:
            f.write((b"line %05d of a text-like grain\n" % g) * (G // 32))
    f.write(b"tail" * 1000)
EOF

# 1. Every output passes qemu-img check and equals its source.
for src in zero random text mixed; do
    for sub in streamOptimized monolithicSparse; do
        out=$src-$sub.vmdk
        "$VAB" convert -q -O vmdk -o subformat=$sub $src.raw $out ||
            fail "convert $src to $sub"
        qemu-img check -f vmdk $out >check.txt 2>&1 ||
            fail "qemu-img check $out: $(cat check.txt)"
        qemu-img compare -f raw -F vmdk $src.raw $out >/dev/null ||
            fail "qemu-img compare $src.raw $out"
        fmt=$(qemu-img info --output=json $out | python3 -c \
            'import json,sys; print(json.load(sys.stdin)["format-specific"]["data"]["create-type"])')
        [ "$fmt" = $sub ] || fail "$out has create type $fmt"
    done
    "$VAB" convert -q -O vhd $src.raw $src.vhd || fail "convert $src to vhd"
    qemu-img compare -f raw -F vpc $src.raw $src.vhd >/dev/null ||
        fail "qemu-img compare $src.raw $src.vhd"
    "$VAB" convert -q -O vhdx $src.raw $src.vhdx || fail "convert $src to vhdx"
    qemu-img check -f vhdx $src.vhdx >check.txt 2>&1 ||
        fail "qemu-img check $src.vhdx: $(cat check.txt)"
    qemu-img compare -f raw -F vhdx $src.raw $src.vhdx >/dev/null ||
        fail "qemu-img compare $src.raw $src.vhdx"
done

# All-zero data stores no grain: header + descriptor padding, empty GD,
# footer, EOS.
size=$(stat -c %s zero-streamOptimized.vmdk)
[ "$size" -eq $((128 * 512 + 5 * 512)) ] ||
    fail "all-zero streamOptimized is $size bytes"

# 2. The stream tail: footer marker, footer (KDMV, real GD offset), EOS.
python3 - mixed-streamOptimized.vmdk <<'EOF' || fail "stream tail layout"
import struct, sys
data = open(sys.argv[1], "rb").read()
assert len(data) % 512 == 0
marker, footer, eos = data[-1536:-1024], data[-1024:-512], data[-512:]
num, size, mtype = struct.unpack_from("<QII", marker)
assert (num, size, mtype) == (1, 0, 3), ("footer marker", num, size, mtype)
assert footer[:4] == b"KDMV", footer[:4]
version, flags = struct.unpack_from("<II", footer, 4)
assert (version, flags) == (3, 0x30001), (version, flags)
gd = struct.unpack_from("<Q", footer, 56)[0]
header_gd = struct.unpack_from("<Q", data, 56)[0]
assert header_gd == 0xFFFFFFFFFFFFFFFF
gd_marker = data[(gd - 1) * 512:gd * 512]
assert struct.unpack_from("<QII", gd_marker) == (1, 0, 2), "GD marker"
assert eos == bytes(512), "EOS"
# Grains are in ascending LBA order, each one a marker on a sector.
pos, last = 128 * 512, -1
while True:
    lba, size = struct.unpack_from("<QI", data, pos)
    if size == 0:
        break
    assert lba > last, (lba, last)
    last = lba
    pos += (12 + size + 511) // 512 * 512
EOF

# 3. Images qemu-img writes read back identically through vab.
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized mixed.raw q-stream.vmdk
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse mixed.raw q-sparse.vmdk
qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on mixed.raw q-fixed.vhd
for img in q-stream.vmdk q-sparse.vmdk; do
    "$VAB" convert -q -O raw $img $img.raw || fail "vab reading $img"
    qemu-img compare -f raw -F raw mixed.raw $img.raw >/dev/null ||
        fail "vab read $img differently"
    "$VAB" inspect $img >inspect.txt 2>&1 || fail "inspect $img: $(cat inspect.txt)"
done
grep -q "^subformat: *monolithicSparse$" inspect.txt || fail "inspect subformat"
# A fixed VHD is found by its footer, without -f vhd.
"$VAB" convert -q -O raw q-fixed.vhd q-fixed.raw || fail "vab reading vhd"
qemu-img compare -f raw -F raw mixed.raw q-fixed.raw >/dev/null ||
    fail "vab read q-fixed.vhd differently"

# 4. vab inspect on its own output.
"$VAB" inspect --json mixed-streamOptimized.vmdk >inspect.json ||
    fail "inspect mixed-streamOptimized.vmdk"
python3 - <<'EOF' || fail "inspect --json: $(cat inspect.json)"
import json
i = json.load(open("inspect.json"))
assert i["format"] == "vmdk" and i["subformat"] == "streamOptimized", i
assert i["cluster_size"] == 65536 and i["compression"] == "zlib", i
# Capacity in sectors: the size rounded up to a sector, not to a grain.
assert i["virtual_size"] == (150 * 65536 + 4000 + 511) // 512 * 512, i
assert i["allocated_bytes"] == 113 * 65536, i
assert i["check"]["errors"] == 0 and i["check"]["checked"] == 113, i
EOF

# 5. Options reach the descriptor; the same input and options give the
# same bytes whatever the thread count.  (The descriptor names the file,
# so both outputs get the same name.)
mkdir t1 t2
"$VAB" convert -q -O vmdk -o adapter_type=ide,hwversion=13,threads=1 \
    mixed.raw t1/t.vmdk || fail "convert threads=1"
"$VAB" convert -q -O vmdk -o adapter_type=ide,hwversion=13,threads=2 \
    mixed.raw t2/t.vmdk || fail "convert threads=2"
cmp t1/t.vmdk t2/t.vmdk || fail "threads 1 and 2 differ"
head -c 2048 t1/t.vmdk | grep -aq '^ddb.adapterType = "ide"$' || fail "adapter_type"
head -c 2048 t1/t.vmdk | grep -aq '^ddb.virtualHWVersion = "13"$' || fail "hwversion"
head -c 2048 t1/t.vmdk | grep -aq '^RW 19208 SPARSE "t.vmdk"$' || fail "extent line"
expect_error 2 "vmdk option adapter_type must be ide, lsilogic, buslogic or legacyESX, not 'scsi'" \
    "$VAB" convert -q -O vmdk -o adapter_type=scsi mixed.raw bad.vmdk
[ ! -e bad.vmdk ] || fail "a failed convert left bad.vmdk"

# 6. VHD: the size to the sector, footer fields, current_size honoured by
# qemu.
size=$(stat -c %s mixed.vhd)
[ "$size" -eq $((19208 * 512 + 512)) ] || fail "mixed.vhd is $size bytes"
vsize=$(qemu-img info -f vpc --output=json mixed.vhd | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
[ "$vsize" -eq $((19208 * 512)) ] || fail "qemu-img reads mixed.vhd as $vsize"
tail -c 512 mixed.vhd | head -c 8 | grep -q conectix || fail "vhd cookie"
"$VAB" inspect mixed.vhd >inspect.txt 2>&1 || fail "inspect mixed.vhd: $(cat inspect.txt)"
grep -q "^format: *vhd$" inspect.txt || fail "a fixed VHD is not probed as vhd"
grep -q "^subformat: *fixed$" inspect.txt || fail "inspect vhd subformat"
grep -q "^check: *0 errors" inspect.txt || fail "inspect vhd check"
# A damaged footer checksum is found by the check.
cp mixed.vhd badsum.vhd
printf '\000' | dd of=badsum.vhd bs=1 seek=$((size - 512 + 64)) conv=notrunc status=none
printf '\000' | dd of=badsum.vhd bs=1 seek=$((size - 512 + 65)) conv=notrunc status=none
expect_error 1 "'badsum.vhd': footer checksum is wrong" "$VAB" inspect -f vhd badsum.vhd
# ... and is not probed as a VHD: only a wholly consistent footer counts.
"$VAB" inspect badsum.vhd >inspect.txt 2>&1 || fail "inspect badsum.vhd as raw"
grep -q "^format: *raw$" inspect.txt || fail "a bad footer was probed as vhd"

# 7. A large sparse disk: 1 TiB works in bounded memory; 3 TiB is refused.
truncate -s 1T big.raw
printf 'start' | dd of=big.raw conv=notrunc status=none
printf 'end' | dd of=big.raw bs=1 seek=$((1099511627776 - 3)) conv=notrunc status=none
/usr/bin/time -f %M -o rss.txt "$VAB" convert -q -O vmdk big.raw big.vmdk ||
    fail "1 TiB convert"
rss=$(tail -n 1 rss.txt)
[ "$rss" -lt 131072 ] || fail "1 TiB convert peak RSS $rss KiB"
qemu-img check big.vmdk >/dev/null || fail "qemu-img check big.vmdk"
qemu-img compare -f raw -F vmdk big.raw big.vmdk >/dev/null || fail "qemu-img compare big.vmdk"
[ "$(qemu-img info --output=json big.vmdk | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" = 1099511627776 ] ||
    fail "big.vmdk virtual size"
"$VAB" convert -q -O raw big.vmdk big-back.raw || fail "read back big.vmdk"
qemu-img compare -f raw -F raw big.raw big-back.raw >/dev/null || fail "big.vmdk read back differently"
rm -f big.raw big-back.raw
truncate -s 3T huge.raw
expect_error 1 "vmdk: virtual size 3298534883328 bytes is over the 2 TiB a sparse VMDK extent can hold" \
    "$VAB" convert -q -O vmdk huge.raw huge.vmdk
rm -f huge.raw

# 8. Hostile images: exit 1 and a message naming the file and offset.
cp mixed-streamOptimized.vmdk trunc.vmdk
truncate -s 100000 trunc.vmdk
expect_error 1 "'trunc.vmdk': no footer marker at offset 98464 (truncated stream?)" \
    "$VAB" inspect trunc.vmdk
cp mixed-streamOptimized.vmdk grain.vmdk
printf '\003' | dd of=grain.vmdk bs=1 seek=20 conv=notrunc status=none
expect_error 1 "'grain.vmdk': grain size 3 sectors in the header at offset 0 is not a power of two up to 2048" \
    "$VAB" inspect grain.vmdk
cp mixed-streamOptimized.vmdk zlib.vmdk
# The first stored grain is grain 1 (grain 0 is zero): corrupt its zlib data.
printf '\377\377\377\377' | dd of=zlib.vmdk bs=1 seek=$((128 * 512 + 12)) conv=notrunc status=none
expect_error 1 "'zlib.vmdk': compressed grain at offset 65536 is not a valid zlib stream" \
    "$VAB" convert -q -O raw zlib.vmdk zlib.raw
[ ! -e zlib.raw ] || fail "a failed convert left zlib.raw"
expect_error 1 "compressed grain at offset 65536 is not a valid zlib stream" \
    "$VAB" inspect zlib.vmdk
cp mixed-monolithicSparse.vmdk gd.vmdk
gd=$(python3 -c 'import struct; print(struct.unpack_from("<Q", open("gd.vmdk","rb").read(), 56)[0])')
printf '\360\377\377\177' | dd of=gd.vmdk bs=1 seek=$((gd * 512)) conv=notrunc status=none
expect_error 1 "'gd.vmdk': grain table 0 at offset 1099511619584 (2048 bytes) lies past the end of the file" \
    "$VAB" inspect gd.vmdk

# 9. VHDX through qemu-img: its error is reported and nothing is left
# behind; without qemu-img the error says what to install.
mkdir fakebin emptybin out
cat >fakebin/qemu-img <<'EOF'
#!/bin/sh
printf '    (50.00/100%%)\r'
for last; do :; done
echo partial >"$last"
echo "qemu-img: simulated failure" >&2
exit 1
EOF
chmod +x fakebin/qemu-img
expect_error 1 "vhdx: qemu-img convert of 'mixed.raw' to 'out/x.vhdx' failed (exit status 1): qemu-img: simulated failure" \
    env PATH="$tmp/fakebin:$PATH" "$VAB" convert -q -O vhdx mixed.raw out/x.vhdx
[ -z "$(ls -A out)" ] || fail "a failed vhdx convert left $(ls -A out)"
expect_error 1 "vhdx: qemu-img is not installed (Debian: qemu-utils); vab writes VHDX through it" \
    env PATH="$tmp/emptybin" "$VAB" convert -q -O vhdx mixed.raw out/x.vhdx
[ -z "$(ls -A out)" ] || fail "a failed vhdx convert left $(ls -A out)"

echo "all VMDK/VHD/VHDX checks passed"
