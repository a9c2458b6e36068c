#!/bin/bash
# Nothing blocks forever on a FIFO (issue 10, item 6): a key, a manifest,
# a signature, an artifact, an auth file or a template input that is a
# FIFO is refused at once as "not a regular file", never opened for a
# read that would wait for a writer.
set -u
. "$SRCDIR/tests/signing/lib.sh"

# Every command runs under timeout: a hang is exit 124, not a stuck test.
expect_fifo() {  # NAME CMD...: exit 1 within 20 s, "not a regular file"
  local name=$1; shift
  expect_fail "$name" "not a regular file" timeout 20 "$@"
}

mkfifo "$work/fifo"
"$VAB" keygen --type ed25519 -o "$work/k" >/dev/null 2>&1 || fail "keygen"
mkdir -p "$work/out"
printf 'hello\n' >"$work/out/app-1.0.raw"
"$MAKE_MANIFEST" "$work/out/app-1.0.manifest.json" "$work/out/app-1.0.raw" ||
  fail "make-manifest"
"$VAB" sign --key "$work/k.key" "$work/out" >/dev/null 2>&1 || fail "sign"

expect_fifo "verify --pubkey FIFO" "$VAB" verify --pubkey "$work/fifo" "$work/out"
expect_fifo "verify --cert FIFO" "$VAB" verify --cert "$work/fifo" "$work/out"
mkfifo -m 600 "$work/keyfifo"
expect_fifo "sign --key FIFO" "$VAB" sign --key "$work/keyfifo" "$work/out"

# A manifest, a signature and an artifact swapped for FIFOs.
for victim in app-1.0.manifest.json app-1.0.manifest.json.sig app-1.0.raw; do
  rm -rf "$work/planted"
  cp -r "$work/out" "$work/planted"
  rm -f "$work/planted/$victim"
  mkfifo "$work/planted/$victim"
  target="$work/planted"
  [ "$victim" = app-1.0.manifest.json ] && target="$work/planted/$victim"
  expect_fifo "verify with $victim a FIFO" "$VAB" verify --pubkey "$work/k.pub" "$target"
done

# publish reads its auth file before it connects anywhere.
expect_fifo "publish --authfile FIFO" "$VAB" publish "$work/out" \
  127.0.0.1:9/vab/fifo --authfile "$work/fifo"

# A template whose file step names a FIFO: refused while planning, before
# any VM (the build log says why).
cat >"$work/t.yaml" <<YAML
vab: 1
name: fifo
source:
  bootstrap: {suite: bookworm}
provisioners:
  - type: file
    source: $work/fifo
    destination: /etc/fifo
YAML
expect_fail "build with a FIFO file source" "is neither a file nor a folder" \
  timeout 20 "$VAB" build "$work/t.yaml" -o "$work/build-out" --no-test
finish
