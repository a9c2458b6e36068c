#!/bin/bash
# The helper programs vab runs get descriptors 0, 1 and 2 only, even when
# vab itself inherits more (a CI runner, GNU `time -o`, a build wrapper).
# `vab convert -O vhdx` runs qemu-img: a qemu-img first on PATH records which
# descriptors above 2 it has, then runs the real one.  Inherited fds 3 to 12
# go past 10, where dash cannot redirect ("Bad fd number").
set -u
: "${VAB:?}" "${SRCDIR:?}"
fail=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vab-cli-fds.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
problem() { echo "FAIL: $*"; fail=1; }
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=99"

real=$(command -v qemu-img) || { echo "SKIP: qemu-img is not installed"; exit 77; }
python=$(command -v python3) || { echo "SKIP: python3 is not installed"; exit 77; }
# Python, not sh: dash itself keeps its script open on fd 10.
mkdir "$tmp/bin"
cat >"$tmp/bin/qemu-img" <<END
#!$python -I
import os, sys
fds = []
for fd in range(3, 1024):
    try:
        os.fstat(fd)
        fds.append(str(fd))
    except OSError:
        pass
with open("$tmp/fds", "w") as f:
    f.write(" ".join(fds))
os.execv("$real", ["qemu-img"] + sys.argv[1:])
END
chmod +x "$tmp/bin/qemu-img"

truncate -s 4M "$tmp/disk.raw"
PATH="$tmp/bin:$PATH" "$VAB" convert -O vhdx "$tmp/disk.raw" "$tmp/disk.vhdx" \
  3</dev/null 4</dev/null 5</dev/null 6</dev/null 7</dev/null 8</dev/null \
  9</dev/null 10</dev/null 11</dev/null 12</dev/null \
  >"$tmp/out" 2>"$tmp/err"
status=$?
[ $status -eq 0 ] || { problem "convert -O vhdx: exit $status"; cat "$tmp/err"; }
if [ ! -f "$tmp/fds" ]; then
  problem "qemu-img was not run through PATH"
elif [ -n "$(cat "$tmp/fds")" ]; then
  problem "qemu-img inherited descriptors above 2: $(cat "$tmp/fds")"
fi
"$real" check -f vhdx "$tmp/disk.vhdx" >/dev/null 2>&1 ||
  problem "qemu-img check of the VHDX failed"

[ $fail -eq 0 ] && echo "PASS"
exit $fail
