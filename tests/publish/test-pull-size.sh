#!/bin/bash
# A pulled layer never grows past its declared size: a body that runs on
# past it is stopped once the bytes exceed it, and a Content-Length above
# it is refused before a byte is written.  Neither leaves a file under
# its final name.
set -u
. "$SRCDIR/tests/publish/lib.sh"

make_fake_artifact "$work/store" 300000

# pull_refused MODE OUT NAME MESSAGE: a pull from fake-registry.py MODE
# into OUT must fail with MESSAGE (REG in it stands for the registry) and
# leave no layer under its final name; $part is its partial file's size.
pull_refused() {
  local mode=$1 out=$2 name=$3 msg=$4
  start_fake_registry "$mode" "$work/store"
  reg="127.0.0.1:$fake_port"
  expect_fail "$name" "${msg//REG/$reg}" \
    timeout 60 "$VAB" pull "$reg/team/app:1.0" -o "$out"
  [ -e "$out/app-1.0.raw" ] && fail "$name: the layer got its final name"
  part=$(stat -c %s "$out/.app-1.0.raw.part" 2>/dev/null || echo 0)
}

pull_refused oversize "$work/out1" "a body longer than declared" \
  "registry REG sent more bytes than the 300000 declared for download app-1.0.raw; stopped and refused"
[ "$part" -le 300000 ] || fail "the partial file grew to $part bytes"
[ "$(grep -c "GET /v2/team/app/blobs/" "$work/fake.log")" = 1 ] ||
  fail "an oversized answer was retried: $(cat "$work/fake.log")"

pull_refused oversize-length "$work/out2" "a Content-Length above the declared size" \
  "registry REG announced 301000 bytes (Content-Length) for download app-1.0.raw, more than the 300000 its descriptor declares; refused before writing"
[ "$part" = 0 ] || fail "$part bytes were written before the refusal"
grep -q "digest" "$work/$n.log" && fail "a second, digest error followed: $(cat "$work/$n.log")"

# The same server, honest about its sizes otherwise: a normal pull works.
start_fake_registry plain "$work/store"
check "an honest pull" "$VAB" pull "127.0.0.1:$fake_port/team/app:1.0" -o "$work/out3"
cmp -s "$work/out3/app-1.0.raw" "$work/store/app-1.0.raw" || fail "pulled file differs"
finish
