#!/bin/bash
# A registry killed (kill -9) in the middle of a chunked upload:
#  1. restarted at once: the same vab publish run recovers and finishes;
#  2. left dead: vab publish gives up with exit 1, and once the registry
#     is back a rerun finishes, skipping the blobs that got through.
# Either way the result pulls back byte-identical.
set -u
. "$SRCDIR/tests/publish/lib.sh"
command -v jq >/dev/null || { echo "SKIP: no jq"; exit 77; }

setup_registry vab s3cret
start_registry
ca="$work/tls/ca.crt"

build="$work/build"
mkdir -p "$build"
head -c 48M /dev/urandom >"$build/big-1.0.qcow2"
head -c 5000 /dev/urandom >"$build/big-1.0.raw"
"$MAKE_MANIFEST" "$build/big-1.0.manifest.json" "$build/big-1.0.qcow2" \
  "$build/big-1.0.raw" || exit 1

patches() { grep -c 'msg="response completed".*http.request.method=PATCH' "$work/registry.log"; }
# Start publishing in 512 KiB chunks (96 PATCH requests for the disk) and
# kill the registry once 20 more of them have completed.
publish_and_kill() {  # REPO OUT
  local base
  base=$(patches)
  "$VAB" publish "$build" "$host/$1" --creds vab:s3cret --ca-cert "$ca" \
    --chunk-size 512K --json >"$2.json" 2>"$2.err" &
  vab_pid=$!
  local i
  for i in $(seq 1 600); do
    [ "$(patches)" -ge $((base + 20)) ] && break
    sleep 0.02
  done
  kill -9 "$registry_pid"
  wait "$registry_pid" 2>/dev/null
  registry_pid=
}

# 1. Restart at once: the run in progress retries and finishes.
publish_and_kill team/one "$work/one"
sleep 1
start_registry
wait "$vab_pid"
status=$?
n=$((n + 1))
[ "$status" = 0 ] || { fail "publish across a restart: exit $status"; cat "$work/one.err"; }
grep -q "uploading big-1.0.qcow2 at byte" "$work/one.err" ||
  fail "no chunk failure was seen; the kill came too late: $(cat "$work/one.err")"
check "pull after restart" "$VAB" pull "$host/team/one:1.0" -o "$work/pull1" \
  --creds vab:s3cret --ca-cert "$ca"
cmp -s "$work/pull1/big-1.0.qcow2" "$build/big-1.0.qcow2" || fail "pulled disk differs (1)"

# 2. Left dead: exit 1 naming the registry; a rerun after the restart
#    finishes and does not send the blobs that were already complete.
publish_and_kill team/two "$work/two"
wait "$vab_pid"
status=$?
n=$((n + 1))
[ "$status" = 1 ] || fail "publish against a dead registry: exit $status"
grep -q "registry $host" "$work/two.err" || fail "no message naming the registry: $(cat "$work/two.err")"
start_registry
check "rerun publish" "$VAB" publish "$build" "$host/team/two" --creds vab:s3cret \
  --ca-cert "$ca" --chunk-size 512K --json
rerun=$(grep '^{' "$work/$n.log")
[ "$(jq -r .published <<<"$rerun")" = true ] || fail "rerun: $rerun"
[ "$(jq -r .blobs_skipped <<<"$rerun")" -ge 1 ] || fail "rerun skipped no blob: $rerun"
check "pull after rerun" "$VAB" pull "$host/team/two:1.0" -o "$work/pull2" \
  --creds vab:s3cret --ca-cert "$ca"
for f in big-1.0.qcow2 big-1.0.raw big-1.0.manifest.json; do
  cmp -s "$work/pull2/$f" "$build/$f" || fail "pulled $f differs (2)"
done
finish
