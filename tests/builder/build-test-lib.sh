# Shared by the tests/builder/test-build-*.sh tests (suite "slow").
# Sourced with VAB, SRCDIR and BUILDDIR set by meson.
set -u
# free_port, start_plain_registry
. "$SRCDIR/tests/lib/registry.sh"

# One cache for every build test of a run, so mmdebstrap runs once.
VAB_TEST_CACHE=${VAB_TEST_CACHE:-$BUILDDIR/tests/builder/vab-cache}
# The supermin appliance is cached outside the tests' own TMPDIR (else
# libguestfs would rebuild it there and the "nothing left" checks fail).
export LIBGUESTFS_CACHEDIR=${LIBGUESTFS_CACHEDIR:-/var/tmp}
export LIBGUESTFS_BACKEND=direct
# guestfish and virt-inspector, used to check the images, do not probe KVM
# as vab does; TCG works everywhere (where KVM hangs, as on nested hosts).
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}

failures=0
# Each line says when (seconds since the test started): where a slow
# test's time goes, read from CI's log.
fail() {
  echo "FAIL: $* [${SECONDS}s]" >&2
  failures=$((failures + 1))
}
pass() { echo "ok: $* [${SECONDS}s]"; }

# check DESCRIPTION COMMAND...: run COMMAND, record a failure if it fails.
check() {
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

require_tools() {
  for tool in qemu-system-x86_64 qemu-img mmdebstrap guestfish; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      echo "SKIP: $tool is not installed"
      exit 77
    fi
  done
}

# A private work area: TMPDIR for the build (its work folder and
# libguestfs's sockets go there) and an output folder.
setup_area() {
  AREA=$BUILDDIR/tests/builder/area-$1
  rm -rf "$AREA"
  mkdir -p "$AREA/tmp" "$AREA/out"
  export TMPDIR=$AREA/tmp
  # A build without --cache-dir uses the area's own step cache, never the
  # user's ~/.cache/vab (entries there would outlive the run and turn the
  # next run's steps into cache hits).
  export XDG_CACHE_HOME=$AREA/xdg-cache
}

# Nothing of a build may be left in its TMPDIR.
tmp_is_empty() {
  [ -z "$(ls -A "$AREA/tmp")" ]
}

# No qemu started for this area may still run.
no_qemu_left() {
  ! pgrep -f "qemu-system.*$AREA" >/dev/null
}

finish() {
  if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
  fi
  rm -rf "$AREA"
  exit 0
}
