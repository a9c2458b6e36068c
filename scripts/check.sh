#!/bin/bash
# The README's test command: install what is missing, build, and run the
# whole test suite, then the same suites under ASan+UBSan, then each fuzz
# target for a bounded time.  Ends with one "N passed, N failed" line.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/scripts/install-deps.sh" || exit 1

# libguestfs and qemu tests run under TCG where KVM does not work; vab
# probes for that itself, this only keeps test runs bounded.
export LIBGUESTFS_CACHEDIR=${LIBGUESTFS_CACHEDIR:-/var/tmp}
fuzz_seconds=${VAB_FUZZ_SECONDS:-30}

passed=0
failed=0
skipped=0
count_meson() {  # $1 = build dir: add its testlog.json results
  local log="$1/meson-logs/testlog.json"
  [ -f "$log" ] || return 0
  local p f s
  p=$(grep -c '"result": "OK"' "$log" || true)
  f=$(grep -cE '"result": "(FAIL|ERROR|TIMEOUT|UNEXPECTEDPASS|INTERRUPT)"' "$log" || true)
  s=$(grep -c '"result": "SKIP"' "$log" || true)
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
}

step() { printf '\n=== %s ===\n' "$*"; }

step "build (debugoptimized)"
[ -f build/build.ninja ] || meson setup build || exit 1
meson compile -C build || exit 1
# The ASan+UBSan build, its tests and the fuzz targets run in the background
# while the normal build's tests run: those are mostly VMs under TCG waiting
# on one vCPU thread each, so the second core has room, and the run ends
# sooner (CI has a time budget).  Their output is shown after the tests'.
sanitize_log=$(mktemp)
sanitize_counts=$(mktemp)
sanitized_checks() {
  passed=0 failed=0 skipped=0
  step "build (ASan+UBSan)"
  if [ ! -f build-asan/build.ninja ]; then
    meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
      -Dbuildtype=debug || exit 1
  fi
  meson compile -C build-asan || exit 1
  step "tests under ASan+UBSan (fast suites)"
  # Tests that bound a command's CPU time allow the sanitizers' cost.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  VAB_TEST_CPU_FACTOR=5 \
    meson test -C build-asan --print-errorlogs --num-processes 2 \
      --no-suite slow
  count_meson build-asan

  step "fuzz targets (${fuzz_seconds}s each)"
  if [ ! -f build-fuzz/build.ninja ]; then
    CC=clang meson setup build-fuzz -Dfuzzing=true -Db_lundef=false \
      -Dbuildtype=debugoptimized || exit 1
  fi
  meson compile -C build-fuzz || exit 1
  for fuzzer in build-fuzz/tests/fuzz/fuzz-*; do
    # Executables only, not meson's fuzz-NAME.p object folders.
    [ -f "$fuzzer" ] && [ -x "$fuzzer" ] || continue
    name=$(basename "$fuzzer")
    corpus="tests/fuzz/corpus/${name#fuzz-}"
    work=$(mktemp -d)
    [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
    echo "--- $name"
    if "$fuzzer" -max_total_time="$fuzz_seconds" -rss_limit_mb=1024 \
         -timeout=10 -print_final_stats=1 "$work" 2>"$work.log"; then
      tail -n 3 "$work.log"
      passed=$((passed + 1))
    else
      tail -n 40 "$work.log"
      failed=$((failed + 1))
    fi
    rm -rf "$work" "$work.log"
  done
  echo "$passed $failed $skipped" >"$sanitize_counts"
}
sanitized_checks >"$sanitize_log" 2>&1 &
sanitize_pid=$!
trap 'kill "$sanitize_pid" 2>/dev/null; rm -f "$sanitize_log" "$sanitize_counts"' EXIT

step "tests"
meson test -C build --print-errorlogs --num-processes 2
count_meson build

wait "$sanitize_pid"
cat "$sanitize_log"
if read -r p f s <"$sanitize_counts"; then
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
else
  echo "the ASan+UBSan and fuzz checks did not finish" >&2
  failed=$((failed + 1))
fi

echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
