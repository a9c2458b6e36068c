# Shared by the signing CLI tests.  Needs $VAB; $MAKE_MANIFEST is the
# helper that writes a manifest for given files.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
n=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
expect_ok() {  # NAME CMD...
  local name=$1; shift
  n=$((n + 1))
  if ! "$@" >"$work/$n.log" 2>&1; then
    fail "$name: exit $?"; cat "$work/$n.log"
  fi
}
expect_status() {  # STATUS NAME CMD...
  local want=$1 name=$2; shift 2
  n=$((n + 1))
  "$@" >"$work/$n.log" 2>&1
  local got=$?
  [ "$got" = "$want" ] || { fail "$name: exit $got, wanted $want"; cat "$work/$n.log"; }
}
expect_fail() {  # NAME MESSAGE CMD...: exit 1 and MESSAGE on stderr
  local name=$1 msg=$2; shift 2
  n=$((n + 1))
  "$@" >"$work/$n.log" 2>&1
  local got=$?
  [ "$got" = 1 ] || fail "$name: exit $got, wanted 1"
  grep -qF -- "$msg" "$work/$n.log" || { fail "$name: no '$msg' in:"; cat "$work/$n.log"; }
}
flip_byte() {  # FILE OFFSET
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $(((b ^ 1) & 255)))" |
    dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
finish() {
  if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
  fi
  echo "all $n checks passed"
  exit 0
}
