#!/bin/bash
# The qcow2 writer against qemu-img: every output passes `qemu-img check`
# and compares identical to its source, for each kind of data, option and
# cluster size; thread counts give identical bytes; dedup is much smaller.
. "$SRCDIR/tests/formats/functions.sh"
require qemu-img python3

MiB=$((1024 * 1024))
make_data zero "$tmp/zero.raw" $((8 * MiB))
make_data random "$tmp/random.raw" $((4 * MiB))
make_data text "$tmp/text.raw" $((4 * MiB))
# Not a multiple of any cluster size.
make_data mixed "$tmp/mixed.raw" $((9 * MiB + 12345))

convert_ok() {  # SRC DST OPTIONS
  if ! "$VAB" convert -q -O qcow2 ${3:+-o "$3"} "$1" "$2" 2>"$tmp/err"; then
    problem "convert $1 -o '$3': $(cat "$tmp/err")"
    return 1
  fi
  qemu-img check -q "$2" >"$tmp/check" 2>&1 ||
    problem "qemu-img check $2 (-o '$3'): $(cat "$tmp/check")"
  qemu-img compare -q "$1" "$2" 2>"$tmp/cmp" ||
    problem "qemu-img compare $1 $2 (-o '$3'): $(cat "$tmp/cmp")"
  "$VAB" inspect "$2" >"$tmp/inspect" 2>&1 ||
    problem "vab inspect $2 (-o '$3'): $(cat "$tmp/inspect")"
  grep -qx "check:            0 errors, 0 leaks, .*" "$tmp/inspect" ||
    problem "vab inspect $2: $(grep check: "$tmp/inspect")"
}

for data in zero random text mixed; do
  for opts in "" compression=zlib compression=zstd compression=zstd,level=9 \
      compression=zlib,level=1 dedup=on dedup=on,compression=zstd \
      cluster_size=512 cluster_size=512,compression=zlib,dedup=on \
      cluster_size=2M cluster_size=2M,compression=zstd cluster_size=4K; do
    convert_ok "$tmp/$data.raw" "$tmp/out.qcow2" "$opts"
  done
done

# Zero clusters are never stored: an all-zero disk is only metadata.
"$VAB" convert -q -O qcow2 "$tmp/zero.raw" "$tmp/zero.qcow2"
size=$(stat -c %s "$tmp/zero.qcow2")
[ "$size" -le $((5 * 65536)) ] || problem "all-zero qcow2 is $size bytes"

# Incompressible clusters are stored plain: no compressed clusters at all.
"$VAB" convert -q -O qcow2 -o compression=zstd "$tmp/random.raw" "$tmp/r.qcow2"
qemu-img check "$tmp/r.qcow2" | grep -q " 0.00% compressed clusters" ||
  problem "random data was stored compressed"
"$VAB" inspect "$tmp/r.qcow2" | grep -qx "compression:      none" ||
  problem "inspect shows compression for random data"

# Header: zstd sets compression_type and incompatible bit 3; zlib neither.
"$VAB" convert -q -O qcow2 -o compression=zstd "$tmp/text.raw" "$tmp/z.qcow2"
qemu-img info "$tmp/z.qcow2" | grep -q "compression type: zstd" ||
  problem "zstd image lacks compression type zstd"
[ "$(od -An -tx1 -j72 -N8 "$tmp/z.qcow2" | tr -d ' ')" = 0000000000000008 ] ||
  problem "zstd image: incompatible features are not 0x8"
[ "$(od -An -tx1 -j104 -N1 "$tmp/z.qcow2" | tr -d ' ')" = 01 ] ||
  problem "zstd image: compression_type byte is not 1"
"$VAB" convert -q -O qcow2 -o compression=zlib "$tmp/text.raw" "$tmp/d.qcow2"
[ "$(od -An -tx1 -j72 -N8 "$tmp/d.qcow2" | tr -d ' ')" = 0000000000000000 ] ||
  problem "zlib image: incompatible features are not 0"
qemu-img info "$tmp/d.qcow2" | grep -q "compression type: zlib" ||
  problem "zlib image lacks compression type zlib"

