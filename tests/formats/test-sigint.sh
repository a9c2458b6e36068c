#!/bin/bash
# Ctrl-C in the middle of a conversion: exit non-zero, no DST, no
# temporary file.  Errors behave the same.
. "$SRCDIR/tests/formats/functions.sh"
require python3

mkdir "$tmp/out"
make_data random "$tmp/src.raw" $((160 * 1024 * 1024))
for fmt in qcow2 raw; do
  "$VAB" convert -q -O $fmt -o compression=zstd,level=19 \
    "$tmp/src.raw" "$tmp/out/dst.$fmt" 2>"$tmp/err" &
  pid=$!
  # Once its temporary output exists, vab is converting (its handlers are
  # set before that); a fixed sleep raced with a slow start on a busy host.
  for _ in $(seq 300); do
    [ -n "$(ls -A "$tmp/out")" ] && break
    sleep 0.1
  done
  kill -INT $pid
  wait $pid
  status=$?
  [ $status = 1 ] || problem "$fmt: exit $status after SIGINT, want 1"
  grep -qx "vab convert: error: interrupted" "$tmp/err" ||
    problem "$fmt: message after SIGINT: $(cat "$tmp/err")"
  [ -z "$(ls -A "$tmp/out")" ] || problem "$fmt: left $(ls -A "$tmp/out")"
done

# An error mid-way (a source that ends early) leaves nothing either.
python3 "$SRCDIR/tests/formats/make-qcow2.py" "$tmp/h"
"$VAB" convert -q -O qcow2 "$tmp/h/bad-compressed.qcow2" "$tmp/out/x.qcow2" 2>/dev/null
[ $? = 1 ] || problem "bad source: exit not 1"
[ -z "$(ls -A "$tmp/out")" ] || problem "error left $(ls -A "$tmp/out")"

# A folder that cannot be written to.
"$VAB" convert -q -O qcow2 "$tmp/h/valid.qcow2" "$tmp/nonexistent/x.qcow2" 2>"$tmp/err"
[ $? = 1 ] || problem "missing folder: exit not 1"
grep -qF "vab convert: error: cannot create a file next to '$tmp/nonexistent/x.qcow2': No such file or directory" "$tmp/err" ||
  problem "missing folder message: $(cat "$tmp/err")"
exit $fail
