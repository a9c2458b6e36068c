#!/bin/bash
# Reproducible builds (issue 12 item 5): two cold builds of one template
# (two empty caches, SOURCE_DATE_EPOCH set, a minute or more apart) give
# byte-identical raw, qcow2, VMDK, OVA and VHD artifacts, manifest and
# ed25519 signature; the normalised root file system is clean; and a build
# without SOURCE_DATE_EPOCH (run beside the second one) still gives images
# that qemu-img checks.  The rootfs is the bootstrap tarball that
# test-build-web left in the shared cache, as in test-build-sources; no
# boot test (--no-test), to stay within a few minutes under TCG.
. "$(dirname "$0")/build-test-lib.sh"
require_tools
# Opt-in until its first full run with the root made anew passes (under
# load the runs of 2026-12-01 did not finish; docs/build.md, Status).
if [ "${VAB_TEST_REPRO:-}" != 1 ]; then
  echo "SKIP: set VAB_TEST_REPRO=1 (not yet seen passing)"
  exit 77
fi
for tool in e2fsck mke2fs sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: no $tool"; exit 77; }
done
setup_area repro

tarball=$(find "$VAB_TEST_CACHE" -name '*.tar' ! -name '*.partial.tar' -size +10M 2>/dev/null | head -1)
if [ -z "$tarball" ]; then
  echo "SKIP: no bootstrap tarball in $VAB_TEST_CACHE (test-build-web makes it)"
  exit 77
fi
sum=$(sha256sum "$tarball" | cut -d' ' -f1)
"$VAB" keygen --type ed25519 -o "$AREA/release" >/dev/null ||
  { fail "vab keygen --type ed25519"; finish; }

# A user too: /etc/shadow's change day must come from the epoch.
cat >"$AREA/repro.yaml" <<YAML
vab: 1
name: repro
version: "1"
source:
  rootfs: {path: "$tarball", checksum: "sha256:$sum"}
disk: {size: 2G, partitions: gpt, filesystem: ext4, firmware: bios}
hardware: {cpus: 1, memory: 1G}
provisioners:
  - {type: file, content: "repro\n", destination: /etc/vab-repro}
  - type: users
    users:
      - {name: demo}
outputs:
  - {format: raw}
  - {format: qcow2}
  - {format: vmdk}
  - {format: vhd}
  - {format: ova}
YAML

# build NAME [env options...]: a cold build into $AREA/NAME with its own
# cache.
build() {
  local name=$1
  shift
  mkdir -p "$AREA/$name/tmp"
  env "$@" TMPDIR="$AREA/$name/tmp" "$VAB" build "$AREA/repro.yaml" \
    -o "$AREA/$name/out" --cache-dir "$AREA/$name/cache" --no-test \
    --sign-key "$AREA/release.key" 2>"$AREA/$name/stderr"
}
export SOURCE_DATE_EPOCH=1700000000
build one
status=$?
tail -3 "$AREA/one/stderr"
check "the first reproducible build exits 0" [ "$status" -eq 0 ]
[ "$status" -eq 0 ] || finish
build two &
two=$!
build unset -u SOURCE_DATE_EPOCH &
unset=$!
wait $two
status_two=$?
wait $unset
status_unset=$?
tail -3 "$AREA/two/stderr"
check "the second reproducible build exits 0" [ "$status_two" -eq 0 ]
check "the build without SOURCE_DATE_EPOCH exits 0" [ "$status_unset" -eq 0 ]

for f in repro-1.raw repro-1.qcow2 repro-1.vmdk repro-1.vhd repro-1.ova \
         repro-1.manifest.json repro-1.manifest.json.sig; do
  a=$AREA/one/out/$f b=$AREA/two/out/$f
  check "$f exists" [ -s "$a" ]
  check "$f is byte-identical in both builds" \
    [ "$(sha256sum <"$a")" = "$(sha256sum <"$b" 2>/dev/null)" ]
done

# The normalised root file system is consistent (GPT partition 2).
start=$(sgdisk -i 2 "$AREA/one/out/repro-1.raw" 2>/dev/null | awk '/^First sector/ {print $3}')
check "the root partition is found" [ -n "$start" ]
check "the normalised root passes e2fsck -fn" \
  e2fsck -fn "$AREA/one/out/repro-1.raw?offset=$((start * 512))"
check "the images pass qemu-img check" \
  qemu-img check -q "$AREA/one/out/repro-1.qcow2"
answers=$(guestfish --ro -a "$AREA/one/out/repro-1.qcow2" -i <<'EOF_GF'
cat /etc/vab-repro
stat /etc/vab-repro
EOF_GF
)
check "the provisioner's file is in the image" grep -qx repro <<<"$answers"
check "its ctime is the epoch" grep -qx "ctime: 1700000000" <<<"$answers"
shadow=$(guestfish --ro -a "$AREA/one/out/repro-1.qcow2" -i cat /etc/shadow)
check "/etc/shadow's change day is the epoch's ($((1700000000 / 86400)))" \
  grep -q "^demo:[^:]*:$((1700000000 / 86400)):" <<<"$shadow"

for f in repro-1.qcow2 repro-1.vmdk; do
  check "without SOURCE_DATE_EPOCH, $f passes qemu-img check" \
    qemu-img check -q "$AREA/unset/out/$f"
done
check "no temporary file left" bash -c "[ -z \"\$(ls -A '$AREA/one/tmp' '$AREA/two/tmp' '$AREA/unset/tmp')\" ]"
check "no qemu left" no_qemu_left
finish
