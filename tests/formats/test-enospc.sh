#!/bin/bash
# A full disk during vab convert, to every format it writes: the output
# folder is a small tmpfs.  Each conversion must exit 1 with an error that
# names the output file and ENOSPC ("No space left on device"), and leave
# nothing behind: no temporary, no file under the final name.  Then, with
# room again, the same conversion succeeds (nothing stale in the way).
# Needs root for mount (skips otherwise).
. "$SRCDIR/tests/formats/functions.sh"
require python3 qemu-img mount umount

full=$tmp/full
mkdir "$full"
if ! mount -t tmpfs -o size=4M tmpfs "$full" 2>/dev/null; then
  echo "SKIP: cannot mount a tmpfs (not root?)"
  exit 77
fi
trap 'umount "$full" 2>/dev/null; rm -rf "$tmp"' EXIT

# 16 MiB of incompressible data: no format fits it in 4 MiB.
make_data random "$tmp/src.raw" $((16 * 1024 * 1024))

# FORMAT OPTIONS NAME: one conversion into the full folder.
convert_full() {
  local fmt=$1 opts=$2 name=$3 dst=$full/$3
  "$VAB" convert -q -O "$fmt" ${opts:+-o "$opts"} "$tmp/src.raw" "$dst" \
    2>"$tmp/err"
  local status=$?
  [ $status = 1 ] || problem "$name: exit $status on a full disk, want 1"
  grep -qF "'$dst'" "$tmp/err" ||
    problem "$name: the error does not name '$dst': $(cat "$tmp/err")"
  grep -q "No space left on device" "$tmp/err" ||
    problem "$name: the error does not say ENOSPC: $(cat "$tmp/err")"
  [ "$(wc -l <"$tmp/err")" -ge 1 ] || problem "$name: no error printed"
  [ -z "$(ls -A "$full")" ] ||
    problem "$name: left $(ls -A "$full") on the full disk"
}

convert_full qcow2 "" out.qcow2
convert_full qcow2 compression=zstd,level=1 out-zstd.qcow2
convert_full vmdk "" out.vmdk
convert_full vmdk subformat=streamOptimized out-stream.vmdk
convert_full raw "" out.raw
convert_full raw compression=zstd,level=1 out.raw.zst
convert_full vhd "" out.vhd
convert_full vhdx "" out.vhdx

# Room again: the same output is written and sound.
umount "$full"
mount -t tmpfs -o size=64M tmpfs "$full" ||
  { problem "cannot remount the tmpfs"; exit 1; }
"$VAB" convert -q -O qcow2 "$tmp/src.raw" "$full/out.qcow2" ||
  problem "the conversion with room again failed"
qemu-img compare -q "$tmp/src.raw" "$full/out.qcow2" ||
  problem "the qcow2 written with room again differs from its source"
no_leftovers "$full"
exit $fail
