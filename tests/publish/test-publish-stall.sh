#!/bin/bash
# Registries that stall never block vab: a blob trickled at 2 B/s fails the
# low-speed limit, the same trickle with a low enough limit meets the
# per-request deadline, a manifest whose headers promise 10 GB before
# silence fails too (limits from the environment this time), and a server
# that never completes the TLS handshake meets the connect timeout.  Each exits 1
# within bounded time, naming the registry, the URL and the limits.
set -u
. "$SRCDIR/tests/publish/lib.sh"

make_fake_artifact "$work/store" 4000

start_fake_registry trickle "$work/store"
reg="127.0.0.1:$fake_port"
expect_fail_within 20 "trickled blob, low-speed limit" \
  "downloading app-1.0.raw from registry $reg stalled" \
  timeout 60 "$VAB" pull "$reg/team/app:1.0" -o "$work/out1" \
  --low-speed-limit 100 --low-speed-time 1 --timeout 30
grep -qF -- "--low-speed-limit 100 --low-speed-time 1" "$work/$n.log" ||
  fail "the message does not name the low-speed limit: $(cat "$work/$n.log")"
grep -qF "gave up after 2 attempts" "$work/$n.log" ||
  fail "a stalled download was not tried exactly twice: $(cat "$work/$n.log")"
[ -e "$work/out1/app-1.0.raw" ] && fail "a stalled download got its final name"

expect_fail_within 20 "trickled blob, deadline" "--timeout 2" \
  timeout 60 "$VAB" pull "$reg/team/app:1.0" -o "$work/out2" \
  --low-speed-limit 1 --low-speed-time 30 --timeout 2
grep -qF "registry $reg stalled" "$work/$n.log" ||
  fail "the deadline message names no registry: $(cat "$work/$n.log")"

start_fake_registry silence "$work/store"
reg="127.0.0.1:$fake_port"
expect_fail_within 20 "10 GB promised, then silence" \
  "registry $reg stalled on GET http://$reg/v2/team/app/manifests/1.0" \
  env VAB_REGISTRY_LOW_SPEED_LIMIT=100 VAB_REGISTRY_LOW_SPEED_TIME=1 \
  timeout 60 "$VAB" pull "$reg/team/app:1.0" -o "$work/out3"
grep -qF -- "--low-speed-limit 100 --low-speed-time 1" "$work/$n.log" ||
  fail "the variables did not set the limit: $(cat "$work/$n.log")"

# A server that accepts the connection and then says nothing, not even
# the TLS handshake: the connect timeout ends it.
start_fake_registry mute "$work/store"
reg="127.0.0.1:$fake_port"
expect_fail_within 40 "a mute server, connect timeout" \
  "registry $reg stalled on GET https://$reg/v2/" \
  timeout 60 "$VAB" pull "$reg/team/app:1.0" -o "$work/out5" --connect-timeout 2
grep -qF -- "--connect-timeout 2," "$work/$n.log" ||
  fail "the message does not name the connect timeout: $(cat "$work/$n.log")"

expect_usage() { expect_exit 2 "$@"; }  # NAME MESSAGE CMD...
expect_usage "a bad limit variable" "VAB_REGISTRY_TIMEOUT='soon' is not a whole number" \
  env VAB_REGISTRY_TIMEOUT=soon "$VAB" pull "$reg/team/app:1.0" -o "$work/out4"
expect_usage "a zero limit option" "--low-speed-time wants a whole number" \
  "$VAB" publish "$work" "$reg/team/app" --low-speed-time 0
finish
