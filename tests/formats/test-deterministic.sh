#!/bin/bash
# Issue 12 item 5: every writer gives the same bytes for the same input.
# Two conversions of one disk, with SOURCE_DATE_EPOCH set, a second apart
# and in different folders, must be byte-identical: no creation
# time, random id (VMDK CID, VHD unique id, VHDX GUIDs) or file name may
# leak into the image.  The source's own mtime changes between the two
# too, since nothing read from the host file should show.
. "$SRCDIR/tests/formats/functions.sh"
require qemu-img cmp
export SOURCE_DATE_EPOCH=1700000000

convert() {  # SRC FORMAT DST
  case $2 in
    vmdk-sparse) "$VAB" convert -q -O vmdk -o subformat=monolithicSparse \
                   "$1" "$3" 2>"$tmp/err" ;;
    vmdk-stream) "$VAB" convert -q -O vmdk "$1" "$3" 2>"$tmp/err" ;;
    qcow2-zstd) "$VAB" convert -q -O qcow2 -o compression=zstd "$1" "$3" \
                  2>"$tmp/err" ;;
    raw-zst) "$VAB" convert -q -O raw -o compression=zstd "$1" "$3" \
               2>"$tmp/err" ;;
    *) "$VAB" convert -q -O "$2" "$1" "$3" 2>"$tmp/err" ;;
  esac
}
formats="raw qcow2 qcow2-zstd vmdk-stream vmdk-sparse vhd"
qemu-img --help | grep -qw vhdx && formats="$formats vhdx"
command -v zstd >/dev/null && formats="$formats raw-zst"

src="$tmp/src.raw"
make_data mixed "$src" $((12 << 20))
for f in $formats; do
  ext=${f%-*}
  [ "$f" = raw-zst ] && ext=raw.zst
  # The same file name: a VMDK descriptor names its own extent file.
  a=$tmp/one/disk.$ext b=$tmp/two/disk.$ext
  mkdir -p "$tmp/one" "$tmp/two"
  convert "$src" "$f" "$a" || { problem "$f: convert: $(cat "$tmp/err")"; continue; }
  sleep 1
  touch "$src"
  convert "$src" "$f" "$b" || { problem "$f: second convert: $(cat "$tmp/err")"; continue; }
  [ -s "$a" ] || problem "$f: empty output"
  cmp -s "$a" "$b" ||
    problem "$f: two conversions differ in $(cmp -l "$a" "$b" | wc -l) bytes: $(cmp "$a" "$b" | head -1)"
  # Still a valid image of the same disk (VHDX: its ids rewritten).
  case $f in
    raw-zst) ;;
    *) q=${f%-*}; [ "$q" = vhd ] && q=vpc
       qemu-img compare -q -f raw -F "$q" "$src" "$b" ||
         problem "$f: qemu-img compare: differs from the source"
       [ "$q" = raw ] || [ "$q" = vpc ] || qemu-img check -q -f "$q" "$b" ||
         problem "$f: qemu-img check fails" ;;
  esac
  rm -f "$a" "$b"
done
exit $fail
