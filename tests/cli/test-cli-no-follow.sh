#!/bin/bash
# Outputs never follow planted links: a symbolic (or hard) link at every
# name that a failing build, keygen, sign and convert write points at a
# canary outside the folder.  The canary must be unchanged, nothing must
# appear beside it, and each name must end up a regular file of vab's (or
# keep the link, for outputs a failing command does not write).
set -u
: "${VAB:?}" "${SRCDIR:?}" "${BUILDDIR:?}"
fail=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vab-no-follow.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
problem() { echo "FAIL: $*"; fail=1; }
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=99"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:exitcode=98"

outside=$tmp/outside
mkdir "$outside"
echo "canary: must stay as it is" >"$outside/canary"
chmod 0644 "$outside/canary"
canary_sum=$(sha256sum <"$outside/canary")
canary_ls=$(ls -A "$outside"; stat -c "%s %y %h" "$outside/canary")
check_canary() {  # WHAT
  [ "$(sha256sum <"$outside/canary")" = "$canary_sum" ] ||
    problem "$1: the canary was written through a link"
  [ "$(ls -A "$outside"; stat -c "%s %y %h" "$outside/canary")" = "$canary_ls" ] ||
    problem "$1: something was written beside the canary: $(ls -A "$outside")"
}
plant() {  # FILE...: a symbolic link to the canary at each
  for f in "$@"; do ln -s "$outside/canary" "$f"; done
}
regular() {  # WHAT FILE: FILE is now a regular file, not a link
  [ -f "$2" ] && [ ! -L "$2" ] || problem "$1: '$2' is not a regular file"
}

# A build that fails early (the signing key is missing): the log is
# written; the serial log, manifest and images are not reached.
out=$tmp/build
mkdir "$out"
plant "$out/minimal-0.log" "$out/minimal-0.serial.log" \
  "$out/minimal-0.manifest.json" "$out/minimal-0.qcow2"
timeout 60 "$VAB" build -o "$out" --accel tcg --cache-dir "$tmp/cache" \
  --sign-key "$tmp/no-such.key" "$SRCDIR/examples/minimal.yaml" \
  >"$tmp/build.out" 2>"$tmp/build.err"
status=$?
[ $status -eq 1 ] || { problem "build: exit $status, want 1"; cat "$tmp/build.err"; }
check_canary "build"
regular "build" "$out/minimal-0.log"
grep -qF "cannot open key '$tmp/no-such.key'" "$out/minimal-0.log" ||
  problem "build: the log lacks the error"
grep -qF "the full log is $out/minimal-0.log" "$tmp/build.err" ||
  problem "build: stderr does not name the log"

# A hard link at the log name: replaced too, not truncated.
rm -f "$out/minimal-0.log"
ln "$outside/canary" "$out/minimal-0.log"
timeout 60 "$VAB" build -o "$out" --accel tcg --cache-dir "$tmp/cache" \
  --sign-key "$tmp/no-such.key" "$SRCDIR/examples/minimal.yaml" \
  >/dev/null 2>&1
[ "$(sha256sum <"$outside/canary")" = "$canary_sum" ] ||
  problem "build, hard link: the canary was truncated"
[ "$(stat -c %h "$outside/canary")" = 1 ] ||
  problem "build, hard link: the log still shares the canary's inode"
canary_ls=$(ls -A "$outside"; stat -c "%s %y %h" "$outside/canary")

# keygen --force over planted links: all three files are replaced.
keys=$tmp/keys
mkdir "$keys"
plant "$keys/k.key" "$keys/k.pub" "$keys/k.crt"
"$VAB" keygen --type ed25519 --force -o "$keys/k" >"$tmp/kg.out" 2>&1 ||
  { problem "keygen --force: exit $?"; cat "$tmp/kg.out"; }
check_canary "keygen"
for f in k.key k.pub k.crt; do regular "keygen" "$keys/$f"; done
grep -q "PRIVATE KEY" "$keys/k.key" || problem "keygen: k.key holds no key"

# sign: the signature name holds a link.
signed=$tmp/signed
mkdir "$signed"
echo "an artifact" >"$signed/app-1.0.qcow2"
if [ -x "$BUILDDIR/tests/signing/make-manifest" ]; then
  "$BUILDDIR/tests/signing/make-manifest" "$signed/app-1.0.manifest.json" \
    "$signed/app-1.0.qcow2" || problem "make-manifest: exit $?"
  plant "$signed/app-1.0.manifest.json.sig"
  "$VAB" sign --key "$keys/k.key" "$signed" >"$tmp/sign.out" 2>&1 ||
    { problem "sign: exit $?"; cat "$tmp/sign.out"; }
  check_canary "sign"
  regular "sign" "$signed/app-1.0.manifest.json.sig"
  "$VAB" verify --pubkey "$keys/k.pub" "$signed" >/dev/null 2>&1 ||
    problem "sign: the signature written does not verify"
else
  problem "no $BUILDDIR/tests/signing/make-manifest"
fi

# convert to every format: the destination name holds a link.
conv=$tmp/convert
mkdir "$conv"
head -c 1048576 /dev/urandom >"$conv/src.raw"
formats="raw qcow2 vmdk vhd"
command -v qemu-img >/dev/null && formats="$formats vhdx"
for fmt in $formats; do
  plant "$conv/dst.$fmt"
  "$VAB" convert -q -O "$fmt" "$conv/src.raw" "$conv/dst.$fmt" \
    >"$tmp/conv.out" 2>&1 || { problem "convert $fmt: exit $?"; cat "$tmp/conv.out"; }
  check_canary "convert $fmt"
  regular "convert $fmt" "$conv/dst.$fmt"
done
# A convert that fails (a source that is no image) leaves the link alone.
plant "$conv/bad.qcow2"
printf 'QFI\373garbage' >"$conv/bad.src"
"$VAB" convert -q -f qcow2 -O raw "$conv/bad.src" "$conv/bad.qcow2" \
  >/dev/null 2>&1 && problem "convert of a corrupt qcow2: exit 0"
check_canary "failing convert"
[ -L "$conv/bad.qcow2" ] || problem "failing convert: the link was touched"
if ls -A "$out" "$keys" "$signed" "$conv" | grep -q '\.vab-'; then
  problem "temporary files left: $(ls -A "$out" "$keys" "$signed" "$conv" | grep '\.vab-')"
fi

# vab pull writes .TITLE.part through O_NOFOLLOW and renames over the
# final names; it needs a registry, so tests/publish covers pulling.
exit $fail
