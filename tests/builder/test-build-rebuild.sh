#!/bin/bash
# The step cache across rebuilds, on a small template (the rootfs tarball
# test-build-web leaves in the shared cache, MBR and xfs, six provisioners,
# a boot test, two outputs), with a private step cache:
#   - a wrong rootfs checksum: refused before any VM, naming the checksum;
#   - cold build (--no-test): every step but the source runs (the rootfs
#     source: the image is MBR with an xfs root and holds the steps' files);
#   - an image source: the cold build's qcow2, grown from 3G to 4G with its
#     root file system, a provisioner run in it, the source left unchanged;
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
#     waited for the other;
#   - a shell command that fails in a seventh step (on the cached prefix,
#     so only that step's VM runs): exit 1, the error at the command's
#     template line with the guest's output, no artifact, only the log.
# The images of the phases are read back with guestfish at the end, in one
# appliance (each launch boots a VM, about a minute under TCG).
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

# template FILE [EXTRA OUTPUT LINE] [EXTRA PROVISIONER LINES]
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
disk: {size: 3G, partitions: mbr, filesystem: xfs, firmware: bios}
hardware: {cpus: 2, memory: 1G}
provisioners:
  - {type: file, content: "1\n", destination: /etc/vab-step1}
  - {type: hostname, hostname: rebuild}
  - {type: shell, inline: ["echo 3 >/etc/vab-step3"]}
  - {type: timezone, timezone: Europe/Paris}
  - {type: shell, inline: ["sleep \${pause}", "echo 5 >/etc/vab-step5"]}
  - {type: file, content: "\${last}\n", destination: /etc/vab-last}
${3:-}
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
template "$AREA/t-fail.yaml" "" "  - type: shell
    inline:
      - echo before-the-failure
      - exit 3
      - echo never-printed"

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

# keep_image NAME: keep this phase's qcow2 (a hard link: a later build
# renames its new output over the name, never writes into this file) for
# read_images at the end.
images=()
image_names=()
keep_image() {
  ln -f "$AREA/out/rebuild-1.qcow2" "$AREA/image-$1.qcow2"
  images+=("$AREA/image-$1.qcow2")
  image_names+=("$1")
}

