#!/bin/bash
# File names that qemu-img would read as a protocol or an option reach it
# as plain files: `vab convert -O vhdx` runs qemu-img convert, and an output
# "nbd:disk.vhdx" in the current folder is that file, not an NBD server.
set -u
: "${VAB:?}" "${SRCDIR:?}"
fail=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vab-cli-names.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
problem() { echo "FAIL: $*"; fail=1; }
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=99"
command -v qemu-img >/dev/null || { echo "SKIP: qemu-img is not installed"; exit 77; }

cd "$tmp" || exit 1
truncate -s 4M disk.raw
for name in "nbd:disk.vhdx" "json:{}.vhdx" "a,b.vhdx"; do
  "$VAB" convert -O vhdx disk.raw "$name" >out 2>err
  status=$?
  [ $status -eq 0 ] || { problem "convert to '$name': exit $status"; cat err; }
  [ -f "./$name" ] || problem "'$name' was not written in the current folder"
  qemu-img check -f vhdx "./$name" >/dev/null 2>&1 ||
    problem "'$name' is not a valid VHDX"
done

[ $fail -eq 0 ] && echo "PASS"
exit $fail
