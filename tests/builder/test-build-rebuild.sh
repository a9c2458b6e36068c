#!/bin/bash
# The step cache across rebuilds, on a small template (the rootfs tarball
# test-build-web leaves in the shared cache, six provisioners, a boot test,
# two outputs), with a private step cache:
#   - cold build (--no-test): every step but the source runs;
#   - the same with the test: only the test runs, no builder VM starts;
#   - unchanged: every step cached, no VM, seconds, artifacts identical;
#   - that cache pushed to a registry (--cache-to) and pulled into an empty
#     cache folder (--cache-from): every step cached, no VM, same bytes;
#   - the last provisioner changed: it, sysprep and the exports run, the
#     earlier steps do not; the image is sound and holds the change;
#   - an output added: only that export runs;
#   - a byte flipped in a cached checkpoint: a warning, the entry is
#     discarded and rebuilt, the build is right;
#   - a build SIGKILLed during a provisioner: the next one is right;
#   - two builds of one template at once on one cache: both right, one
#     waited for the other.
. "$(dirname "$0")/build-test-lib.sh"
require_tools
command -v python3 >/dev/null || { echo "SKIP: python3"; exit 77; }
setup_area rebuild

tarball=$(find "$VAB_TEST_CACHE" -name '*.tar' ! -name '*.partial.tar' -size +10M 2>/dev/null | head -1)
if [ -z "$tarball" ]; then
  echo "SKIP: no bootstrap tarball in $VAB_TEST_CACHE (test-build-web makes it)"
  exit 77
fi
sum=$(sha256sum "$tarball" | cut -d' ' -f1)
cache=$AREA/cache

# template FILE [EXTRA OUTPUT LINE]
template() {
  cat >"$1" <<YAML
vab: 1
name: rebuild
version: "1"
variables:
  last: "one"
  pause: "0"
source:
  rootfs: {path: "$tarball", checksum: "sha256:$sum"}
disk: {size: 3G, partitions: gpt, filesystem: ext4, firmware: bios}
hardware: {cpus: 2, memory: 1G}
provisioners:
  - {type: file, content: "1\n", destination: /etc/vab-step1}
  - {type: hostname, hostname: rebuild}
  - {type: shell, inline: ["echo 3 >/etc/vab-step3"]}
  - {type: timezone, timezone: Europe/Paris}
  - {type: shell, inline: ["sleep \${pause}", "echo 5 >/etc/vab-step5"]}
  - {type: file, content: "\${last}\n", destination: /etc/vab-last}
tests:
  - boot: {timeout: 600s, serial: "login:"}
outputs:
  - {format: qcow2}
  - {format: vmdk}
${2:-}
YAML
}
template "$AREA/t.yaml"
template "$AREA/t2.yaml" "  - {format: raw}"

# build NAME [ARGS...]: the JSON summary in $AREA/NAME.json, stderr in
# $AREA/NAME.err, the exit status in $status, the seconds in $seconds.
build() {
  local name=$1
  shift
  local start=$SECONDS
  "$VAB" build "$@" --cache-dir "$cache" --json >"$AREA/$name.json" \
    2>"$AREA/$name.err"
  status=$?
  seconds=$((SECONDS - start))
  echo "build $name: status $status, ${seconds}s"
  tail -3 "$AREA/$name.err"
}

# cached NAME: the cached flag of each step, "kind:label=true|false" lines.
cached() {
  python3 -c '
import json, sys
for s in json.load(open(sys.argv[1]))["steps"]:
    print("%s=%s" % (s["label"].split(" (")[0], str(s["cached"]).lower()))
' "$AREA/$1.json"
}

# flags NAME: the cached flags as one line, in plan order.
flags() { cached "$1" | sed 's/.*=//' | tr '\n' ' ' | sed 's/ $//'; }

sums() { (cd "$1" && sha256sum rebuild-1.qcow2 rebuild-1.vmdk); }

# Steps: source layout p1..p6 sysprep test qcow2 vmdk.
build cold "$AREA/t.yaml" -o "$AREA/out" --no-test
check "cold build exits 0" [ "$status" -eq 0 ]
[ "$status" -eq 0 ] || finish
check "cold build: no step cached" \
  [ "$(flags cold)" = "false false false false false false false false false false false false" ]
cold_sums=$(sums "$AREA/out")
check "cold build: the cache holds layout, six checkpoints, sysprep, two exports" \
  [ "$(ls -d "$cache"/steps/[0-9a-f]* | grep -vc '\.lock$')" -eq 10 ]
