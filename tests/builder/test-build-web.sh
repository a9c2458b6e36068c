#!/bin/bash
# examples/web.yaml builds, passes its own boot test (nginx serves the
# example page through the forwarded port), and its images are sound:
# qemu-img check is clean, virt-inspector sees Debian 12, the --json
# summary's sizes and sha256 match the files.
. "$(dirname "$0")/build-test-lib.sh"
require_tools
setup_area web

json=$AREA/summary.json
"$VAB" build "$SRCDIR/examples/web.yaml" -o "$AREA/out" \
  --cache-dir "$VAB_TEST_CACHE" --json >"$json" 2>"$AREA/stderr"
status=$?
cat "$AREA/stderr"
check "vab build examples/web.yaml exits 0" [ "$status" -eq 0 ]
[ "$status" -eq 0 ] || finish

out=$AREA/out
check "qcow2 written" [ -s "$out/web-1.0.1.qcow2" ]
check "vmdk written" [ -s "$out/web-1.0.1.vmdk" ]
check "ova written" [ -s "$out/web-1.0.1.ova" ]
check "build log written" [ -s "$out/web-1.0.1.log" ]
check "serial log shows nginx started" grep -q "Started.*nginx.service" "$out/web-1.0.1.serial.log"
check "serial log shows the kernel booted from GRUB" grep -q "Command line: BOOT_IMAGE=/boot/vmlinuz" "$out/web-1.0.1.serial.log"
check "the boot test passed" grep -q '"tested":true' "$json"
check "qemu-img check qcow2" qemu-img check -q "$out/web-1.0.1.qcow2"
check "qemu-img check vmdk" qemu-img check -q "$out/web-1.0.1.vmdk"
check "qcow2 and vmdk hold the same guest" \
  qemu-img compare -q "$out/web-1.0.1.qcow2" "$out/web-1.0.1.vmdk"

for f in web-1.0.1.qcow2 web-1.0.1.vmdk web-1.0.1.ova; do
  sum=$(sha256sum "$out/$f" | cut -d' ' -f1)
  size=$(stat -c %s "$out/$f")
  check "summary has $f's sha256" grep -q "\"file\":\"$f\"[^}]*\"size\":$size,\"sha256\":\"$sum\"" "$json"
done

inspector=$(virt-inspector -a "$out/web-1.0.1.qcow2" 2>&1)
check "virt-inspector: debian" grep -q "<distro>debian</distro>" <<<"$inspector"
check "virt-inspector: major version 12" grep -q "<major_version>12</major_version>" <<<"$inspector"
check "the page is in the image" \
  bash -c "guestfish --ro -a '$out/web-1.0.1.qcow2' -i cat /var/www/html/index.html | grep -q 'Welcome to vab'"
check "the build wrote its manifest" [ -s "$out/web-1.0.1.manifest.json" ]

# Sign the build, publish it to a registry on 127.0.0.1 (plain HTTP is
# allowed for loopback) and pull it back: byte-identical, verified.
if command -v docker-registry >/dev/null; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat >"$AREA/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $AREA/registry
http:
  addr: 127.0.0.1:$port
YAML
  docker-registry serve "$AREA/registry.yml" >"$AREA/registry.log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break
    sleep 0.1
  done
  check "vab keygen" "$VAB" keygen --type ecdsa-p256 -o "$AREA/release"
  check "vab sign the build" "$VAB" sign --key "$AREA/release.key" "$out"
  check "vab publish the build" "$VAB" publish "$out" "127.0.0.1:$port/appliances/web" \
    --key "$AREA/release.key"
  check "vab pull it back" "$VAB" pull "127.0.0.1:$port/appliances/web:1.0.1" \
    -o "$AREA/pulled" --pubkey "$AREA/release.pub"
  for f in web-1.0.1.qcow2 web-1.0.1.vmdk web-1.0.1.ova web-1.0.1.manifest.json \
           web-1.0.1.manifest.json.sig; do
    check "pulled $f is byte-identical" cmp "$out/$f" "$AREA/pulled/$f"
  done
  check "vab verify accepts the pulled build" \
    "$VAB" verify --pubkey "$AREA/release.pub" "$AREA/pulled"
  kill "$registry_pid" 2>/dev/null
  wait "$registry_pid" 2>/dev/null
else
  fail "docker-registry is not installed (scripts/packages.txt has it)"
fi

check "no temporary file left" tmp_is_empty
check "no qemu left" no_qemu_left
finish
