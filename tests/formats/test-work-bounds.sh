#!/bin/bash
# Small images whose shared tables or clusters would make inspect or convert
# work for minutes or hours (make-amplified.py): each ends within seconds
# with exit 1 and the message naming the file.  Legitimately shared
# clusters (vab's dedup, with and without compression) still check clean.
. "$SRCDIR/tests/formats/functions.sh"
require python3 timeout

python3 "$SRCDIR/tests/formats/make-amplified.py" "$tmp/a" || exit 1
d="$tmp/a"

n=0
while IFS=$'\t' read -r name command message; do
  n=$((n + 1))
  img="$d/$name"
  if [ "$command" = inspect ]; then
    timeout -s KILL 20 "$VAB" inspect "$img" >"$tmp/out" 2>"$tmp/err"
  else
    timeout -s KILL 20 "$VAB" convert -q -O qcow2 "$img" "$tmp/out.qcow2" \
      2>"$tmp/err"
  fi
  got=$?  # 137 if the timeout killed it
  [ $got = 1 ] || { problem "$name: $command exit $got, want 1"; cat "$tmp/err"; }
  if [ -n "$message" ]; then
    want="vab $command: error: ${message//\{path\}/$img}"
    grep -qxF -- "$want" "$tmp/err" ||
      problem "$name: stderr lacks '$want': $(cat "$tmp/err")"
  else
    grep -q '^check: .* [1-9][0-9]* errors' "$tmp/out" ||
      problem "$name: no check errors: $(cat "$tmp/out")"
  fi
  [ ! -e "$tmp/out.qcow2" ] || problem "$name: convert left its output"
  no_leftovers "$tmp"
done <"$d/expect"
[ $n -ge 7 ] || problem "only $n cases"

# Shared on purpose: dedup'd images check with 0 errors and read back.
make_data dup "$tmp/dup.raw" $((4 << 20))
for opts in dedup=on dedup=on,compression=zlib dedup=on,compression=zstd; do
  "$VAB" convert -q -O qcow2 -o "$opts" "$tmp/dup.raw" "$tmp/dup.qcow2" ||
    problem "$opts: convert"
  timeout 20 "$VAB" inspect "$tmp/dup.qcow2" >"$tmp/out" 2>"$tmp/err" ||
    problem "$opts: inspect exit $?: $(cat "$tmp/err")"
  grep -q '^check: *0 errors, 0 leaks' "$tmp/out" ||
    problem "$opts: $(grep check: "$tmp/out")"
  grep -q '^shared clusters: *[1-9]' "$tmp/out" ||
    problem "$opts: nothing shared: $(cat "$tmp/out")"
  "$VAB" convert -q -O raw "$tmp/dup.qcow2" "$tmp/back.raw" ||
    problem "$opts: convert back"
  cmp -s "$tmp/dup.raw" "$tmp/back.raw" || problem "$opts: reads back wrong"
  rm -f "$tmp/dup.qcow2" "$tmp/back.raw"
done
exit $fail
