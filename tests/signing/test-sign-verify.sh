#!/bin/bash
# keygen, sign and verify as a user runs them, checked with plain openssl,
# plus every kind of tampering.
set -u
. "$SRCDIR/tests/signing/lib.sh"

for type in ed25519 ecdsa-p256 rsa-3072; do
  dir="$work/$type"
  mkdir -p "$dir/out"
  expect_ok "keygen $type" "$VAB" keygen --type "$type" \
    --cert-subject "/CN=vab test $type/O=vab" -o "$dir/k"
  [ "$(stat -c %a "$dir/k.key")" = 600 ] || fail "$type: key mode is $(stat -c %a "$dir/k.key")"
  openssl pkey -in "$dir/k.key" -noout || fail "$type: openssl cannot read the key"
  subject=$(openssl x509 -in "$dir/k.crt" -noout -subject)
  case "$subject" in *"CN = vab test $type"*) ;; *) fail "$type: subject '$subject'";; esac
  openssl x509 -in "$dir/k.crt" -pubkey -noout | cmp -s - "$dir/k.pub" ||
    fail "$type: certificate key differs from .pub"
  expect_fail "keygen without --force over existing" "already exists" \
    "$VAB" keygen --type "$type" -o "$dir/k"

  head -c 300000 /dev/urandom >"$dir/out/app-1.0.qcow2"
  printf 'hello\n' >"$dir/out/app-1.0.raw"
  "$MAKE_MANIFEST" "$dir/out/app-1.0.manifest.json" \
    "$dir/out/app-1.0.qcow2" "$dir/out/app-1.0.raw" || fail "make-manifest"
  expect_ok "sign $type" "$VAB" sign --key "$dir/k.key" --cert "$dir/k.crt" "$dir/out"
  expect_ok "verify $type with pubkey" "$VAB" verify --pubkey "$dir/k.pub" "$dir/out"
  expect_ok "verify $type with cert" "$VAB" verify --cert "$dir/k.crt" \
    "$dir/out/app-1.0.manifest.json"

  # Without vab: the documented openssl commands.
  m="$dir/out/app-1.0.manifest.json"
  if [ "$type" = ed25519 ]; then
    openssl pkeyutl -verify -pubin -inkey "$dir/k.pub" -rawin -in "$m" \
      -sigfile "$m.sig" >/dev/null || fail "$type: openssl rejects the signature"
  else
    openssl dgst -sha256 -verify "$dir/k.pub" -signature "$m.sig" "$m" >/dev/null ||
      fail "$type: openssl rejects the signature"
  fi

  # Tampering: each gets named, exit 1.
  for f in app-1.0.qcow2 app-1.0.raw; do
    cp "$dir/out/$f" "$work/saved"
    flip_byte "$dir/out/$f" 1
    expect_fail "verify after flipping $f" "artifact '$f': sha256 is" \
      "$VAB" verify --pubkey "$dir/k.pub" "$dir/out"
    cp "$work/saved" "$dir/out/$f"
  done
  cp "$m" "$work/saved"
  flip_byte "$m" 20
  expect_fail "verify after flipping the manifest" "bad signature on '$m'" \
    "$VAB" verify --pubkey "$dir/k.pub" "$dir/out"
  cp "$work/saved" "$m"
  cp "$m.sig" "$work/saved"
  flip_byte "$m.sig" 10
  expect_fail "verify after flipping the signature" "bad signature on '$m'" \
    "$VAB" verify --pubkey "$dir/k.pub" "$dir/out"
  cp "$work/saved" "$m.sig"
  expect_ok "verify restored $type" "$VAB" verify --pubkey "$dir/k.pub" "$dir/out"
done

# A wrong key is refused.
expect_fail "verify with another key" "bad signature" \
  "$VAB" verify --pubkey "$work/ed25519/k.pub" "$work/rsa-3072/out"
# A missing artifact is named.
rm "$work/rsa-3072/out/app-1.0.raw"
expect_fail "verify with a missing artifact" "artifact 'app-1.0.raw' is missing" \
  "$VAB" verify --pubkey "$work/rsa-3072/k.pub" "$work/rsa-3072/out"
# A readable private key is refused.
chmod 644 "$work/ecdsa-p256/k.key"
expect_fail "sign with a world-readable key" "can be read by group or others" \
  "$VAB" sign --key "$work/ecdsa-p256/k.key" "$work/ecdsa-p256/out"
chmod 600 "$work/ecdsa-p256/k.key"
# A certificate of another key is refused.
expect_fail "sign with a mismatched certificate" "does not match key" \
  "$VAB" sign --key "$work/ecdsa-p256/k.key" --cert "$work/ed25519/k.crt" \
  "$work/ecdsa-p256/out"
# vab build --sign-key: a key that cannot be used fails the build before any
# work starts (no bootstrap, no VM), names the key, and leaves no image.
chmod 644 "$work/rsa-3072/k.key"
expect_fail "build with a group/world-readable --sign-key" \
  "cannot sign the build with '$work/rsa-3072/k.key' (--sign-key)" \
  timeout 60 "$VAB" build "$SRCDIR/examples/minimal.yaml" --accel tcg \
  --cache-dir "$work/cache" -o "$work/build" \
  --sign-key "$work/rsa-3072/k.key" --sign-cert "$work/rsa-3072/k.crt"
chmod 600 "$work/rsa-3072/k.key"
expect_fail "build with a missing --sign-key" "(--sign-key)" \
  timeout 60 "$VAB" build "$SRCDIR/examples/minimal.yaml" --accel tcg \
  --cache-dir "$work/cache" -o "$work/build" --sign-key "$work/none.key"
[ -z "$(ls "$work/build" | grep -v '\.log$')" ] ||
  fail "a refused --sign-key left files: $(ls "$work/build")"
[ ! -e "$work/cache" ] || [ -z "$(ls -A "$work/cache")" ] ||
  fail "a refused --sign-key started the bootstrap"
expect_status 2 "build --sign-cert without --sign-key" \
  "$VAB" build "$SRCDIR/examples/minimal.yaml" --sign-cert "$work/rsa-3072/k.crt"

# Usage errors exit 2.
expect_status 2 "verify without a key" "$VAB" verify "$work/ed25519/out"
expect_status 2 "sign without --key" "$VAB" sign "$work/ed25519/out"
expect_status 2 "keygen with a bad type" "$VAB" keygen --type dsa -o "$work/x"

finish
