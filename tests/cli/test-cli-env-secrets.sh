#!/bin/bash
# Values from the environment (${env:NAME}, VAB_VAR_NAME) may be secrets:
# validate, validate --json, validate --print and a failing build (its
# stdout, stderr, --json and log) show them as written, never the value.
set -u
: "${VAB:?}" "${SRCDIR:?}"
fail=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vab-env-secrets.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
problem() { echo "FAIL: $*"; fail=1; }
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=99"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:exitcode=98"

canary=canary7f3a9c2e51d0b8
export VAB_TEST_SECRET=$canary VAB_VAR_greeting="hello-$canary"
cat >"$tmp/good.yaml" <<'YAML'
vab: 1
name: secrets
variables:
  greeting: hi
source:
  bootstrap: {suite: bookworm}
provisioners:
  - type: hostname
    hostname: "h-${env:VAB_TEST_SECRET}"
  - type: shell
    inline: ["echo ${env:VAB_TEST_SECRET} >/etc/token", "echo ${greeting}"]
YAML
# The same with values the schema refuses, each quoting the value.
sed -e 's/"h-${env:VAB_TEST_SECRET}"/"h_${env:VAB_TEST_SECRET}!"/' \
  "$tmp/good.yaml" >"$tmp/bad.yaml"
cat >>"$tmp/bad.yaml" <<'YAML'
disk: {size: "${env:VAB_TEST_SECRET}"}
users_: "${greeting}"
YAML

leaks() {  # WHAT FILE...: the canary is in none of them
  if grep -qF "$canary" "$@"; then
    problem "$1: the secret is shown:"
    grep -F "$canary" "$@" | sed 's/^/  /'
  fi
}
run() {  # NAME WANT CMD...: stdout+stderr in $tmp/NAME.out
  local name=$1 want=$2; shift 2
  "$@" >"$tmp/$name.out" 2>&1
  local status=$?
  [ $status = "$want" ] || { problem "$name: exit $status, want $want"; cat "$tmp/$name.out"; }
  leaks "$tmp/$name.out"
}

run validate-good 0 "$VAB" validate "$tmp/good.yaml"
run validate-bad 1 "$VAB" validate "$tmp/bad.yaml"
grep -qF "'h_\${env:VAB_TEST_SECRET}!' is not a valid host name" \
  "$tmp/validate-bad.out" || problem "validate: no host name error as written"
grep -qF "not '\${env:VAB_TEST_SECRET}'" "$tmp/validate-bad.out" ||
  problem "validate: no size error as written"
run json-bad 1 "$VAB" validate --json "$tmp/bad.yaml"
run json-good 0 "$VAB" validate --json --print "$tmp/good.yaml"
grep -qF 'echo ${env:VAB_TEST_SECRET} >/etc/token' "$tmp/json-good.out" ||
  problem "validate --json: the expanded template lacks the text as written"
"$VAB" validate --print "$tmp/good.yaml" >"$tmp/print.yaml" 2>"$tmp/print.err" ||
  problem "validate --print: exit $?"
leaks "$tmp/print.yaml" "$tmp/print.err"
grep -qF 'hostname: h-${env:VAB_TEST_SECRET}' "$tmp/print.yaml" ||
  problem "validate --print: no hostname as written"
grep -qF 'greeting: ${env:VAB_VAR_greeting}' "$tmp/print.yaml" ||
  problem "validate --print: no variable as written"
# The printed form loads again, with the same values.
run reprint 0 "$VAB" validate "$tmp/print.yaml"

# Builds that fail: at the schema, and on a missing signing key.
run build-bad 1 "$VAB" build --json -o "$tmp/out" --accel tcg \
  --cache-dir "$tmp/cache" "$tmp/bad.yaml"
run build-key 1 "$VAB" build --json -o "$tmp/out" --accel tcg \
  --cache-dir "$tmp/cache" --sign-key "$tmp/no-such.key" "$tmp/good.yaml"
[ -f "$tmp/out/secrets-0.log" ] || problem "build: no log"
leaks "$tmp/out/secrets-0.log"
exit $fail
