#!/bin/bash
# The qcow2 reader on what qemu-img writes: default, zlib, zstd, zero
# clusters, 512-byte and 2 MiB clusters, v2 and a two-level backing chain.
# vab converts each to raw and the bytes must match qemu-img's own.
. "$SRCDIR/tests/formats/functions.sh"
require qemu-img qemu-io python3

MiB=$((1024 * 1024))
make_data mixed "$tmp/src.raw" $((12 * MiB))

read_ok() {  # IMAGE: vab's raw must equal qemu-img's raw
  qemu-img convert -O raw "$1" "$tmp/want.raw"
  if ! "$VAB" convert -q -O raw "$1" "$tmp/got.raw" 2>"$tmp/err"; then
    problem "vab cannot read $1: $(cat "$tmp/err")"
    return
  fi
  cmp -s "$tmp/want.raw" "$tmp/got.raw" || problem "$1 reads back wrong"
  "$VAB" inspect "$1" >"$tmp/inspect" 2>&1 ||
    problem "vab inspect $1: $(cat "$tmp/inspect")"
}

qemu-img convert -O qcow2 "$tmp/src.raw" "$tmp/default.qcow2"
qemu-img convert -c -O qcow2 "$tmp/src.raw" "$tmp/zlib.qcow2"
qemu-img convert -c -O qcow2 -o compression_type=zstd "$tmp/src.raw" "$tmp/zstd.qcow2"
qemu-img convert -c -O qcow2 -o cluster_size=512 "$tmp/src.raw" "$tmp/c512.qcow2"
qemu-img convert -c -O qcow2 -o cluster_size=2M,compression_type=zstd "$tmp/src.raw" "$tmp/c2m.qcow2"
qemu-img convert -O qcow2 -o compat=0.10 "$tmp/src.raw" "$tmp/v2.qcow2"
for f in default zlib zstd c512 c2m v2; do
  read_ok "$tmp/$f.qcow2"
done
grep -qx "subformat:        v2" "$tmp/inspect" || problem "v2 image not shown as v2"

# Inspect shows what qemu-img wrote.
"$VAB" inspect --json "$tmp/zstd.qcow2" >"$tmp/j"
grep -q '"format":"qcow2","subformat":"v3","virtual_size":12582912,' "$tmp/j" ||
  problem "inspect zstd: $(cat "$tmp/j")"
grep -q '"compression":"zstd"' "$tmp/j" || problem "inspect: not zstd"
grep -q '"check":{"errors":0,"leaks":0,' "$tmp/j" || problem "inspect check: $(cat "$tmp/j")"

# Zero clusters (qemu-io write -z) and a backing chain base <- mid <- top.
qemu-img convert -O qcow2 "$tmp/src.raw" "$tmp/base.qcow2"
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$tmp/mid.qcow2"
qemu-io -c 'write -P 0x5a 1M 128k' -c 'write -z 2M 64k' "$tmp/mid.qcow2" >/dev/null
qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 "$tmp/top.qcow2"
qemu-io -c 'write -P 0xa5 1088k 4k' -c 'write -z 5M 1M' -c 'write -P 1 11M 8k' \
  "$tmp/top.qcow2" >/dev/null
read_ok "$tmp/mid.qcow2"
read_ok "$tmp/top.qcow2"
"$VAB" inspect "$tmp/top.qcow2" >"$tmp/out"
grep -qx "backing file:     mid.qcow2 (qcow2, $tmp/mid.qcow2)" "$tmp/out" ||
  problem "inspect top: no mid in the chain: $(cat "$tmp/out")"
grep -qx "backing file:     base.qcow2 (qcow2, $tmp/base.qcow2)" "$tmp/out" ||
  problem "inspect top: no base in the chain"

# And the other way round: qemu-img reads what vab writes from these.
"$VAB" convert -q -O qcow2 -o compression=zstd "$tmp/top.qcow2" "$tmp/flat.qcow2"
qemu-img compare -q "$tmp/top.qcow2" "$tmp/flat.qcow2" ||
  problem "vab's flattened chain differs from the chain"

# Internal snapshots: each snapshot's L1 table, L2 tables and clusters hold
# references, so a clean image checks clean (leaks otherwise) and the guest
# reads as the active layer.
qemu-img create -q -f qcow2 "$tmp/snap.qcow2" 64M
qemu-io -c 'write -P 0x11 0 4M' -c 'write -P 0x22 32M 1M' "$tmp/snap.qcow2" >/dev/null
qemu-img snapshot -c s1 "$tmp/snap.qcow2"
qemu-io -c 'write -P 0x33 1M 2M' -c 'write -c -P 0x44 40M 64k' "$tmp/snap.qcow2" >/dev/null
qemu-img snapshot -c s2 "$tmp/snap.qcow2"
qemu-io -c 'discard 0 1M' -c 'write -P 0x55 33M 64k' "$tmp/snap.qcow2" >/dev/null
qemu-img check -q "$tmp/snap.qcow2" || problem "qemu-img check snap.qcow2 (test data)"
read_ok "$tmp/snap.qcow2"
grep -qx "snapshots:        2" "$tmp/inspect" || problem "inspect: no snapshots: $(cat "$tmp/inspect")"
grep -q "^check: *0 errors, 0 leaks" "$tmp/inspect" ||
  problem "inspect snap.qcow2: $(cat "$tmp/inspect")"
# A snapshot whose L1 table offset is misaligned is reported.
cp "$tmp/snap.qcow2" "$tmp/badsnap.qcow2"
snap_table=$(od -An -tu8 --endian=big -j 64 -N 8 "$tmp/snap.qcow2" | tr -d ' ')
printf '\001' | dd of="$tmp/badsnap.qcow2" bs=1 seek=$((snap_table + 7)) conv=notrunc status=none
"$VAB" inspect "$tmp/badsnap.qcow2" >"$tmp/inspect" 2>&1
grep -q "snapshot 0: L1 table at offset" "$tmp/inspect" ||
  problem "a bad snapshot L1 offset was not reported: $(cat "$tmp/inspect")"
grep -q "^check: *[1-9][0-9]* errors" "$tmp/inspect" ||
  problem "a bad snapshot L1 offset is not an error: $(cat "$tmp/inspect")"

no_leftovers "$tmp"
exit $fail
