#!/bin/bash
# Faults injected on purpose into whole builds, each run as cheap as it can
# be and reused by the next:
#   cache-full  the bootstrap cache on a 16 MiB tmpfs: mmdebstrap's tarball
#               cannot fit; a clear ENOSPC error, no cache entry at all
#               (entries: CACHE/steps/KEY/, being written: .tmp-KEY-XXXXXX);
#   source      (room again) a rerun bootstraps anew, not from a truncated
#               entry; SIGINT while mmdebstrap works in its chroot;
#   shared      two builds of different templates at once on that cache:
#               one bootstraps, the other waits for it, both are sound;
#   layout      SIGTERM while the rootfs is unpacked in the builder VM;
#   provision   SIGINT in a shell step (image source: build a's disk);
#   test        SIGTERM in the boot test;
#   export      SIGINT in the second export (the first one completed);
#   export-full the output folder on a tmpfs with room for one output;
#   publish     SIGTERM in the upload to a registry started here.
# Every failure: exit 1, no qemu or mmdebstrap left, nothing in TMPDIR, no
# temporary and no artifact under a final name, the log says why.  Needs
# root for mount (skips otherwise) and the Debian mirror.
. "$(dirname "$0")/build-test-lib.sh"
require_tools
command -v docker-registry >/dev/null || { echo "SKIP: no docker-registry"; exit 77; }
# A run killed before its cleanup leaves its mounts: setup_area cannot
# remove them.
for m in cache full; do umount "$BUILDDIR/tests/builder/area-faults/$m" 2>/dev/null; done
setup_area faults

cache=$AREA/cache
mkdir -p "$cache"
if ! mount -t tmpfs -o size=16M tmpfs "$cache" 2>/dev/null; then
  echo "SKIP: cannot mount a tmpfs (not root?)"
  exit 77
fi
full=$AREA/full
mkdir -p "$full"
registry_pid=
cleanup() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null
  [ -n "${pid:-}" ] && kill -KILL "$pid" 2>/dev/null
  umount "$cache" 2>/dev/null
  umount "$full" 2>/dev/null
}
trap cleanup EXIT
# The lib's finish removes the area: the mounts go first.
finish_faults() { cleanup; trap - EXIT; finish; }
accel=()   # the first build's answer, so later builds skip the KVM probe

# template NAME: the path of this run's template (written by the caller).
template() { echo "$AREA/$1.yaml"; }
build_log() { echo "$AREA/out-$1/$1-1.log"; }

# start NAME ARGS...: vab build NAME.yaml in the background ($pid).
start() {
  local name=$1
  shift
  "$VAB" build "$(template "$name")" -o "$AREA/out-$name" "${accel[@]}" \
    --json "$@" >"$AREA/$name.json" 2>"$AREA/$name.stderr" &
  pid=$!
}

