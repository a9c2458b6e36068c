#!/bin/sh
# The README's main command: install what is missing, build vab, and build
# examples/web.yaml into tested, signed images in output/web/ (qcow2, VMDK,
# an OVA for VMware and one for VirtualBox, the signed manifest, the build
# log and the boot test's serial log).  The example's signing key is made
# once, in output/keys/ (a real pipeline brings its own).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
"$top/scripts/install-deps.sh"
"$top/scripts/build.sh"
# The libguestfs appliance is cached here; /tmp may be small or tmpfs.
export LIBGUESTFS_CACHEDIR=${LIBGUESTFS_CACHEDIR:-/var/tmp}
key=output/keys/example
if [ ! -f "$key.key" ]; then
  mkdir -p output/keys
  ./build/cli/vab keygen --type ecdsa-p256 --cert-subject "/CN=vab example" \
    -o "$key"
fi
./build/cli/vab build examples/web.yaml --sign-key "$key.key" \
  --sign-cert "$key.crt"
# The signature and every artifact's size and sha256, as a user would check.
exec ./build/cli/vab verify --cert "$key.crt" output/web
