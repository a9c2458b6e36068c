#!/bin/bash
# A pull whose layers declare more bytes than the output folder's free
# space is refused before anything is downloaded (a 4 MiB tmpfs, a layer
# declared as 8 MiB); layers that fit are pulled there.  Skips (77) where
# a tmpfs cannot be mounted (not root, no mount namespace).
set -u
. "$SRCDIR/tests/publish/lib.sh"

small="$work/small"
mkdir -p "$small"
mount -t tmpfs -o size=4M tmpfs "$small" 2>/dev/null || {
  echo "SKIP: cannot mount a tmpfs"; exit 77; }
trap 'umount "$small"; stop_fake_registry; rm -rf "$work"' EXIT

make_fake_artifact "$work/big" 1000 8388608
start_fake_registry plain "$work/big"
reg="127.0.0.1:$fake_port"
expect_fail "declared sizes above the free space" \
  "not enough free space in '$small/out' for the download: its layers declare 8388608 bytes still to fetch" \
  "$VAB" pull "$reg/team/app:1.0" -o "$small/out"
grep -q "/blobs/" "$work/fake.log" &&
  fail "a blob was requested before the space check: $(cat "$work/fake.log")"
[ -z "$(ls -A "$small/out")" ] || fail "files were written: $(ls -la "$small/out")"

make_fake_artifact "$work/fits" 1048576
start_fake_registry plain "$work/fits"
check "a layer that fits" "$VAB" pull "127.0.0.1:$fake_port/team/app:1.0" \
  -o "$small/out"
cmp -s "$small/out/app-1.0.raw" "$work/fits/app-1.0.raw" || fail "pulled file differs"
finish
