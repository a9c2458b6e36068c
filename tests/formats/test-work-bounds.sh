#!/bin/bash
# Small images whose shared tables or clusters would make inspect or convert
# work for minutes or hours (make-amplified.py): each ends within seconds
# with exit 1 and the message naming the file.  Legitimately shared
# clusters (vab's dedup, with and without compression) still check clean.
. "$SRCDIR/tests/formats/functions.sh"
require python3 timeout

python3 "$SRCDIR/tests/formats/make-amplified.py" "$tmp/a" || exit 1
d="$tmp/a"

# The bound is on CPU time, not wall time: on a CI host two TCG guests and
# a compiler share the cores, and an ASan build needs about 15 CPU seconds
# for the snapshot case, so a wall-clock limit measured the load instead.
# Unbounded work ran for minutes of CPU before the fix.  The sanitizer run
# (scripts/check.sh) sets VAB_TEST_CPU_FACTOR; the wall limit only keeps a
# stuck process from hanging the suite.
cpu_limit=$((20 * ${VAB_TEST_CPU_FACTOR:-1}))
bounded() {
  ( ulimit -t "$cpu_limit" && exec timeout -s KILL 600 "$@" )
  local status=$?
  # SIGXCPU (152) at the CPU limit is a kill like timeout's.
  [ "$status" -eq 152 ] && status=137
  return "$status"
}

n=0
while IFS=$'\t' read -r name command message; do
  n=$((n + 1))
  img="$d/$name"
  if [ "$command" = inspect ]; then
    bounded "$VAB" inspect "$img" >"$tmp/out" 2>"$tmp/err"
  else
    bounded "$VAB" convert -q -O qcow2 "$img" "$tmp/out.qcow2" 2>"$tmp/err"
  fi
  got=$?  # 137 if the limit killed it
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
  bounded "$VAB" inspect "$tmp/dup.qcow2" >"$tmp/out" 2>"$tmp/err" ||
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
