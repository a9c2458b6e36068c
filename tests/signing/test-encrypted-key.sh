#!/bin/bash
# A passphrase-protected key: from the environment or a file descriptor,
# never echoed.
set -u
. "$SRCDIR/tests/signing/lib.sh"

export VAB_TEST_PASS='correct horse battery staple'
expect_ok "keygen encrypted" "$VAB" keygen --type ecdsa-p256 \
  --passphrase-env VAB_TEST_PASS -o "$work/k"
grep -q "ENCRYPTED PRIVATE KEY" "$work/k.key" || fail "key is not encrypted"
mkdir "$work/out"
printf 'data\n' >"$work/out/app-1.0.raw"
"$MAKE_MANIFEST" "$work/out/app-1.0.manifest.json" "$work/out/app-1.0.raw" || fail make-manifest

expect_fail "sign without the passphrase" "is encrypted; give its passphrase" \
  "$VAB" sign --key "$work/k.key" "$work/out"
export VAB_WRONG_PASS=nope
expect_fail "sign with a wrong passphrase" "wrong passphrase" \
  "$VAB" sign --key "$work/k.key" --passphrase-env VAB_WRONG_PASS "$work/out"
expect_fail "sign with an unset variable" "is not set" \
  "$VAB" sign --key "$work/k.key" --passphrase-env VAB_NO_SUCH_VAR "$work/out"
expect_ok "sign with the passphrase from the environment" \
  "$VAB" sign --key "$work/k.key" --passphrase-env VAB_TEST_PASS "$work/out"
rm "$work/out/app-1.0.manifest.json.sig"
expect_ok "sign with the passphrase from fd 3" \
  "$VAB" sign --key "$work/k.key" --passphrase-fd 3 "$work/out" \
  3< <(printf '%s\n' "$VAB_TEST_PASS")
expect_ok "verify" "$VAB" verify --pubkey "$work/k.pub" "$work/out"
if grep -rq "correct horse" "$work"/*.log 2>/dev/null; then
  fail "the passphrase appears in command output"
fi
finish
