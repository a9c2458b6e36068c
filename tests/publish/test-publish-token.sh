#!/bin/bash
# The Bearer token flow against docker-registry with token auth: vab asks
# the token server for the scope the registry names, with Basic
# credentials, and uses the token; wrong or missing credentials fail
# clearly, and no password is ever printed.  The token server listens on
# another port, another origin: it gets the credentials only with
# --send-creds-to-realm, and without it is asked anonymously.
set -u
. "$SRCDIR/tests/publish/lib.sh"
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }

setup_token_registry vab tok3n-pass
start_registry
ca="$work/tls/ca.crt"

build="$work/build"
mkdir -p "$build"
head -c 200000 /dev/urandom >"$build/app-1.0.qcow2"
"$MAKE_MANIFEST" "$build/app-1.0.manifest.json" "$build/app-1.0.qcow2" || exit 1

expect_fail "credentials withheld from a realm on another origin" \
  "the token server of $host refused anonymous access (HTTP 401)" \
  "$VAB" publish "$build" "$host/team/app" --creds vab:tok3n-pass --ca-cert "$ca"
grep -qF -- "--send-creds-to-realm" "$work/$n.log" ||
  fail "no hint at --send-creds-to-realm: $(cat "$work/$n.log")"
grep -q "credentials=good" "$work/token.log" &&
  fail "the token server got the credentials: $(cat "$work/token.log")"
check "publish with a token" "$VAB" publish "$build" "$host/team/app" \
  --creds vab:tok3n-pass --ca-cert "$ca" --send-creds-to-realm
grep -q "scope=repository:team/app:pull,push credentials=good" "$work/token.log" ||
  fail "no token was asked for repository:team/app:pull,push: $(cat "$work/token.log")"
check "pull with a token" env VAB_REGISTRY_SEND_CREDS_TO_REALM=1 "$VAB" pull \
  "$host/team/app:1.0" -o "$work/pulled" --creds vab:tok3n-pass --ca-cert "$ca"
cmp -s "$work/pulled/app-1.0.qcow2" "$build/app-1.0.qcow2" || fail "pulled file differs"
grep -q "scope=repository:team/app:pull credentials=good" "$work/token.log" ||
  fail "pull asked for no pull-only token: $(cat "$work/token.log")"

expect_fail "wrong password at the token server" \
  "the token server of $host refused the credentials (HTTP 401)" \
  "$VAB" publish "$build" "$host/team/app" --creds vab:wrong --ca-cert "$ca" \
  --send-creds-to-realm
grep -q "wrong\|tok3n" "$work/$n.log" && fail "a password was printed"
expect_fail "anonymous at the token server" \
  "the token server of $host refused anonymous access (HTTP 401)" \
  env HOME="$work/emptyhome" XDG_RUNTIME_DIR= "$VAB" pull "$host/team/app:1.0" \
  -o "$work/anon" --ca-cert "$ca"
finish
