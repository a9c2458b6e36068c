#!/bin/sh
# The README's main command: install what is missing, build vab, and build
# examples/web.yaml into tested images in output/web/ (qcow2, VMDK, OVA,
# the build log and the boot test's serial log).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
"$top/scripts/install-deps.sh"
"$top/scripts/build.sh"
# The libguestfs appliance is cached here; /tmp may be small or tmpfs.
export LIBGUESTFS_CACHEDIR=${LIBGUESTFS_CACHEDIR:-/var/tmp}
exec ./build/cli/vab build examples/web.yaml
