#!/bin/sh
# scripts/check-layers.sh BUILD_DIR: check that vab's layering holds.
#
# vab is built as one static library per layer (meson.build at the top).
# A layer may use only the layers listed after it here; every edge to
# another layer is an error, found two ways:
#
#   include edges: every `#include "DIR/..."` line of a layer's .c and .h
#     files, and of the public headers (include/vab/*.h, each of which
#     belongs to a layer: VAB_HEADERS below);
#   link edges: every symbol a layer's library (BUILD_DIR/libvab-LAYER.a)
#     leaves undefined that the library of a layer it may not use defines
#     (or cli/'s objects), from `nm`.  With debug info (the default
#     buildtype) nm names the source line of each use.
#
#   layer         may use                         rule
#   common        nothing of vab                  common knows nothing of vab
#   core          common
#   signing       core common
#   templates     core common (and libyaml)       templates know no builder,
#                                                 formats or provisioners
#   formats       signing core common             formats know no template,
#                                                 builder, provisioners or cli
#   provisioners  templates core common           provisioners know no builder
#                 (the guest through vab/guest.h, core's interface)
#   publish       signing core common
#   builder       every layer above
#   cli           everything (nothing may use cli)
#
# A folder with a meson.build and C sources that is not in this table (and
# not tests/, bench/, examples/...) is an error too: give it a layer here.
#
# Only cli/ prints or exits.  Precisely: no layer library but cli/'s may
# reference (nm, undefined symbols)
#   - the streams stdout and stderr (so no fprintf/fputs/fwrite/putc to
#     them, whatever the call);
#   - printf, vprintf, puts, putchar, perror and their _chk forms;
#     err, errx, warn, warnx and their v forms, error, error_at_line,
#     psignal, psiginfo (they print to stderr themselves);
#   - exit, _Exit, quick_exit (the process's end is cli/'s choice).
# and no layer source may call write() or dprintf() on fd 1 or 2
# (STDOUT_FILENO, STDERR_FILENO).  Fine everywhere: snprintf and the other
# string formatters, writing to a FILE* or fd that is a log or a file the
# caller opened, _exit() (how a forked child ends, common/subprocess.c),
# abort() and assert().
#
# Each problem is one line, FILE:LINE: what, and the rule; the exit status
# is 1 if there is any, 77 (skip) when nm is missing or BUILD_DIR has no
# layer libraries.
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
srcdir=$(cd "$(dirname "$0")/.." && pwd)

LAYERS="common core signing templates formats provisioners publish builder"
# "layer:what it may use", one per layer (cli may use everything).
ALLOWED="common:
core:common
signing:core,common
templates:core,common
formats:signing,core,common
provisioners:templates,core,common
publish:signing,core,common
builder:publish,provisioners,formats,templates,signing,core,common
cli:builder,publish,provisioners,formats,templates,signing,core,common"
# The public headers' layers ("header:layer").  vab/vab.h includes every
# layer's API, so only cli/ may include it.
VAB_HEADERS="error.h:core
progress.h:core
option.h:core
version.h:core
template.h:templates
step.h:templates
format.h:formats
provisioner.h:provisioners
guest.h:core
vab.h:cli"
# Folders with C sources and a meson.build that are not layers.
NOT_LAYERS="tests bench examples docs scripts include"

if ! command -v nm >/dev/null 2>&1; then
  echo "check-layers: nm not found (binutils)" >&2
  exit 77
fi
for layer in $LAYERS; do
  if [ ! -f "$build/libvab-$layer.a" ]; then
    echo "check-layers: $build/libvab-$layer.a not found (not a vab build folder?)" >&2
    exit 77
  fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
problems="$tmp/problems"
: >"$problems"

# The shared awk helpers: allowed(from, to) and rule(layer).
cat >"$tmp/rules.awk" <<'EOF'
function load_rules(    n, i, parts, line) {
  n = split(ALLOWED, lines, "\n")
  for (i = 1; i <= n; i++) {
    split(lines[i], parts, ":")
    may[parts[1]] = "," parts[2] ","
    known[parts[1]] = 1
  }
  n = split(VAB_HEADERS, lines, "\n")
  for (i = 1; i <= n; i++) {
    split(lines[i], parts, ":")
    header_layer[parts[1]] = parts[2]
  }
}
function allowed(from, to) {
  return from == to || index(may[from], "," to ",") > 0
}
function rule(layer,    m) {
  m = may[layer]
  gsub(/^,|,$/, "", m)
  gsub(/,/, ", ", m)
  return layer " may use only " (m == "" ? "nothing of vab" : m) \
         " (scripts/check-layers.sh)"
}
EOF

