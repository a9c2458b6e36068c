#!/bin/bash
# A SIGKILLed convert leaves its .DST.vab-XXXXXX temporary; the next
# writer of the same DST removes it, because no live process holds its
# flock.  A temporary that a live writer holds (flock(1) here), another
# output's temporary and a link with a temporary's name are left alone.
. "$SRCDIR/tests/formats/functions.sh"
require python3 flock

# 8 GiB, sparse, with 96 MiB of random data that compresses slowly.
make_data random "$tmp/data" $((96 * 1024 * 1024))
truncate -s 8G "$tmp/src.raw"
dd if="$tmp/data" of="$tmp/src.raw" bs=1M seek=4096 conv=notrunc,sparse \
  status=none
rm -f "$tmp/data"
mkdir "$tmp/out"

temps() { ls -A "$tmp/out" | grep -E "^\.$1\.vab-......$"; }

for fmt in qcow2 vmdk; do
  # Killed while compressing hard; written again without compression.
  case $fmt in
  qcow2) slow=compression=zstd,level=19 fast=compression=none ;;
  vmdk) slow=level=9 fast=subformat=monolithicSparse ;;
  esac
  dst=$tmp/out/dst.$fmt
  "$VAB" convert -q -O $fmt -o $slow "$tmp/src.raw" "$dst" 2>"$tmp/err" &
  pid=$!
  for _ in $(seq 200); do
    [ -n "$(temps "dst.$fmt")" ] && break
    sleep 0.05
  done
  kill -KILL $pid
  wait $pid 2>/dev/null
  left=$(temps "dst.$fmt")
  [ -n "$left" ] || { problem "$fmt: no temporary after SIGKILL"; continue; }
  [ -e "$dst" ] && problem "$fmt: $dst exists after SIGKILL"

  # Beside it: a live writer's temporary, another output's, and a link.
  live=$tmp/out/.dst.$fmt.vab-LIVE00
  : >"$live"
  hold_flock "$live" || problem "$fmt: flock(1) did not start"
  : >"$tmp/out/.other.$fmt.vab-OTHER0"
  echo canary >"$tmp/canary"
  ln -s "$tmp/canary" "$tmp/out/.dst.$fmt.vab-LINK00"

  "$VAB" convert -q -O $fmt -o $fast "$tmp/src.raw" "$dst" 2>"$tmp/err"
  status=$?
  [ $status = 0 ] || { problem "$fmt: second convert: exit $status"; cat "$tmp/err"; }
  [ -f "$dst" ] || problem "$fmt: no $dst after the second convert"
  [ -e "$tmp/out/$left" ] && problem "$fmt: the stale $left is still there"
  [ -e "$live" ] || problem "$fmt: the live writer's temporary was removed"
  [ -e "$tmp/out/.other.$fmt.vab-OTHER0" ] ||
    problem "$fmt: another output's temporary was removed"
  [ -L "$tmp/out/.dst.$fmt.vab-LINK00" ] && [ "$(cat "$tmp/canary")" = canary ] ||
    problem "$fmt: the link with a temporary's name was touched"
  release_flock
  rm -f "$live" "$tmp/out/.other.$fmt.vab-OTHER0" "$tmp/out/.dst.$fmt.vab-LINK00"
  no_leftovers "$tmp/out"
  rm -f "$dst"
done
exit $fail
