#!/bin/bash
# raw: sparse reading and writing, and compression=zstd restored by zstd -d.
. "$SRCDIR/tests/formats/functions.sh"
require qemu-img zstd python3

MiB=$((1024 * 1024))
make_data mixed "$tmp/src.raw" $((16 * MiB + 100))

# A sparse copy: the holes and zero blocks of the source are holes.
"$VAB" convert -q -O raw "$tmp/src.raw" "$tmp/copy.raw" || problem "raw copy"
cmp -s "$tmp/src.raw" "$tmp/copy.raw" || problem "raw copy differs"
used=$(du -k "$tmp/copy.raw" | cut -f1)
[ "$used" -le 9300 ] || problem "raw copy not sparse: $used KiB used"

# A 64 MiB disk that is all hole stays a hole.
truncate -s 64M "$tmp/hole.raw"
"$VAB" convert -q -O raw "$tmp/hole.raw" "$tmp/hole2.raw"
[ "$(stat -c %s "$tmp/hole2.raw")" = 67108864 ] || problem "hole copy size"
[ "$(du -k "$tmp/hole2.raw" | cut -f1)" -le 64 ] || problem "hole copy uses space"

# zstd: a standard .zst, multi-threaded, that zstd -d restores.
for opts in compression=zstd compression=zstd,level=19,threads=2 \
    compression=zstd,threads=1; do
  "$VAB" convert -q -O raw -o "$opts" "$tmp/src.raw" "$tmp/src.raw.zst" ||
    problem "-o $opts failed"
  zstd -q -d -c "$tmp/src.raw.zst" | cmp -s - "$tmp/src.raw" ||
    problem "-o $opts: zstd -d does not restore the source"
done
zstd -l "$tmp/src.raw.zst" 2>&1 | grep -q "XXH64" || problem "no zstd checksum"

# Bad options are named.
"$VAB" convert -q -O raw -o compression=lz4 "$tmp/src.raw" "$tmp/x.raw" 2>"$tmp/err"
[ $? = 2 ] || problem "bad compression: exit not 2"
grep -qxF "vab convert: error: raw option compression must be none or zstd, not 'lz4'" "$tmp/err" ||
  problem "bad compression message: $(cat "$tmp/err")"
[ ! -e "$tmp/x.raw" ] || problem "bad option left a file"

no_leftovers "$tmp"
exit $fail