# Folders that build C code but have no layer.
for dir in "$srcdir"/*/; do
  name=$(basename "$dir")
  [ -f "$dir/meson.build" ] || continue
  case " $LAYERS cli $NOT_LAYERS " in *" $name "*) continue ;; esac
  if find "$dir" -name '*.c' | grep -q .; then
    echo "$name/: C sources in a folder with no layer; add it to the table" \
         "in scripts/check-layers.sh and to meson.build" >>"$problems"
  fi
done

# Include edges.
cd "$srcdir"
find $LAYERS cli include/vab -name '*.[ch]' | sort >"$tmp/files"
cat >"$tmp/includes.awk" <<'EOF'
BEGIN { load_rules() }
FNR == 1 {
  split(FILENAME, p, "/")
  if (p[1] == "include") {
    own = header_layer[p[3]]
    if (own == "") {
      print FILENAME ":1: a public header with no layer; add it to " \
            "VAB_HEADERS in scripts/check-layers.sh"
      own = "cli"
    }
  } else
    own = p[1]
}
/^[ \t]*#[ \t]*include[ \t]*"/ {
  target = $0
  sub(/^[^"]*"/, "", target)
  sub(/".*/, "", target)
  if (index(target, "/") == 0)
    next                        # beside the file: its own folder
  split(target, t, "/")
  if (t[1] == "vab") {
    to = header_layer[t[2]]
    if (to == "") {
      print FILENAME ":" FNR ": includes " target \
            ", a public header with no layer (VAB_HEADERS in scripts/check-layers.sh)"
      next
    }
  } else
    to = t[1]
  if (!(to in known)) {
    print FILENAME ":" FNR ": " own " includes " target ", which is in no layer; " rule(own)
    next
  }
  if (!allowed(own, to))
    print FILENAME ":" FNR ": " own " includes " to " (" target "); " rule(own)
}
# Writes straight to the terminal (comment lines aside).
own != "cli" && $0 !~ /^[ \t]*(\*|\/\/|\/\*)/ &&
    $0 ~ /(^|[^a-z_])(write|dprintf)[ \t]*\([ \t]*(1|2|STDOUT_FILENO|STDERR_FILENO)[ \t]*,/ {
  print FILENAME ":" FNR ": " own " writes to fd 1 or 2; only cli/ prints " \
        "(scripts/check-layers.sh)"
}
EOF
# shellcheck disable=SC2046
awk -v ALLOWED="$ALLOWED" -v VAB_HEADERS="$VAB_HEADERS" \
    -f "$tmp/rules.awk" -f "$tmp/includes.awk" $(cat "$tmp/files") >>"$problems"

# Link edges: who defines what.
for layer in $LAYERS; do
  nm -g --defined-only "$build/libvab-$layer.a" 2>/dev/null |
    awk -v layer="$layer" 'NF >= 3 { print $3, layer }'
done >"$tmp/defs"
for obj in "$build"/cli/vab.p/*.o; do
  [ -f "$obj" ] || continue
  nm -g --defined-only "$obj" | awk 'NF >= 3 { print $3, "cli" }'
done >>"$tmp/defs"

for layer in $LAYERS; do
  nm -l -u "$build/libvab-$layer.a" 2>/dev/null | awk -v layer="$layer" '
    /:$/ { member = $0; sub(/:$/, "", member); sub(/.*\//, "", member); next }
    $1 == "U" { print layer, $2, member, (NF >= 3 ? $3 : "-") }'
done >"$tmp/undefs"

cat >"$tmp/links.awk" <<'EOF'
BEGIN {
  load_rules()
  n = split("stdout stderr printf __printf_chk vprintf __vprintf_chk puts " \
            "putchar putchar_unlocked perror err errx warn warnx verr verrx " \
            "vwarn vwarnx error error_at_line psignal psiginfo exit _Exit " \
            "quick_exit", names, " ")
  for (i = 1; i <= n; i++)
    prints[names[i]] = 1
}
# The source line of a use, relative to the source tree; else the object.
function where(member, loc,    path) {
  if (loc == "-")
    return member
  path = loc
  while (sub(/[^\/]+\/\.\.\//, "", path))
    ;
  if (index(path, SRCDIR "/") == 1)
    path = substr(path, length(SRCDIR) + 2)
  return path
}
NR == FNR { def[$1] = $2; next }
{
  layer = $1; sym = $2
  if (sym in prints) {
    print where($3, $4) ": " layer " uses " sym "; only cli/ prints or exits " \
          "(scripts/check-layers.sh)"
    next
  }
  if (!(sym in def) || allowed(layer, def[sym]))
    next
  print where($3, $4) ": " layer " links " def[sym] " (" sym "); " rule(layer)
}
EOF
awk -v ALLOWED="$ALLOWED" -v VAB_HEADERS="$VAB_HEADERS" -v SRCDIR="$srcdir" \
    -f "$tmp/rules.awk" -f "$tmp/links.awk" "$tmp/defs" "$tmp/undefs" >>"$problems"

if [ -s "$problems" ]; then
  sort -u "$problems" >&2
  echo "check-layers: $(sort -u "$problems" | wc -l) edge(s) break the layering" >&2
  exit 1
fi
echo "check-layers: every include and link edge keeps the layering"
