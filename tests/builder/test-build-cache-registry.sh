#!/bin/bash
# The step cache shared through a registry, end to end: a build from a
# rootfs tarball (the one test-build-web leaves in the shared cache) with
# --cache-to a docker-registry on 127.0.0.1, then a build of the same
# template on "another machine" (an empty --cache-dir) with --cache-from:
# every step is cached, no builder VM starts, the artifact is the same
# bytes, and the second build's --cache-to pushes nothing new.
. "$(dirname "$0")/build-test-lib.sh"
require_tools
for tool in docker-registry curl jq; do
  command -v "$tool" >/dev/null || { echo "SKIP: no $tool"; exit 77; }
done
setup_area cache-registry

tarball=$(find "$VAB_TEST_CACHE" -name '*.tar' ! -name '*.partial.tar' -size +10M 2>/dev/null | head -1)
if [ -z "$tarball" ]; then
  echo "SKIP: no bootstrap tarball in $VAB_TEST_CACHE (test-build-web makes it)"
  exit 77
fi
sum=$(sha256sum "$tarball" | cut -d' ' -f1)
mkdir -p "$AREA/reg"
registry_pid=
trap '[ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null' EXIT
start_plain_registry "$AREA/reg" || { echo "registry did not start"; exit 1; }
repo="127.0.0.1:$port/ci/vab-cache"

cat >"$AREA/t.yaml" <<YAML
vab: 1
name: shared
version: "1"
source:
  rootfs: {path: "$tarball", checksum: "sha256:$sum"}
disk: {size: 3G, partitions: gpt, filesystem: ext4, firmware: bios}
hardware: {cpus: 2, memory: 1G}
provisioners:
  - {type: file, content: "shared\n", destination: /etc/vab-shared}
outputs:
  - {format: qcow2}
YAML

# build NAME ARGS...: the JSON summary in $AREA/NAME.json, stderr in
# $AREA/NAME.err, the artifacts moved to $AREA/out-NAME; its exit status.
# Both builds write to the same output folder, as two CI jobs in the same
# workspace path do (an export's key includes its output folder).
build() {
  local name=$1 status; shift
  "$VAB" build "$AREA/t.yaml" -o "$AREA/output" --json "$@" \
    >"$AREA/$name.json" 2>"$AREA/$name.err"
  status=$?
  mv "$AREA/output" "$AREA/out-$name"
  return $status
}

build one --cache-dir "$AREA/cache1" --cache-to "$repo"
status=$?
tail -3 "$AREA/one.err"
check "machine 1 builds" [ "$status" -eq 0 ]
[ "$status" -eq 0 ] || finish
check "machine 1 started the builder VM" grep -q 'starting the builder VM' "$AREA/one.err"
check "machine 1 pushed its entries" jq -e \
  '.cache_to.entries_pushed > 0 and .cache_to.blobs_uploaded > 0 and .cache_to.complete' \
  "$AREA/one.json"
check "every tag is step-KEY" bash -c \
  "curl -sf 'http://127.0.0.1:$port/v2/ci/vab-cache/tags/list' |
   jq -e '.tags | length > 0 and all(test(\"^step-[0-9a-f]{64}\$\"))'"

start=$(date +%s)
build two --cache-dir "$AREA/cache2" --cache-from "$repo" --cache-to "$repo"
status=$?
seconds=$(($(date +%s) - start))
tail -3 "$AREA/two.err"
check "machine 2 builds" [ "$status" -eq 0 ]
# Every planned step: true only once every step is a cache entry (the
# step cache of issue 12 item 1); before that, only the source's could be.
check "machine 2: every step cached" jq -e \
  '(.steps | length) > 0 and all(.steps[]; .cached)' "$AREA/two.json"
jq -c '.steps[] | {kind, cached}' "$AREA/two.json"
check "machine 2 started no builder VM" bash -c \
  "! grep -q 'starting the builder VM' '$AREA/two.err'"
check "machine 2 took less than 120 s ($seconds s)" [ "$seconds" -lt 120 ]
check "machine 2 warned about nothing" bash -c "! grep -q '^warning' '$AREA/two.err'"
check "the qcow2 is the same bytes" cmp -s "$AREA/out-one/shared-1.qcow2" \
  "$AREA/out-two/shared-1.qcow2"
check "machine 2 uploaded nothing" jq -e \
  '.cache_to.blobs_uploaded == 0 and .cache_to.entries_pushed == 0 and .cache_to.complete' \
  "$AREA/two.json"
check "nothing left in TMPDIR" tmp_is_empty
check "no .tmp- folder in machine 2's cache" bash -c \
  "! ls -A '$AREA/cache2/steps' | grep -q '^\.tmp-'"
finish