# wait_log NAME REGEX: until the build log matches (0) or the build ends (1).
wait_log() {
  local log
  log=$(build_log "$1")
  for _ in $(seq 1 6000); do
    grep -qE "$2" "$log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

# finish_run LABEL NAME: wait for the build ($pid), at most 60 s; sets
# $status.
finish_run() {
  local stopped=0
  for _ in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      stopped=1
      break
    fi
    sleep 0.2
  done
  check "$1: the build stopped within 60 s" [ "$stopped" -eq 1 ]
  [ "$stopped" -eq 1 ] || kill -KILL "$pid"
  wait "$pid"
  status=$?
  pid=
  tail -n 4 "$AREA/$2.stderr"
}

no_mmdebstrap_left() { ! pgrep -f "mmdebstrap.*$AREA" >/dev/null; }
qemu_runs() { pgrep -f "qemu-system.*$AREA" >/dev/null; }
# Nothing but logs in the output folder: no artifact, no hidden temporary.
only_logs() { [ -z "$(ls -A "$1" 2>/dev/null | grep -v '\.log$')" ]; }

# No mount left in TMPDIR (mmdebstrap's chroot mounts /proc, /sys, /dev).
no_mount_left() { ! grep -qF " $AREA/tmp/" /proc/self/mountinfo; }

# left_clean LABEL NAME: the state every failed build must leave.
left_clean() {
  local label=$1 name=$2
  check "$label: exit status 1" [ "$status" -eq 1 ]
  for _ in $(seq 1 20); do qemu_runs || break; sleep 0.5; done
  check "$label: no qemu left" no_qemu_left
  check "$label: no mmdebstrap left" no_mmdebstrap_left
  check "$label: no mount left in TMPDIR" no_mount_left
  check "$label: nothing left in TMPDIR" tmp_is_empty
  check "$label: the --json result says ok false" grep -q '"ok":false' "$AREA/$name.json"
}

# interrupt LABEL NAME SIGNAL REGEX [VM]: once the build log matches REGEX
# (and with VM, once qemu runs), send SIGNAL and check what is left.
interrupt() {
  local label=$1 name=$2 sig=$3 regex=$4 vm=${5:-}
  local reached=0 running=0
  wait_log "$name" "$regex" && reached=1
  check "$label: the build reached /$regex/" [ "$reached" -eq 1 ]
  sleep 2
  if [ -n "$vm" ]; then
    for _ in $(seq 1 50); do qemu_runs && { running=1; break; }; sleep 0.2; done
    check "$label: qemu ran when SIG$sig was sent" [ "$running" -eq 1 ]
  fi
  kill -"$sig" "$pid" 2>/dev/null
  finish_run "$label" "$name"
  left_clean "$label" "$name"
  check "$label: the error says it was interrupted" grep -q "interrupted" "$AREA/$name.stderr"
  check "$label: the build log says it was interrupted" grep -q "error: interrupted" "$(build_log "$name")"
}

bootstrap_yaml() {  # NAME DISK OUTPUTS PROVISIONER
  cat >"$(template "$1")" <<YAML
vab: 1
name: $1
version: "1"
source:
  bootstrap: {distro: debian, suite: bookworm, mirror: http://deb.debian.org/debian, variant: minbase}
disk: $2
hardware: {cpus: 2, memory: 1G}
provisioners:
  - $4
outputs: $3
YAML
}

# cache-full: mmdebstrap runs to the end, then its tarball does not fit.
bootstrap_yaml a "{size: 3G, partitions: gpt, filesystem: ext4, firmware: bios}" \
  "[{format: qcow2, compression: zstd}]" \
  '{type: file, content: "a\n", destination: /etc/vab-faults}'
start a --cache-dir "$cache" --no-test
wait "$pid"
status=$?
pid=
tail -n 6 "$AREA/a.stderr"
grep -q '"accel":"kvm"' "$AREA/a.json" && accel=(--accel kvm) || accel=(--accel tcg)
left_clean cache-full a
check "cache-full: the error names the cache entry and ENOSPC" grep -qE \
  "error: cannot write the bootstrap cache entry '$cache/steps/\\.tmp-[0-9a-f]{64}-[A-Za-z0-9]{6}/rootfs\\.tar': No space left on device" \
  "$AREA/a.stderr"
check "cache-full: no cache entry, whole or partial" \
  bash -c "! ls -A '$cache/steps' | grep -qE '^[0-9a-f]{64}\$|^\\.tmp-'"
check "cache-full: no artifact" only_logs "$AREA/out-a"
mv "$AREA/out-a" "$AREA/out-a-full"

# source: with room again the rerun bootstraps (nothing truncated is used).
# Room: the cache folder on the build's disk, not a tmpfs in memory (every
# step is an entry now: disks of a few GiB).
umount "$cache"
cp "$(template a)" "$(template s)"
sed -i 's/^name: a$/name: s/' "$(template s)"
start s --cache-dir "$cache" --no-test
interrupt source s INT "mmdebstrap: I: (extracting|installing)"
check "source: mmdebstrap ran (not a cached entry)" \
  bash -c "! grep -q 'using the cached rootfs' '$(build_log s)'"
check "source: no cache entry, whole or partial" \
  bash -c "! ls -A '$cache/steps' | grep -qE '^[0-9a-f]{64}\$|^\\.tmp-'"
check "source: no artifact" only_logs "$AREA/out-s"

# shared: two templates, one cache, at once.  Same bootstrap: one runs
# mmdebstrap, the other waits for the entry's lock and then uses it.
bootstrap_yaml b "{size: 3G, partitions: mbr, filesystem: ext4, firmware: bios}" \
  "[{format: vmdk}]" '{type: hostname, hostname: faults-b}'
start a --cache-dir "$cache" --no-test
pid_a=$pid
start b --cache-dir "$cache" --no-test
pid_b=$pid
wait "$pid_a"
status_a=$?
wait "$pid_b"
status_b=$?
pid=
tail -n 3 "$AREA/a.stderr" "$AREA/b.stderr"
check "shared: build a exits 0" [ "$status_a" -eq 0 ]
check "shared: build b exits 0" [ "$status_b" -eq 0 ]
[ "$status_a" -eq 0 ] && [ "$status_b" -eq 0 ] || finish_faults
check "shared: qemu-img check a's qcow2" qemu-img check -q "$AREA/out-a/a-1.qcow2"
check "shared: qemu-img check b's vmdk" qemu-img check -q "$AREA/out-b/b-1.vmdk"
ran=$(grep -l "bootstrap: mmdebstrap" "$(build_log a)" "$(build_log b)" | wc -l)
waited=$(grep -l "waiting for another build bootstrapping" "$(build_log a)" "$(build_log b)" | wc -l)
check "shared: exactly one build ran mmdebstrap ($ran)" [ "$ran" -eq 1 ]
check "shared: the other waited for it ($waited)" [ "$waited" -eq 1 ]
partial=$(ls -A "$cache/steps" | grep -c '^\.tmp-')
check "shared: no partial cache entry ($partial)" [ "$partial" -eq 0 ]
check "shared: one rootfs entry for both" [ "$(ls "$cache"/steps/*/rootfs.tar | wc -l)" -eq 1 ]
entry=$(ls "$cache"/steps/*/rootfs.tar | head -1)
check "shared: the cache entry is a whole tar" tar -tf "$entry" ./etc/os-release
check "shared: vab cache list shows one sound source entry" bash -c \
  "'$VAB' cache list --json --cache-dir '$cache' | python3 -c 'import json,sys; e=[x for x in json.load(sys.stdin)[\"entries\"] if x[\"kind\"] == \"source\"]; assert len(e) == 1 and e[0][\"ok\"], e'"
cached=$(cat "$AREA/a.json" "$AREA/b.json" | python3 -c '
import json, sys
print(sum(json.loads(l)["steps"][0]["cached"] for l in sys.stdin if l.strip()))')
check "shared: the waiting build's --json says its source step was cached ($cached)" \
  [ "$cached" = 1 ]
check "shared: a's guest has a's file" bash -c \
  "guestfish --ro -a '$AREA/out-a/a-1.qcow2' -i cat /etc/vab-faults | grep -qx a"
check "nothing left in TMPDIR after the shared builds" tmp_is_empty

# layout: SIGTERM while the builder VM unpacks the rootfs.
# A disk of its own: with a's disk the layout's key would be a's, and its
# entry would be used (a name is not part of the key).
bootstrap_yaml l "{size: 3500M, partitions: gpt, filesystem: ext4, firmware: bios}" \
  "[{format: qcow2}]" '{type: file, content: "l\n", destination: /etc/vab-faults}'
start l --cache-dir "$cache" --no-test
interrupt layout l TERM "layout: unpacking the rootfs" vm
check "layout: no artifact" only_logs "$AREA/out-l"

# The next runs start from build a's disk (an image source: no bootstrap,
# no unpacking), grown to 4G.  test, export, export-full and publish share
# one provisioner (a name is not part of a key), so the builder VM runs it
# once, in the test run: the later ones find the finished disk in the step
# cache and run only their exports (no VM).
base=$AREA/out-a/a-1.qcow2
base_sum=$(sha256sum "$base" | cut -d' ' -f1)
image_yaml() {  # NAME, then the template's tail on stdin
  { cat <<YAML
vab: 1
name: $1
version: "1"
source:
  image: {path: "$base", format: qcow2, checksum: "sha256:$base_sum"}
disk: {size: 4G}
hardware: {cpus: 2, memory: 1G}
YAML
    cat; } >"$(template "$1")"
}

# provision: SIGINT in a shell step that would run for minutes (its
# output reaches the log as it runs).
image_yaml p <<'YAML'
provisioners:
  - {type: shell, inline: ["echo provision-started", "sleep 600"]}
outputs: [{format: qcow2}]
YAML
start p --no-test
interrupt provision p INT "guest: provision-started" vm
check "provision: no artifact" only_logs "$AREA/out-p"

# test: SIGTERM while the boot test's qemu runs.
image_yaml t <<'YAML'
provisioners:
  - {type: file, content: "faults\n", destination: /etc/vab-faults}
tests:
  - boot: {timeout: 600s, serial: "vab-never-printed-on-the-console"}
outputs: [{format: qcow2}]
YAML
start t
interrupt test t TERM "boot test: " vm
check "test: no artifact" only_logs "$AREA/out-t"

# export: SIGINT in the slow second output; the first one, complete by
# then, is removed too.
image_yaml e <<'YAML'
provisioners:
  - {type: file, content: "faults\n", destination: /etc/vab-faults}
outputs:
  - {format: raw}
  - {format: qcow2, compression: zstd, level: 19}
YAML
start e --no-test
interrupt export e INT "export: writing e-1\\.qcow2"
check "export: the raw output was complete first" grep -q "export: e-1.raw," "$(build_log e)"
check "export: no artifact (the complete raw removed too)" only_logs "$AREA/out-e"

# export-full: room for the qcow2 but not for the OVA after it.
a_size=$(stat -c %s "$base")
mount -t tmpfs -o size=$((a_size * 3 / 2 + 8 * 1024 * 1024)) tmpfs "$full"
image_yaml f <<'YAML'
provisioners:
  - {type: file, content: "faults\n", destination: /etc/vab-faults}
outputs:
  - {format: qcow2, compression: zstd}
  - {format: ova, target: vmware}
YAML
"$VAB" build "$(template f)" -o "$full" "${accel[@]}" --no-test --json \
  >"$AREA/f.json" 2>"$AREA/f.stderr"
status=$?
tail -n 6 "$AREA/f.stderr"
left_clean export-full f
check "export-full: the error says ENOSPC" grep -q "No space left on device" "$AREA/f.stderr"
check "export-full: the error names the output file" grep -qF "'$full/" "$AREA/f.stderr"
check "export-full: no artifact, no temporary" only_logs "$full"
check "export-full: the log says what failed" grep -q "No space left on device" "$full/f-1.log"
umount "$full"

# publish: SIGTERM in the middle of the upload.  The build was complete
# and signed before the push started, so it is kept (docs/build.md), and
# whatever is left must verify: nothing incomplete under a final name.
"$VAB" keygen -o "$AREA/key" >/dev/null || fail "vab keygen"
start_plain_registry "$AREA" || fail "docker-registry did not start"
image_yaml u <<YAML
provisioners:
  - {type: file, content: "faults\n", destination: /etc/vab-faults}
outputs: [{format: raw}]
publish:
  - {ref: "127.0.0.1:$port/faults/u", tags: [latest]}
YAML
start u --no-test --sign-key "$AREA/key.key"
interrupt publish u TERM "raw: uploading [0-9]+ bytes"
check "publish: the build kept verifies (no partial artifact)" \
  "$VAB" verify --pubkey "$AREA/key.pub" "$AREA/out-u"
check "publish: no temporary in the output folder" \
  bash -c "[ -z \"\$(ls -A '$AREA/out-u' | grep '^\\.')\" ]"
check "publish: the registry has no tag for the interrupted push" \
  bash -c "! curl -sf 'http://127.0.0.1:$port/v2/faults/u/manifests/latest' >/dev/null"

finish_faults
