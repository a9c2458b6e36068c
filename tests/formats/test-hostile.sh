#!/bin/bash
# Hand-made hostile qcow2 images (make-qcow2.py): each gets its exact
# error and exit 1, never a crash; metadata loops are found by the check.
. "$SRCDIR/tests/formats/functions.sh"
require python3

python3 "$SRCDIR/tests/formats/make-qcow2.py" "$tmp/h" || exit 1
d=$(realpath "$tmp/h")

"$VAB" convert -q -O raw "$d/valid.qcow2" "$tmp/valid.raw" || problem "valid"
cmp -s "$d/valid.raw" "$tmp/valid.raw" || problem "valid.qcow2 reads wrong"
"$VAB" inspect "$d/valid.qcow2" >/dev/null || problem "valid: inspect"

n=0
while IFS=$'\t' read -r name status message; do
  n=$((n + 1))
  img="$d/$name.qcow2"
  timeout 20 "$VAB" convert -q -O raw "$img" "$tmp/out.raw" 2>"$tmp/err"
  got=$?
  [ $got = "$status" ] || { problem "$name: convert exit $got, want $status"; cat "$tmp/err"; }
  if [ -n "$message" ]; then
    want="vab convert: error: ${message//\{path\}/$img}"
    want="${want//\{dir\}/$d}"
    grep -qxF -- "$want" "$tmp/err" ||
      problem "$name: stderr lacks '$want': $(cat "$tmp/err")"
    # inspect fails the same way: the same error when the image does not
    # open, else its check finds the same problem.  The check reads no
    # guest data, so it cannot see a bad compressed stream.
    timeout 20 "$VAB" inspect "$img" >/dev/null 2>"$tmp/err"
    got=$?
    if [ "$name" = bad-compressed ]; then
      [ $got = 0 ] || problem "$name: inspect exit $got"
    else
      [ $got = 1 ] || problem "$name: inspect exit $got, want 1"
      text=${want#vab convert: error: }
      grep -qxF -- "vab inspect: error: $text" "$tmp/err" ||
        grep -qxF -- "vab inspect: warning: $text" "$tmp/err" ||
        problem "$name: inspect stderr: $(cat "$tmp/err")"
    fi
  fi
  rm -f "$tmp/out.raw"
done <"$d/expect"
[ $n -ge 25 ] || problem "only $n hostile cases"

# Loops and wrong refcounts read without harm but fail the check, with
# the lines qemu-img check prints for the same problems.
inspect_fails() {  # NAME "check line" "warning"
  timeout 20 "$VAB" inspect "$d/$1.qcow2" >"$tmp/out" 2>"$tmp/err"
  [ $? = 1 ] || problem "$1: inspect exit not 1"
  grep -qxF "$2" "$tmp/out" || problem "$1: $(grep check: "$tmp/out")"
  grep -qxF "vab inspect: warning: '$d/$1.qcow2': $3" "$tmp/err" ||
    problem "$1: warnings: $(cat "$tmp/err")"
}
inspect_fails l1-loop "check:            1 errors, 3 leaks, 1 entries checked" \
  "cluster 1 has refcount 1 but 3 references"
inspect_fails l2-self-loop "check:            1 errors, 0 leaks, 4 entries checked" \
  "cluster 4 has refcount 1 but 2 references"
inspect_fails refcount-zero "check:            2 errors, 0 leaks, 3 entries checked" \
  "guest cluster 0: COPIED flag does not match refcount 0"

# Random corruption of a valid image: never a crash (exit 0 or 1 only).
python3 - "$d/valid.qcow2" "$tmp/fuzz" <<'PY'
import random, sys, os
data = open(sys.argv[1], "rb").read()
os.makedirs(sys.argv[2])
rng = random.Random(7)
for i in range(120):
    b = bytearray(data)
    for _ in range(rng.randrange(1, 8)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    if rng.random() < 0.2:
        b = b[:rng.randrange(len(b))]
    open(os.path.join(sys.argv[2], "%03d.qcow2" % i), "wb").write(b)
PY
for img in "$tmp"/fuzz/*.qcow2; do
  timeout 20 "$VAB" convert -q -f qcow2 -O raw "$img" "$tmp/out.raw" 2>/dev/null
  s=$?
  [ $s -le 1 ] || problem "$img: convert exit $s"
  timeout 20 "$VAB" inspect -f qcow2 "$img" >/dev/null 2>&1
  s=$?
  [ $s -le 1 ] || problem "$img: inspect exit $s"
  rm -f "$tmp/out.raw"
done
no_leftovers "$tmp"
exit $fail
