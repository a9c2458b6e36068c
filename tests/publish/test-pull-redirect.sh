#!/bin/bash
# Blob downloads redirected to another host (storage behind pre-signed
# URLs) get no credentials; plain HTTP is used for a loopback registry;
# a 503 and a 429 are retried.
set -u
. "$SRCDIR/tests/publish/lib.sh"
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }

store="$work/store"
mkdir -p "$store"
head -c 150000 /dev/urandom >"$work/app-1.0.qcow2"
d=$(sha256sum "$work/app-1.0.qcow2" | cut -d' ' -f1)
cp "$work/app-1.0.qcow2" "$store/$d"
printf '{}' >"$store/44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.vab.appliance.v1","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.vab.disk.qcow2","digest":"sha256:%s","size":150000,"annotations":{"org.opencontainers.image.title":"app-1.0.qcow2"}}]}' \
  "$d" >"$store/manifest.json"
reg_port=$(free_port)
store_port=$(free_port)
python3 "$SRCDIR/tests/publish/redirect-server.py" "$reg_port" "$store_port" \
  "$store" vab pw "$work/requests.log" >"$work/server.out" 2>&1 &
token_pid=$!  # stopped by the trap in lib.sh
for i in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$reg_port/v2/" && break
  sleep 0.1
done

check "pull through a redirect" "$VAB" pull "127.0.0.1:$reg_port/team/app:1.0" \
  -o "$work/out" --creds vab:pw
cmp -s "$work/out/app-1.0.qcow2" "$work/app-1.0.qcow2" || fail "pulled file differs"
grep -q "^storage GET /store/$d?X-Sig=1 auth=absent$" "$work/requests.log" ||
  fail "storage saw no credential-free GET: $(cat "$work/requests.log")"
grep -q "auth=present" "$work/requests.log" &&
  fail "credentials were sent to the storage host: $(cat "$work/requests.log")"
grep -q "HTTP 503 for GET; retrying in 0.5 s (attempt 2 of 6)" "$work/$n.log" ||
  fail "no retry after a 503: $(cat "$work/$n.log")"
grep -q "downloading app-1.0.qcow2: HTTP 429; retrying in 1.0 s (attempt 2 of 6)" "$work/$n.log" ||
  fail "no retry after a 429 with Retry-After: 1: $(cat "$work/$n.log")"
grep -q "^registry GET /v2/team/app/blobs/sha256:$d auth=good$" "$work/requests.log" ||
  fail "the registry itself got no credentials: $(cat "$work/requests.log")"
finish
