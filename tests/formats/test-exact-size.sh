#!/bin/bash
# Every output format keeps the source's virtual size: a 1 GiB + 1536 B
# sparse raw disk converts to raw, qcow2, VMDK (both subformats), VHD and
# VHDX that qemu-img reads as exactly that size and as identical, and that
# vab reads back at that size.  A size that is not whole sectors is rounded
# up to the next sector, with a warning.
. "$SRCDIR/tests/formats/functions.sh"
require qemu-img truncate

qemu_name() {  # vab format -> qemu-img format
  case $1 in vhd) echo vpc ;; vmdk-*) echo vmdk ;; *) echo "$1" ;; esac
}
qemu_size() {  # FORMAT FILE
  qemu-img info -f "$(qemu_name "$1")" --output=json "$2" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["virtual-size"])'
}
vab_size() {  # FILE
  "$VAB" inspect --json "$1" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["virtual_size"])'
}
convert() {  # SRC FORMAT DST: vab convert, stderr kept in $tmp/err
  case $2 in
    vmdk-sparse) "$VAB" convert -q -O vmdk -o subformat=monolithicSparse \
                   "$1" "$3" 2>"$tmp/err" ;;
    vmdk-stream) "$VAB" convert -q -O vmdk "$1" "$3" 2>"$tmp/err" ;;
    *) "$VAB" convert -q -O "$2" "$1" "$3" 2>"$tmp/err" ;;
  esac
}
formats="raw qcow2 vmdk-stream vmdk-sparse vhd"
qemu-img --help | grep -qw vhdx && formats="$formats vhdx"

# Data at the start and in the last sector, so a cut tail shows.
size=$(((1 << 30) + 1536))
src="$tmp/src.raw"
truncate -s $size "$src"
printf 'first sector' | dd of="$src" conv=notrunc status=none
printf 'last sector' | dd of="$src" bs=1 seek=$((size - 100)) conv=notrunc \
  status=none

for f in $formats; do
  dst="$tmp/out.$f"
  convert "$src" "$f" "$dst" || { problem "$f: convert: $(cat "$tmp/err")"; continue; }
  # Only VHD's note that Azure wants whole MiB, nothing rounded.
  ! grep -v "Azure refuses" "$tmp/err" || problem "$f: convert printed that"
  got=$(qemu_size "$f" "$dst")
  [ "$got" = $size ] || problem "$f: qemu-img reads $got bytes, want $size"
  qemu-img compare -q -f raw -F "$(qemu_name "$f")" "$src" "$dst" ||
    problem "$f: qemu-img compare: differs"
  if [ "$f" != vhdx ]; then  # vab reads every format but VHDX
    got=$(vab_size "$dst")
    [ "$got" = $size ] || problem "$f: vab inspect reads $got bytes"
    "$VAB" convert -q -O raw "$dst" "$tmp/back.raw" ||
      problem "$f: vab convert back"
    [ "$(stat -c %s "$tmp/back.raw")" = $size ] ||
      problem "$f: reads back as $(stat -c %s "$tmp/back.raw") bytes"
    # qemu-img compare skips holes, where cmp would read 1 GiB.
    qemu-img compare -q -f raw -F raw "$src" "$tmp/back.raw" ||
      problem "$f: reads back different"
    rm -f "$tmp/back.raw"
  fi
  rm -f "$dst"
done

# Not whole sectors: the next sector up, said in a warning.
odd=$(((1 << 20) + 100))
up=$(((1 << 20) + 512))
truncate -s $odd "$tmp/odd.raw"
printf 'tail' | dd of="$tmp/odd.raw" bs=1 seek=$((odd - 4)) conv=notrunc \
  status=none
convert "$tmp/odd.raw" raw "$tmp/odd.out.raw" || problem "odd raw: convert"
[ "$(stat -c %s "$tmp/odd.out.raw")" = $odd ] || problem "odd raw: size changed"
[ ! -s "$tmp/err" ] || problem "odd raw: convert printed: $(cat "$tmp/err")"
for f in qcow2 vmdk-stream vmdk-sparse vhd; do
  dst="$tmp/odd.$f"
  convert "$tmp/odd.raw" "$f" "$dst" || { problem "odd $f: convert"; continue; }
  name=${f%-*}
  want="vab convert: warning: $name: virtual size $odd bytes is not a whole number of 512-byte sectors; writing $up bytes (the last 412 read as zeros)"
  grep -qxF "$want" "$tmp/err" || problem "odd $f: stderr: $(cat "$tmp/err")"
  got=$(qemu_size "$f" "$dst")
  [ "$got" = $up ] || problem "odd $f: qemu-img reads $got bytes, want $up"
  got=$(vab_size "$dst")
  [ "$got" = $up ] || problem "odd $f: vab reads $got bytes, want $up"
  qemu-img compare -q -f raw -F "$(qemu_name "$f")" "$tmp/odd.raw" "$dst" ||
    problem "odd $f: qemu-img compare: differs"
done
grep -qF "is not a whole number of MiB; Azure refuses such VHDs" "$tmp/err" ||
  problem "odd vhd: no Azure note: $(cat "$tmp/err")"
exit $fail