cache_bytes=$(du -sb "$cache/steps" | cut -f1)
artifact_bytes=$(du -cb "$AREA"/out/rebuild-1.qcow2 "$AREA"/out/rebuild-1.vmdk | tail -1 | cut -f1)
echo "cache: $cache_bytes bytes for $artifact_bytes bytes of artifacts"

build tested "$AREA/t.yaml" -o "$AREA/out"
check "with the test: exits 0" [ "$status" -eq 0 ]
check "with the test: only the test runs" \
  [ "$(flags tested)" = "true true true true true true true true true false true true" ]
check "with the test: no builder VM" bash -c "! grep -q 'starting the builder VM' '$AREA/tested.err'"

build same "$AREA/t.yaml" -o "$AREA/out"
check "unchanged: exits 0" [ "$status" -eq 0 ]
check "unchanged: every step cached" \
  [ "$(flags same)" = "true true true true true true true true true true true true" ]
check "unchanged: each step line says cached" \
  [ "$(grep -c '^.*step [0-9]*/12: .*: cached' "$AREA/same.err")" -eq 10 ]
check "unchanged: no builder VM, no boot" \
  bash -c "! grep -qE 'starting the builder VM|boot test' '$AREA/same.err'"
check "unchanged: within 15 s (${seconds}s)" [ "$seconds" -lt 15 ]
check "unchanged: artifacts identical to the cold ones" [ "$(sums "$AREA/out")" = "$cold_sums" ]
check "unchanged: outputs are copies, not links of the cache's entries" \
  bash -c "[ \"\$(stat -c %h '$AREA/out/rebuild-1.qcow2')\" -eq 1 ]"
check "unchanged: the manifest lists them" \
  grep -q "$(echo "$cold_sums" | head -1 | cut -d' ' -f1)" "$AREA/out/rebuild-1.manifest.json"

# The registry cache: the unchanged build pushes every entry (--cache-to)
# to a docker-registry on 127.0.0.1; "another machine" (an empty
# --cache-dir, the same output path as two CI jobs in one workspace path
# have) pulls them (--cache-from): every step cached, no VM, same bytes.
if command -v docker-registry >/dev/null && command -v jq >/dev/null; then
  mkdir -p "$AREA/reg"
  registry_pid=
  trap '[ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null' EXIT
  if start_plain_registry "$AREA/reg"; then
    repo="127.0.0.1:$port/ci/vab-cache"
    "$VAB" build "$AREA/t.yaml" -o "$AREA/out" --cache-dir "$cache" --json \
      --cache-to "$repo" >"$AREA/push.json" 2>"$AREA/push.err"
    status=$?
    tail -3 "$AREA/push.err"
    check "registry: the cached build pushes its entries" jq -e \
      '.cache_to.entries_pushed > 0 and .cache_to.blobs_uploaded > 0 and .cache_to.complete' \
      "$AREA/push.json"
    check "registry: every tag is step-KEY" bash -c \
      "curl -sf 'http://127.0.0.1:$port/v2/ci/vab-cache/tags/list' |
       jq -e '.tags | length > 0 and all(test(\"^step-[0-9a-f]{64}\$\"))'"
    start=$SECONDS
    "$VAB" build "$AREA/t.yaml" -o "$AREA/out" --cache-dir "$AREA/cache2" --json \
      --cache-from "$repo" --cache-to "$repo" >"$AREA/pull.json" 2>"$AREA/pull.err"
    status=$?
    seconds=$((SECONDS - start))
    tail -3 "$AREA/pull.err"
    check "registry: another cache folder builds from it" [ "$status" -eq 0 ]
    check "registry: every step cached" jq -e \
      '(.steps | length) > 0 and all(.steps[]; .cached)' "$AREA/pull.json"
    check "registry: no VM started (${seconds}s)" bash -c \
      "! grep -qE 'starting the builder VM|boot test' '$AREA/pull.err'"
    check "registry: no warning" bash -c "! grep -q '^warning' '$AREA/pull.err'"
    check "registry: artifacts identical to the cold ones" [ "$(sums "$AREA/out")" = "$cold_sums" ]
    check "registry: nothing uploaded again" jq -e \
      '.cache_to.blobs_uploaded == 0 and .cache_to.entries_pushed == 0 and .cache_to.complete' \
      "$AREA/pull.json"
    check "registry: no .tmp- folder in the second cache" bash -c \
      "! ls -A '$AREA/cache2/steps' | grep -q '^\.tmp-'"
    rm -rf "$AREA/cache2" "$AREA/reg/registry"
  else
    fail "the registry did not start"
  fi
  kill "$registry_pid" 2>/dev/null
  registry_pid=
else
  echo "SKIP (part): no docker-registry or jq"
fi

