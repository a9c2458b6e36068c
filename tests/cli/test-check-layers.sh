#!/bin/bash
# scripts/check-layers.sh fires on each kind of bad edge and passes a tree
# that keeps the rules.  It runs on a tiny fake tree (one file per layer,
# built here into libvab-LAYER.a), so that the test needs no bad edge in
# vab itself.
set -u
: "${SRCDIR:?}"
fail=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vab-check-layers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
problem() { echo "FAIL: $*"; fail=1; }
CC=${CC:-cc}
command -v "$CC" >/dev/null 2>&1 || { echo "SKIP: no C compiler"; exit 77; }
command -v ar >/dev/null 2>&1 || { echo "SKIP: no ar"; exit 77; }

layers="common core signing templates formats provisioners publish builder"
tree=$tmp/tree
mkdir -p "$tree/scripts" "$tree/build" "$tree/include/vab"
cp "$SRCDIR/scripts/check-layers.sh" "$tree/scripts/"
for layer in $layers; do
  mkdir -p "$tree/$layer"
  echo "# $layer" >"$tree/$layer/meson.build"
  printf 'int %s_fn(void);\n' "$layer" >"$tree/$layer/$layer.h"
  printf '#include "%s/%s.h"\nint %s_fn(void) { return 0; }\n' \
    "$layer" "$layer" "$layer" >"$tree/$layer/$layer.c"
done
# Good edges: formats uses signing and common; templates uses core.
cat >"$tree/formats/good.c" <<'C'
#include "signing/signing.h"
#include "common/common.h"
#include "vab/error.h"
int formats_good(void);
int formats_good(void) { return signing_fn() + common_fn(); }
C
printf '#include "core/core.h"\nint templates_good(void);\nint templates_good(void) { return core_fn(); }\n' \
  >"$tree/templates/good.c"

build() {  # the layer libraries of the tree as it is now
  rm -f "$tree/build"/*.a
  for layer in $layers; do
    objs=
    for c in "$tree/$layer"/*.c; do
      o="$tree/build/$layer-$(basename "$c" .c).o"
      "$CC" -g -c -I"$tree" -I"$tree/include" -o "$o" "$c" || return 1
      objs="$objs $o"
    done
    # shellcheck disable=SC2086
    ar rcs "$tree/build/libvab-$layer.a" $objs || return 1
  done
}
run() {  # NAME: the script's stderr in $tmp/NAME.err, its status in rc
  rc=0
  "$tree/scripts/check-layers.sh" "$tree/build" >"$tmp/$1.out" 2>"$tmp/$1.err" || rc=$?
}
expect() {  # NAME PATTERN: the report has a line matching PATTERN
  grep -qE "$2" "$tmp/$1.err" || {
    problem "$1: no line matching '$2' in:"
    sed 's/^/  /' "$tmp/$1.err"
  }
}
touch "$tree/include/vab/error.h" "$tree/include/vab/unknown.h"

build || { problem "the fake tree does not build"; exit 1; }
run clean
[ "$rc" -eq 0 ] || { problem "clean tree: exit $rc"; cat "$tmp/clean.err"; }

# formats includes a template header and calls into templates/.
cat >"$tree/formats/bad.c" <<'C'
#include "common/common.h"
#include "templates/templates.h"
int formats_bad(void);
int formats_bad(void) { return templates_fn(); }
C
# common knows nothing of vab; templates know no provisioners; only cli
# prints or exits.
cat >"$tree/common/bad.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "vab/error.h"
int common_bad(int x);
int common_bad(int x) {
  if (x)
    exit(1);
  (void)write(STDERR_FILENO, "x", 1);
  return puts("hello") + fprintf(stderr, "%d", x);
}
C
cat >"$tree/templates/bad.c" <<'C'
#include "provisioners/provisioners.h"
int templates_bad(void);
int templates_bad(void) { return provisioners_fn(); }
C
# provisioners know no builder.
printf '#include "builder/builder.h"\n' >"$tree/provisioners/bad.c"
# A public header with no layer, and a folder with no layer.
printf '#include "vab/unknown.h"\n' >"$tree/publish/bad.c"
mkdir -p "$tree/cache"
echo "# cache" >"$tree/cache/meson.build"
echo "int cache_fn(void);" >"$tree/cache/cache.c"

build || { problem "the bad tree does not build"; exit 1; }
run bad
[ "$rc" -eq 1 ] || problem "bad tree: exit $rc, not 1"
expect bad '^formats/bad\.c:2: formats includes templates \(templates/templates\.h\); formats may use only signing, core, common'
expect bad '^formats/bad\.c:4: formats links templates \(templates_fn\)'
expect bad '^common/bad\.c:4: common includes core \(vab/error\.h\); common may use only nothing of vab'
expect bad '^common/bad\.c:[0-9]+: common uses exit; only cli/ prints or exits'
expect bad '^common/bad\.c:[0-9]+: common uses (puts|stderr); only cli/'
expect bad '^common/bad\.c:9: common writes to fd 1 or 2'
expect bad '^templates/bad\.c:1: templates includes provisioners'
expect bad '^templates/bad\.c:3: templates links provisioners \(provisioners_fn\)'
expect bad '^provisioners/bad\.c:1: provisioners includes builder \(builder/builder\.h\)'
expect bad '^publish/bad\.c:1: includes vab/unknown\.h, a public header with no layer'
expect bad '^cache/: C sources in a folder with no layer'
expect bad 'check-layers: [0-9]+ edge\(s\) break the layering'
# Nothing was reported about the good files.
if grep -qE '^(formats|templates)/good\.c' "$tmp/bad.err"; then
  problem "a good edge was reported:"
  grep -E '^(formats|templates)/good\.c' "$tmp/bad.err"
fi

# Not a build folder: skip, with the reason.
mkdir "$tmp/empty"
rc=0
"$tree/scripts/check-layers.sh" "$tmp/empty" >/dev/null 2>"$tmp/empty.err" || rc=$?
[ "$rc" -eq 77 ] || problem "no libraries: exit $rc, not 77"
grep -q "libvab-common.a not found" "$tmp/empty.err" || problem "no libraries: no reason given"

[ "$fail" -eq 0 ] && echo "PASS"
exit "$fail"
