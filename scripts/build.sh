#!/bin/sh
# Configure (once) and compile vab into build/.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ -f build/build.ninja ] || meson setup build
meson compile -C build