# read_images: one guestfish appliance reads every kept image; for each,
# lines "NAME PATH CONTENT" (the first line of PATH, or "absent") in
# $AREA/images.txt.
read_images() {
  local args=() img
  for img in "$@"; do args+=(-a "$img"); done
  eval "$(guestfish --listen --ro "${args[@]}")" || return 1
  trap '[ -z "${GUESTFISH_PID:-}" ] || kill "$GUESTFISH_PID" 2>/dev/null' EXIT
  local ok=0 root letter n f
  guestfish --remote -- run || ok=1
  for root in $( [ $ok -eq 0 ] && guestfish --remote -- inspect-os); do
    # The disks are /dev/sda, /dev/sdb, ... in the order given.
    letter=${root#/dev/sd}
    letter=${letter:0:1}
    n=$(( $(printf '%d' "'$letter") - 97 ))
    echo "${image_names[$n]} fs $(guestfish --remote -- vfs-type "$root")"
    echo "${image_names[$n]} table $(guestfish --remote -- part-get-parttype "${root%%[0-9]*}")"
    guestfish --remote -- mount-ro "$root" / || { ok=1; continue; }
    echo "${image_names[$n]} root-bytes $(guestfish --remote -- statvfs / |
      awk '/^ *bsize:/ {b=$2} /^ *blocks:/ {n=$2} END {print b * n}')"
    for f in /etc/vab-last /etc/vab-step5 /etc/vab-step1 /etc/vab-source \
             /usr/sbin/policy-rc.d; do
      if [ "$(guestfish --remote -- exists "$f")" = true ]; then
        echo "${image_names[$n]} $f $(guestfish --remote -- cat "$f" | head -1)"
      else
        echo "${image_names[$n]} $f absent"
      fi
    done
    guestfish --remote -- umount-all
  done >"$AREA/images.txt"
  guestfish --remote -- exit
  unset GUESTFISH_PID
  cat "$AREA/images.txt"
  return $ok
}
# in_image NAME PATH WANT [PATH WANT...]: what read_images found.
in_image() {
  local name=$1
  shift
  while [ $# -ge 2 ]; do
    grep -qxF "$name $1 $2" "$AREA/images.txt" || return 1
    shift 2
  done
}

# A wrong checksum fails at once, naming the source, before any VM.
sed "s/sha256:$sum/sha256:$(printf '0%.0s' $(seq 64))/" "$AREA/t.yaml" >"$AREA/bad.yaml"
build bad "$AREA/bad.yaml" -o "$AREA/out-bad"
check "a wrong rootfs checksum exits 1" [ "$status" -eq 1 ]
check "the error names the checksum" grep -q "checksum" "$AREA/bad.err"
check "no builder VM for a wrong checksum" bash -c "! grep -q 'starting the builder VM' '$AREA/bad.err'"
check "no artifact after the refused build" \
  bash -c "[ -z \"\$(ls -A '$AREA/out-bad' 2>/dev/null | grep -v '\\.log\$')\" ]"

# Steps: source layout p1..p6 sysprep test qcow2 vmdk.
build cold "$AREA/t.yaml" -o "$AREA/out" --no-test
check "cold build exits 0" [ "$status" -eq 0 ]
[ "$status" -eq 0 ] || finish
check "cold build: no step cached" \
  [ "$(flags cold)" = "false false false false false false false false false false false false" ]
cold_sums=$(sums "$AREA/out")
check "cold build: the cache holds layout, six checkpoints, sysprep, two exports" \
  [ "$(ls -d "$cache"/steps/[0-9a-f]* | grep -vc '\.lock$')" -eq 10 ]
keep_image cold
cache_bytes=$(du -sb "$cache/steps" | cut -f1)
artifact_bytes=$(du -cb "$AREA"/out/rebuild-1.qcow2 "$AREA"/out/rebuild-1.vmdk | tail -1 | cut -f1)
echo "cache: $cache_bytes bytes for $artifact_bytes bytes of artifacts"

# An image source: the cold build's qcow2, grown to 4G.  A cache of its
# own, so that its entries never push the cold build's out of $cache.
base=$AREA/image-cold.qcow2
base_sum=$(sha256sum "$base" | cut -d' ' -f1)
cat >"$AREA/image.yaml" <<YAML
vab: 1
name: fromimage
version: "1"
source:
  image: {path: "$base", format: qcow2, checksum: "sha256:$base_sum"}
disk: {size: 4G}
hardware: {cpus: 2, memory: 1G}
provisioners:
  - {type: file, content: "image\n", destination: /etc/vab-source}
outputs:
  - {format: qcow2}
YAML
"$VAB" build "$AREA/image.yaml" -o "$AREA/out-image" --no-test \
  --cache-dir "$AREA/cache-image" 2>"$AREA/image.err"
status=$?
tail -3 "$AREA/image.err"
check "build from an image exits 0" [ "$status" -eq 0 ]
check "the image was grown to 4 GiB" \
  bash -c "qemu-img info '$AREA/out-image/fromimage-1.qcow2' | grep -q 'virtual size: 4 GiB'"
check "the source image was not changed" \
  [ "$(sha256sum "$base" | cut -d' ' -f1)" = "$base_sum" ]
images+=("$AREA/out-image/fromimage-1.qcow2")
image_names+=(image)
rm -rf "$AREA/cache-image"

# A failing seventh step, on the cold build's cached steps: only it runs.
tpl=$AREA/t-fail.yaml
fail_line=$(grep -n -- '- exit 3$' "$tpl" | cut -d: -f1)
"$VAB" build "$tpl" -o "$AREA/out-fail" --cache-dir "$cache" --no-test \
  2>"$AREA/fail.err"
status=$?
tail -3 "$AREA/fail.err"
check "failing step: exit status 1" [ "$status" -eq 1 ]
check "failing step: error at the failing command's line" \
  grep -qF "$tpl:$fail_line:9: error: shell: inline command 2 failed in the guest (exit status 3)" "$AREA/fail.err"
check "failing step: the hint shows the guest's output" grep -q "before-the-failure" "$AREA/fail.err"
check "failing step: the steps before it came from the cache" \
  grep -qE "step 8/[0-9]+: provision 6/7: .*cached" "$AREA/fail.err"
check "failing step: commands after the failure did not run" \
  bash -c "! grep -q never-printed '$AREA/out-fail/rebuild-1.log'"
check "failing step: the build log names the error" grep -q "inline command 2 failed" "$AREA/out-fail/rebuild-1.log"
check "failing step: no artifact, only the log in the output folder" \
  [ "$(ls -A "$AREA/out-fail")" = "rebuild-1.log" ]
check "failing step: no temporary file left" tmp_is_empty
check "failing step: no qemu left" no_qemu_left

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
check "unchanged: --json says no accelerator was chosen" grep -q '"accel":"none"' "$AREA/same.json"
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
keep_image last

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
keep_image corrupt

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
keep_image after-kill

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
  images+=("$AREA/$o/rebuild-1.qcow2")
  image_names+=("$o")
done

check "guestfish reads every phase's image" read_images "${images[@]}"
check "cold build: the root file system is xfs" in_image cold fs xfs
check "cold build: the partition table is MBR" in_image cold table msdos
check "cold build: the image holds the steps' files" \
  in_image cold /etc/vab-step1 1 /etc/vab-step5 5 /etc/vab-last one
check "the image build ran its provisioner" in_image image /etc/vab-source image
image_bytes=$(awk '$1 == "image" && $2 == "root-bytes" {print $3}' "$AREA/images.txt")
check "the image build's root file system grew past 3.5 GiB (${image_bytes:-?} bytes)" \
  [ "${image_bytes:-0}" -gt 3758096384 ]
check "last changed: the image holds the change and the earlier steps" \
  in_image last /etc/vab-last two /etc/vab-step5 5 /etc/vab-step1 1
check "last changed: no policy-rc.d left in the image" \
  in_image last /usr/sbin/policy-rc.d absent
check "corrupt checkpoint: the image is right" \
  in_image corrupt /etc/vab-last three /etc/vab-step5 5
check "after a SIGKILL: the image is right" in_image after-kill /etc/vab-last four
for o in out-a out-b; do
  check "concurrent builds: $o is right" in_image "$o" /etc/vab-last five
done
check "only .lock files and entries in the cache" \
  bash -c "! ls -A '$cache/steps' | grep -q '^\\.tmp-'"
check "no qemu left" no_qemu_left
finish
