# Sourced by the format tests: a scratch folder, a failure counter and
# data generators.  $VAB is the vab binary, $SRCDIR the source tree.
set -u
: "${VAB:?}" "${SRCDIR:?}"
fail=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vab-fmt-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
problem() { echo "FAIL: $*"; fail=1; }
# Under ASan/UBSan a sanitizer report must not pass for vab's own exit 1.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=99"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:print_stacktrace=1:exitcode=98"

# hold_flock PATH: a live process (flock(1) running sleep) holds PATH's
# lock until release_flock; 1 when it did not start.
hold_flock() {
  flock "$1" sleep 60 </dev/null >/dev/null 2>&1 &
  flock_holder=$!
  flock_sleeper=
  for _ in $(seq 100); do
    # flock(1) holds the lock once it has started sleep.
    flock_sleeper=$(ps -o pid= --ppid $flock_holder 2>/dev/null | tr -d ' ')
    [ -n "$flock_sleeper" ] && return 0
    sleep 0.05
  done
  return 1
}
release_flock() {
  kill $flock_sleeper $flock_holder 2>/dev/null
  wait $flock_holder 2>/dev/null
}

require() {
  for p in "$@"; do
    command -v "$p" >/dev/null || { echo "SKIP: $p is not installed"; exit 77; }
  done
}

# make_data KIND FILE SIZE: deterministic test data.
#   zero    all zero (a hole)
#   random  incompressible
#   text    text-like, compresses well
#   mixed   random, text, zero runs and holes, with a short tail
#   dup     few distinct 64 KiB blocks, repeated
make_data() {
  python3 - "$1" "$2" "$3" <<'PY'
import random, sys
kind, path, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(42)
words = [b"kernel", b"module", b"appliance", b"vab", b"qcow2", b"the",
         b"cluster", b"disk", b"image", b"\n", b"usr/lib/", b"0x1f"]
def text(n):
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words) + b" " + str(rng.randrange(1000)).encode()
    return bytes(out[:n])
with open(path, "wb") as f:
    f.truncate(size)
    if kind == "random":
        for off in range(0, size, 1 << 20):
            f.write(rng.randbytes(min(1 << 20, size - off)))
    elif kind == "text":
        f.write(text(size))
    elif kind == "mixed":
        step = 1 << 20
        for i, off in enumerate(range(0, size, step)):
            n = min(step, size - off)
            f.seek(off)
            part = i % 4
            if part == 0:
                f.write(rng.randbytes(n))
            elif part == 1:
                f.write(text(n))
            elif part == 2:
                f.write(bytes(n))     # zeros written as data
            # part 3: a hole
    elif kind == "dup":
        blocks = [rng.randbytes(65536) for _ in range(4)] + [text(65536)]
        for i, off in enumerate(range(0, size, 65536)):
            f.seek(off)
            f.write(blocks[(i * 7) % 5][:size - off])
PY
}

# expect_file_absent FILE... and no temp file left in their folders.
no_leftovers() {
  local d=$1
  if ls -A "$d" | grep -q '\.vab-'; then
    problem "temporary files left in $d: $(ls -A "$d" | grep '\.vab-')"
  fi
}
