#!/bin/bash
# A pulled layer never grows past its declared size: a body that runs on
# past it is stopped once the bytes exceed it, and a Content-Length above
# it is refused before a byte is written.  Neither leaves a file under
# its final name.
set -u
. "$SRCDIR/tests/publish/lib.sh"

make_fake_artifact "$work/store" 300000

start_fake_registry oversize "$work/store"
reg="127.0.0.1:$fake_port"
expect_fail "a body longer than declared" \
  "registry $reg sent more bytes than the 300000 declared for download app-1.0.raw; stopped and refused" \
  timeout 60 "$VAB" pull "$reg/team/app:1.0" -o "$work/out1"
[ -e "$work/out1/app-1.0.raw" ] && fail "an oversized layer got its final name"
part=$(stat -c %s "$work/out1/.app-1.0.raw.part" 2>/dev/null || echo 0)
[ "$part" -le 300000 ] || fail "the partial file grew to $part bytes"
[ "$(grep -c "GET /v2/team/app/blobs/" "$work/fake.log")" = 1 ] ||
  fail "an oversized answer was retried: $(cat "$work/fake.log")"

start_fake_registry oversize-length "$work/store"
reg="127.0.0.1:$fake_port"
expect_fail "a Content-Length above the declared size" \
  "registry $reg announced 301000 bytes (Content-Length) for download app-1.0.raw, more than the 300000 its descriptor declares; refused before writing" \
  timeout 60 "$VAB" pull "$reg/team/app:1.0" -o "$work/out2"
[ -e "$work/out2/app-1.0.raw" ] && fail "an oversized layer got its final name"
part=$(stat -c %s "$work/out2/.app-1.0.raw.part" 2>/dev/null || echo 0)
[ "$part" = 0 ] || fail "$part bytes were written before the refusal"
grep -q "digest" "$work/$n.log" && fail "a second, digest error followed: $(cat "$work/$n.log")"

# The same server, honest about its sizes otherwise: a normal pull works.
start_fake_registry plain "$work/store"
check "an honest pull" "$VAB" pull "127.0.0.1:$fake_port/team/app:1.0" -o "$work/out3"
cmp -s "$work/out3/app-1.0.raw" "$work/store/app-1.0.raw" || fail "pulled file differs"
finish
