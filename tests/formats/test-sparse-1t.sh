#!/bin/bash
# A 1 TiB sparse disk: converting it reads only its data, is fast, and
# stays under 128 MiB of memory.
. "$SRCDIR/tests/formats/functions.sh"
require qemu-img
[ -x /usr/bin/time ] || { echo "SKIP: /usr/bin/time is not installed"; exit 77; }

truncate -s 1T "$tmp/big.raw"
printf 'start' | dd of="$tmp/big.raw" bs=1 conv=notrunc 2>/dev/null
printf 'middle' | dd of="$tmp/big.raw" bs=1 seek=$((512 * 1024 * 1024 * 1024 + 77)) conv=notrunc 2>/dev/null
printf 'end' | dd of="$tmp/big.raw" bs=1 seek=$((1024 * 1024 * 1024 * 1024 - 3)) conv=notrunc 2>/dev/null

rss_ok() {  # what
  local kib
  kib=$(tail -n1 "$tmp/time")
  [ "$kib" -lt 131072 ] || problem "$1: peak RSS $kib KiB"
}

for opts in "" compression=zstd dedup=on,compression=zlib; do
  /usr/bin/time -o "$tmp/time" -f '%M' \
    "$VAB" convert -q -O qcow2 ${opts:+-o "$opts"} "$tmp/big.raw" "$tmp/big.qcow2" ||
    problem "1 TiB -> qcow2 -o '$opts' failed"
  rss_ok "1 TiB -> qcow2 -o '$opts'"
  qemu-img check -q "$tmp/big.qcow2" || problem "1 TiB qcow2 ($opts): check"
done
qemu-img compare -q "$tmp/big.raw" "$tmp/big.qcow2" || problem "1 TiB compare"
size=$(stat -c %s "$tmp/big.qcow2")
[ "$size" -lt $((1024 * 1024)) ] || problem "1 TiB qcow2 is $size bytes"

/usr/bin/time -o "$tmp/time" -f '%M' \
  "$VAB" convert -q -O raw "$tmp/big.qcow2" "$tmp/back.raw" || problem "back to raw"
rss_ok "1 TiB qcow2 -> raw"
[ "$(stat -c %s "$tmp/back.raw")" = 1099511627776 ] || problem "back.raw size"
[ "$(du -k "$tmp/back.raw" | cut -f1)" -le 1024 ] || problem "back.raw not sparse"
qemu-img compare -q "$tmp/back.raw" "$tmp/big.qcow2" || problem "back.raw compare"

/usr/bin/time -o "$tmp/time" -f '%M' "$VAB" inspect "$tmp/big.qcow2" >/dev/null ||
  problem "inspect 1 TiB"
rss_ok "inspect 1 TiB"
exit $fail
