#!/bin/bash
# The vab command's help, version and usage errors, as a user meets them.
set -u
: "${VAB:?}"
fail=0
check() {  # check WANT_STATUS DESCRIPTION -- COMMAND...
  local want=$1 what=$2
  shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [ "$got" -ne "$want" ]; then
    echo "FAIL: $what: exit $got, want $want"
    sed 's/^/  stderr: /' "$tmp/err"
    fail=1
  fi
}
expect_in() {  # expect_in FILE TEXT
  if ! grep -qF -- "$2" "$tmp/$1"; then
    echo "FAIL: $1 lacks '$2'"
    sed "s/^/  $1: /" "$tmp/$1"
    fail=1
  fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check 0 "vab --help" -- "$VAB" --help
expect_in out "usage: vab [--version] [--help] COMMAND [ARGS]"
expect_in out "  validate   check a template and show every problem in it"

check 0 "vab --version" -- "$VAB" --version
grep -qE '^vab [0-9]+\.[0-9]+\.[0-9]+$' "$tmp/out" ||
  { echo "FAIL: --version printed '$(cat "$tmp/out")'"; fail=1; }

check 0 "vab help validate" -- "$VAB" help validate
expect_in out "usage: vab validate TEMPLATE [--var NAME=VALUE]... [--json] [--print]"
cp "$tmp/out" "$tmp/help1"
check 0 "vab validate --help" -- "$VAB" validate --help
cmp -s "$tmp/out" "$tmp/help1" ||
  { echo "FAIL: 'vab validate --help' differs from 'vab help validate'"; fail=1; }
check 0 "vab validate -h" -- "$VAB" validate -h

check 2 "no command" -- "$VAB"
expect_in err "usage: vab"
check 2 "unknown command" -- "$VAB" frobnicate
expect_in err "vab: 'frobnicate' is not a vab command. See 'vab --help'."
check 2 "help for an unknown command" -- "$VAB" help frobnicate
check 2 "unknown global option" -- "$VAB" --frobnicate
expect_in err "vab: unknown option '--frobnicate'"
check 2 "unknown validate option" -- "$VAB" validate --frobnicate x.yaml
expect_in err "vab validate: unknown option '--frobnicate'"
expect_in err "See 'vab validate --help'."
check 2 "validate without a template" -- "$VAB" validate
expect_in err "vab validate: missing TEMPLATE"
check 2 "validate with two templates" -- "$VAB" validate a.yaml b.yaml
expect_in err "vab validate: too many arguments"
check 2 "malformed --var" -- "$VAB" validate --var novalue x.yaml
expect_in err "vab validate: --var wants NAME=VALUE, not 'novalue'"

exit $fail