# Deterministic whatever the thread count.
for opts in compression=zstd compression=zlib,dedup=on dedup=on; do
  "$VAB" convert -q -O qcow2 -o "$opts,threads=1" "$tmp/mixed.raw" "$tmp/t1.qcow2"
  "$VAB" convert -q -O qcow2 -o "$opts,threads=2" "$tmp/mixed.raw" "$tmp/t2.qcow2"
  "$VAB" convert -q -O qcow2 -o "$opts,threads=5" "$tmp/mixed.raw" "$tmp/t5.qcow2"
  cmp -s "$tmp/t1.qcow2" "$tmp/t2.qcow2" ||
    problem "-o $opts: threads=1 and threads=2 differ"
  cmp -s "$tmp/t1.qcow2" "$tmp/t5.qcow2" ||
    problem "-o $opts: threads=1 and threads=5 differ"
done

# Dedup: a disk of 5 distinct blocks repeated is stored as 5 clusters.
make_data dup "$tmp/dup.raw" $((32 * MiB))
convert_ok "$tmp/dup.raw" "$tmp/nodedup.qcow2" ""
convert_ok "$tmp/dup.raw" "$tmp/dedup.qcow2" dedup=on
convert_ok "$tmp/dup.raw" "$tmp/dedupz.qcow2" dedup=on,compression=zstd
plain=$(stat -c %s "$tmp/nodedup.qcow2")
dedup=$(stat -c %s "$tmp/dedup.qcow2")
[ $((dedup * 20)) -le "$plain" ] ||
  problem "dedup output $dedup is not 20x smaller than $plain"
"$VAB" inspect --json "$tmp/dedup.qcow2" >"$tmp/j"
grep -q '"shared_clusters":5,' "$tmp/j" ||
  problem "dedup: inspect does not show 5 shared clusters: $(cat "$tmp/j")"
grep -q '"dedup_saved_bytes":33226752,' "$tmp/j" ||
  problem "dedup: inspect savings wrong: $(cat "$tmp/j")"
"$VAB" convert -q -O raw "$tmp/dedupz.qcow2" "$tmp/dedupz.raw"
cmp -s "$tmp/dup.raw" "$tmp/dedupz.raw" || problem "dedup+zstd reads back wrong"

# A layered image: only what differs from the backing file is stored.
cp "$tmp/mixed.raw" "$tmp/changed.raw"
printf 'changed' | dd of="$tmp/changed.raw" bs=1 seek=$((3 * MiB + 5)) conv=notrunc 2>/dev/null
dd if=/dev/zero of="$tmp/changed.raw" bs=65536 seek=2 count=1 conv=notrunc 2>/dev/null
"$VAB" convert -q -O qcow2 -o backing_file=mixed.raw,backing_fmt=raw \
  "$tmp/changed.raw" "$tmp/layer.qcow2" || problem "layered convert failed"
qemu-img check -q "$tmp/layer.qcow2" || problem "layer: qemu-img check"
qemu-img compare -q "$tmp/changed.raw" "$tmp/layer.qcow2" ||
  problem "layer: compare with changed.raw"
qemu-img info "$tmp/layer.qcow2" | grep -qx "backing file format: raw" ||
  problem "layer: no backing format"
"$VAB" inspect --json "$tmp/layer.qcow2" >"$tmp/j"
grep -q '"allocated_bytes":65536,' "$tmp/j" ||
  problem "layer stores more than the one changed cluster: $(cat "$tmp/j")"
"$VAB" convert -q -O raw "$tmp/layer.qcow2" "$tmp/layer.raw"
# qcow2 sizes are whole sectors: the copy has 455 more zero bytes.
cmp -s -n $((9 * MiB + 12345)) "$tmp/changed.raw" "$tmp/layer.raw" ||
  problem "layer reads back wrong"
[ "$(stat -c %s "$tmp/layer.raw")" = $((9 * MiB + 12800)) ] ||
  problem "layer: size not rounded up to a sector"

no_leftovers "$tmp"
exit $fail