build last "$AREA/t.yaml" -o "$AREA/out" --no-test --var last=two
check "last changed: exits 0" [ "$status" -eq 0 ]
check "last changed: only it, sysprep and the exports run" \
  [ "$(flags last)" = "true true true true true true true false false false false false" ]
img=$AREA/out/rebuild-1.qcow2
check "last changed: qemu-img check is clean" qemu-img check -q "$img"
check "last changed: the image holds the change and the earlier steps" \
  bash -c "[ \"\$(guestfish --ro -a '$img' -i cat /etc/vab-last : cat /etc/vab-step5 : cat /etc/vab-step1 | grep -v '^\$' | paste -sd' ')\" = 'two 5 1' ]"
check "last changed: no policy-rc.d left in the image" \
  bash -c "[ \"\$(guestfish --ro -a '$img' -i exists /usr/sbin/policy-rc.d)\" = false ]"

build added "$AREA/t2.yaml" -o "$AREA/out" --no-test --var last=two
check "output added: exits 0" [ "$status" -eq 0 ]
check "output added: only that export runs" \
  [ "$(flags added)" = "true true true true true true true true true false true true false" ]
check "output added: no builder VM" bash -c "! grep -q 'starting the builder VM' '$AREA/added.err'"

# Flip a byte in the middle of the fifth step's checkpoint; the next
# build resumes from there, finds it corrupt, and resumes from the fourth.
p5=$(python3 -c '
import json, sys
print(json.load(open(sys.argv[1]))["steps"][6]["key"].split(":")[1])' "$AREA/cold.json")
entry=$cache/steps/$p5/disk.qcow2
size=$(stat -c %s "$entry")
printf '\xff' | dd of="$entry" bs=1 seek=$((size / 2)) conv=notrunc status=none
build corrupt "$AREA/t.yaml" -o "$AREA/out" --no-test --var last=three
check "corrupt checkpoint: exits 0" [ "$status" -eq 0 ]
check "corrupt checkpoint: a warning names it" grep -q "$p5.*unusable" "$AREA/corrupt.err"
check "corrupt checkpoint: rebuilt from the step before" \
  [ "$(flags corrupt)" = "true true true true true true false false false false false false" ]
check "corrupt checkpoint: the image is right" \
  bash -c "[ \"\$(guestfish --ro -a '$img' -i cat /etc/vab-last : cat /etc/vab-step5 | grep -v '^\$' | paste -sd' ')\" = 'three 5' ]"

# SIGKILL while the fifth step sleeps.
"$VAB" build "$AREA/t.yaml" -o "$AREA/out-killed" --no-test --cache-dir "$cache" \
  --var pause=600 --var last=four 2>"$AREA/killed.err" &
pid=$!
for _ in $(seq 600); do
  grep -q 'step 7/12' "$AREA/killed.err" && break
  sleep 1
done
sleep 5
kill -9 "$pid"
wait "$pid" 2>/dev/null
for q in $(pgrep -f "qemu-system.*$AREA/tmp"); do kill -9 "$q"; done
build after-kill "$AREA/t.yaml" -o "$AREA/out" --no-test --var pause=1 --var last=four
check "after a SIGKILL: exits 0" [ "$status" -eq 0 ]
check "after a SIGKILL: steps 5 on run" \
  [ "$(flags after-kill)" = "true true true true true true false false false false false false" ]
check "after a SIGKILL: the image is right" \
  bash -c "[ \"\$(guestfish --ro -a '$img' -i cat /etc/vab-last)\" = four ]"

# Two builds at once of a new last step, on one cache.
build one "$AREA/t.yaml" -o "$AREA/out-a" --no-test --var last=five &
one=$!
sleep 2
"$VAB" build "$AREA/t.yaml" -o "$AREA/out-b" --no-test --cache-dir "$cache" \
  --var last=five --json >"$AREA/two.json" 2>"$AREA/two.err"
two_status=$?
wait "$one"
one_status=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok"])' "$AREA/one.json")
check "concurrent builds: both exit 0" [ "$one_status" = True ] && [ "$two_status" -eq 0 ]
check "concurrent builds: one waited for the other" \
  grep -qh "waiting for another build" "$AREA/one.err" "$AREA/two.err"
for o in out-a out-b; do
  check "concurrent builds: $o is right" \
    bash -c "[ \"\$(guestfish --ro -a '$AREA/$o/rebuild-1.qcow2' -i cat /etc/vab-last)\" = five ]"
done
check "only .lock files and entries in the cache" \
  bash -c "! ls -A '$cache/steps' | grep -q '^\\.tmp-'"
check "no qemu left" no_qemu_left
finish
