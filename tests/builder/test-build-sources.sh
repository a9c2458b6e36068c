#!/bin/bash
# The rootfs and image sources.  A build from a rootfs tarball (the
# bootstrap tarball test-build-web left in the shared cache; MBR, xfs,
# checksum verified) that boots to a login prompt; then a build from that
# build's qcow2 as an image source, grown from 3G to 4G with its root file
# system; and a wrong checksum refused before any VM starts.
. "$(dirname "$0")/build-test-lib.sh"
require_tools
setup_area sources

tarball=$(find "$VAB_TEST_CACHE" -name '*.tar' ! -name '*.partial.tar' -size +10M 2>/dev/null | head -1)
if [ -z "$tarball" ]; then
  echo "SKIP: no bootstrap tarball in $VAB_TEST_CACHE (test-build-web makes it)"
  exit 77
fi
sum=$(sha256sum "$tarball" | cut -d' ' -f1)

cat >"$AREA/rootfs.yaml" <<YAML
vab: 1
name: fromrootfs
version: "1"
source:
  rootfs: {path: "$tarball", checksum: "sha256:$sum"}
disk: {size: 3G, partitions: mbr, filesystem: xfs, firmware: bios}
hardware: {cpus: 2, memory: 1G}
provisioners:
  - {type: file, content: "rootfs\n", destination: /etc/vab-source}
tests:
  - boot: {timeout: 600s, serial: "login:"}
outputs:
  - {format: qcow2}
YAML
"$VAB" build "$AREA/rootfs.yaml" -o "$AREA/out" 2>"$AREA/stderr-rootfs"
status=$?
tail -5 "$AREA/stderr-rootfs"
check "build from a rootfs tarball exits 0" [ "$status" -eq 0 ]
[ "$status" -eq 0 ] || finish
img=$AREA/out/fromrootfs-1.qcow2
answers=$(guestfish --ro -a "$img" -i <<'EOF_GF'
cat /etc/vab-source
vfs-type /dev/sda1
part-get-parttype /dev/sda
EOF_GF
)
check "the rootfs build ran its provisioner" grep -qx rootfs <<<"$answers"
check "the root file system is xfs" grep -qx xfs <<<"$answers"
check "the partition table is MBR" grep -qx msdos <<<"$answers"

img_sum=$(sha256sum "$img" | cut -d' ' -f1)
cat >"$AREA/image.yaml" <<YAML
vab: 1
name: fromimage
version: "1"
source:
  image: {path: "$img", format: qcow2, checksum: "sha256:$img_sum"}
disk: {size: 4G}
hardware: {cpus: 2, memory: 1G}
provisioners:
  - {type: file, content: "image\n", destination: /etc/vab-source}
outputs:
  - {format: qcow2}
YAML
"$VAB" build "$AREA/image.yaml" -o "$AREA/out" --no-test 2>"$AREA/stderr-image"
status=$?
tail -5 "$AREA/stderr-image"
check "build from an image exits 0" [ "$status" -eq 0 ]
[ "$status" -eq 0 ] || finish
img2=$AREA/out/fromimage-1.qcow2
check "the image was grown to 4 GiB" \
  bash -c "qemu-img info '$img2' | grep -q 'virtual size: 4 GiB'"
answers=$(guestfish --ro -a "$img2" -i <<'EOF_GF'
cat /etc/vab-source
statvfs / | grep -E '^(bsize|blocks):'
EOF_GF
)
check "the image build ran its provisioner" grep -qx image <<<"$answers"
bytes=$(awk '/^bsize:/ {b=$2} /^blocks:/ {n=$2} END {print b * n}' <<<"$answers")
check "the root file system grew past 3.5 GiB ($bytes bytes)" [ "${bytes:-0}" -gt 3758096384 ]
check "the source image was not changed" \
  [ "$(sha256sum "$img" | cut -d' ' -f1)" = "$img_sum" ]

# A wrong checksum fails at once, naming the source, before any VM.
sed -i "s/sha256:$sum/sha256:$(printf '0%.0s' $(seq 64))/" "$AREA/rootfs.yaml"
"$VAB" build "$AREA/rootfs.yaml" -o "$AREA/out-bad" 2>"$AREA/stderr-bad"
status=$?
check "a wrong rootfs checksum exits 1" [ "$status" -eq 1 ]
check "the error names the checksum" grep -q "checksum" "$AREA/stderr-bad"
check "no artifact after the refused build" bash -c "[ -z \"\$(ls -A '$AREA/out-bad' 2>/dev/null | grep -v '\\.log$')\" ]"
check "no temporary file left" tmp_is_empty
check "no qemu left" no_qemu_left
finish
