#!/bin/bash
# A registry killed (kill -9) in the middle of a chunked upload:
#  1. restarted at once: the same vab publish run recovers and finishes;
#  2. left dead: vab publish gives up with exit 1 and one clean error, and
#     once the registry is back a rerun uploads exactly the missing blobs
#     (counted by HEAD requests before it, checked against its --json
#     blob and byte counts) and skips the rest.
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
  stop_registry
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

# 2. Left dead: one clean error naming the registry and the blob, and a
#    JSON result saying so; once the registry is back, a rerun uploads
#    exactly the blobs the registry is missing, byte for byte, and skips
#    the others.
publish_and_kill team/two "$work/two"
wait "$vab_pid"
status=$?
n=$((n + 1))
[ "$status" = 1 ] || fail "publish against a dead registry: exit $status"
errors=$(grep -c "error:" "$work/two.err")
[ "$errors" = 1 ] || fail "$errors error lines, wanted one: $(cat "$work/two.err")"
grep -qE "error: cannot (upload big-1.0.qcow2 to|reach) registry $host" "$work/two.err" ||
  fail "the error does not name the registry and the blob: $(cat "$work/two.err")"
grep -q "s3cret" "$work/two.err" "$work/two.json" && fail "the password was printed"
jq -e --arg host "$host" '.published == false and
  ([.diagnostics[] | select(.severity == "error")] | length) == 1 and
  (.diagnostics[] | select(.severity == "error") | .message | contains("registry " + $host))' \
  "$work/two.json" >/dev/null || fail "JSON result of the failed push: $(cat "$work/two.json")"
start_registry
# What the registry holds now: the empty config, the disk, the raw file,
# the build manifest.
missing=0 present=0 missing_bytes=0
for blob in "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a 2" \
    "$(sha256sum "$build/big-1.0.qcow2" | cut -d' ' -f1) $(stat -c %s "$build/big-1.0.qcow2")" \
    "$(sha256sum "$build/big-1.0.raw" | cut -d' ' -f1) $(stat -c %s "$build/big-1.0.raw")" \
    "$(sha256sum "$build/big-1.0.manifest.json" | cut -d' ' -f1) $(stat -c %s "$build/big-1.0.manifest.json")"; do
  set -- $blob
  code=$(curl -s -o /dev/null -w '%{http_code}' -I -u vab:s3cret --cacert "$ca" \
    "https://$host/v2/team/two/blobs/sha256:$1")
  case $code in
    200) present=$((present + 1)) ;;
    404) missing=$((missing + 1)); missing_bytes=$((missing_bytes + $2)) ;;
    *) fail "HEAD blob $1: HTTP $code" ;;
  esac
done
[ "$missing" -ge 1 ] || fail "the kill left no blob missing; it came too late"
check "rerun publish" "$VAB" publish "$build" "$host/team/two" --creds vab:s3cret \
  --ca-cert "$ca" --chunk-size 512K --json
rerun=$(grep '^{' "$work/$n.log")
[ "$(jq -r .published <<<"$rerun")" = true ] || fail "rerun: $rerun"
[ "$(jq -r .blobs_uploaded <<<"$rerun")" = "$missing" ] ||
  fail "rerun uploaded other than the $missing missing blobs: $rerun"
[ "$(jq -r .blobs_skipped <<<"$rerun")" = "$present" ] ||
  fail "rerun skipped other than the $present blobs present: $rerun"
[ "$(jq -r .bytes_uploaded <<<"$rerun")" = "$missing_bytes" ] ||
  fail "rerun sent other than the $missing_bytes bytes missing: $rerun"
check "pull after rerun" "$VAB" pull "$host/team/two:1.0" -o "$work/pull2" \
  --creds vab:s3cret --ca-cert "$ca"
for f in big-1.0.qcow2 big-1.0.raw big-1.0.manifest.json; do
  cmp -s "$work/pull2/$f" "$build/$f" || fail "pulled $f differs (2)"
done
finish
