#!/bin/bash
# A SIGKILLed build leaves its OUTPUT/.vab-cache-XXXXXX stage folder; the
# next build into that output folder removes it, because no live process
# holds its flock (as with .DST.vab-XXXXXX temporaries, test-cli-stale-temp).
# A stage folder that a live build holds (flock(1) here), a file and a
# link with a stage folder's name are left alone.  No VM: the build fails
# in its source step (a rootfs whose checksum does not match), after the
# stage folder is made.
. "$SRCDIR/tests/formats/functions.sh"
require python3 flock

echo "not a tar" >"$tmp/rootfs.tar"
cat >"$tmp/t.yaml" <<YAML
vab: 1
name: stage
version: "1"
source:
  rootfs: {path: rootfs.tar, checksum: "sha256:$(printf '%064d' 0)"}
disk: {size: 2G, firmware: bios}
outputs:
  - {format: qcow2}
YAML
out=$tmp/out
mkdir -p "$out/.vab-cache-STALE1/0123abcd" "$out/.vab-cache-LIVE01"
echo staged >"$out/.vab-cache-STALE1/0123abcd/disk.qcow2"
hold_flock "$out/.vab-cache-LIVE01" || problem "flock(1) did not start"
: >"$out/.vab-cache-FILE01"
mkdir "$tmp/elsewhere"
echo canary >"$tmp/elsewhere/canary"
ln -s "$tmp/elsewhere" "$out/.vab-cache-LINK01"

TMPDIR=$tmp "$VAB" build "$tmp/t.yaml" --accel tcg -o "$out" \
  --cache-dir "$tmp/cache" 2>"$tmp/err"
status=$?
[ $status = 1 ] || problem "vab build: exit $status, want 1: $(cat "$tmp/err")"
grep -q "checksum mismatch" "$tmp/err" || problem "not the checksum error: $(cat "$tmp/err")"
[ -e "$out/.vab-cache-STALE1" ] && problem "the killed build's stage folder is still there"
[ -d "$out/.vab-cache-LIVE01" ] || problem "the live build's stage folder was removed"
[ -f "$out/.vab-cache-FILE01" ] || problem "a file with a stage folder's name was removed"
[ -L "$out/.vab-cache-LINK01" ] && [ "$(cat "$tmp/elsewhere/canary")" = canary ] ||
  problem "the link with a stage folder's name was touched"
left=$(ls -A "$out" | grep '^\.vab-cache-' | grep -vxE '\.vab-cache-(LIVE01|FILE01|LINK01)')
[ -z "$left" ] || problem "the build left its own stage folder: $left"
release_flock
exit $fail
