#!/bin/sh
# The README's main command: install what is missing, build vab, and run the
# main job on examples/web.yaml.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
"$top/scripts/install-deps.sh"
"$top/scripts/build.sh"
exec ./build/cli/vab validate examples/web.yaml
