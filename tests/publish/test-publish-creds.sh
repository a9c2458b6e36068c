#!/bin/bash
# Credentials stay where they belong:
#  - a Bearer token realm on another origin (another port of 127.0.0.1)
#    never sees an Authorization header; vab asks it for an anonymous
#    token, unless --send-creds-to-realm (or the variable) says otherwise;
#  - a realm on the registry's own origin gets the credentials;
#  - a registry that echoes the Authorization header and the password in
#    its error bodies and a Warning header gets them masked in every
#    message and in --json, with control characters replaced.
set -u
. "$SRCDIR/tests/publish/lib.sh"

make_fake_artifact "$work/store" 5000
pw='Sup3r-S3cret:pw/x'
printf '%s\n' "$pw" >"$work/store/password"

start_fake_registry realm "$work/store"
reg="127.0.0.1:$fake_port"
check "pull with a token realm on another origin" "$VAB" pull \
  "$reg/team/app:1.0" -o "$work/out1" --creds "vab:$pw"
grep -qF "is another origin; asking it for an anonymous token" "$work/$n.log" ||
  fail "no word that the token is asked for anonymously: $(cat "$work/$n.log")"
cmp -s "$work/out1/app-1.0.raw" "$work/store/app-1.0.raw" || fail "pulled file differs"
grep -q "^$fake_other_port GET /token" "$work/fake.log" ||
  fail "the realm was never asked: $(cat "$work/fake.log")"
grep -q "^$fake_other_port .*auth=present" "$work/fake.log" &&
  fail "the realm on another origin saw an Authorization header: $(cat "$work/fake.log")"

: >"$work/fake.log"
check "--send-creds-to-realm" "$VAB" pull "$reg/team/app:1.0" -o "$work/out2" \
  --creds "vab:$pw" --send-creds-to-realm
grep -q "^$fake_other_port GET /token.* auth=present" "$work/fake.log" ||
  fail "--send-creds-to-realm sent no credentials: $(cat "$work/fake.log")"
: >"$work/fake.log"
check "VAB_REGISTRY_SEND_CREDS_TO_REALM=1" env VAB_REGISTRY_SEND_CREDS_TO_REALM=1 \
  "$VAB" pull "$reg/team/app:1.0" -o "$work/out3" --creds "vab:$pw"
grep -q "^$fake_other_port GET /token.* auth=present" "$work/fake.log" ||
  fail "the variable sent no credentials: $(cat "$work/fake.log")"

start_fake_registry realm-same "$work/store"
check "pull with a token realm on the same origin" "$VAB" pull \
  "127.0.0.1:$fake_port/team/app:1.0" -o "$work/out4" --creds "vab:$pw"
grep -q "^$fake_port GET /token.* auth=present" "$work/fake.log" ||
  fail "the same-origin realm got no credentials: $(cat "$work/fake.log")"

# A registry that echoes what it was sent.
start_fake_registry echo "$work/store"
reg="127.0.0.1:$fake_port"
b64=$(printf 'vab:%s' "$pw" | base64 -w0)
no_secret() {  # NAME FILE
  grep -qF -- "$pw" "$2" && fail "$1: the password is in: $(cat "$2")"
  grep -qF -- "$b64" "$2" && fail "$1: the base64 credentials are in: $(cat "$2")"
  grep -qF -- "Sup3r-S3cret" "$2" && fail "$1: part of the password is in: $(cat "$2")"
  grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$2" && fail "$1: control characters in: $(cat -v "$2")"
  grep -qF "[redacted]" "$2" || fail "$1: nothing was masked: $(cat "$2")"
}
expect_fail "an error body that echoes the credentials (JSON)" \
  "registry $reg answered HTTP 403 (DENIED: you sent Basic [redacted], that is [redacted], password [redacted])" \
  "$VAB" pull "$reg/team/app:1.0" -o "$work/out5" --creds "vab:$pw"
no_secret "JSON error body" "$work/$n.log"
grep -qF 'warning: registry 127.0.0.1:'"$fake_port"': 299 - "header was Basic [redacted]"' "$work/$n.log" ||
  fail "the Warning header was not shown masked: $(cat "$work/$n.log")"
"$VAB" pull "$reg/team/app:1.0" -o "$work/out6" --creds "vab:$pw" --json \
  >"$work/echo.json" 2>"$work/echo.err"
n=$((n + 1))
jq -e '.pulled == false and (.diagnostics | length) > 0' "$work/echo.json" >/dev/null ||
  fail "--json: $(cat "$work/echo.json")"
no_secret "--json" "$work/echo.json"
expect_fail "an error body that echoes the credentials (text, escapes)" \
  "(?[31mdenied?[0m ?you sent Basic [redacted], that is [redacted], password [redacted]?)" \
  "$VAB" pull "$reg/team/app:2.0" -o "$work/out7" --creds "vab:$pw"
no_secret "text error body" "$work/$n.log"
finish
