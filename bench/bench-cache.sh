#!/bin/bash
# The step cache: wall time of a cold build, of a rebuild after changing
# only the last provisioner, and of an unchanged rebuild; and the cache's
# bytes against the artifacts' bytes.  On examples/web.yaml and on a
# template with six provisioners (from the rootfs tarball web's cold build
# bootstrapped).  Not a test: it prints figures and the ratios the issue
# sets (changed/cold <= 0.4, unchanged <= 10 s).
#
#   bench/bench-cache.sh [-s SCRATCH] [-o OLD_VAB] [-r ROOTFS_TAR] VAB
#
# -r: skip examples/web.yaml and build the six-step template from this
# rootfs tarball (any bootstrap tarball: CACHE/steps/*/rootfs.tar).
# SCRATCH (default /var/tmp/vab-bench-cache) holds the caches and outputs;
# about 12 GiB free.  With -o, OLD_VAB (a vab from before the step cache)
# builds each template cold too, for the "cold within 10%" figure.  Cold
# builds start from an empty step cache but keep the bootstrap tarball
# (a bootstrap's time is the mirror's, not vab's).
set -u
scratch=/var/tmp/vab-bench-cache
old=
rootfs=
while getopts s:o:r: opt; do
  case $opt in
    s) scratch=$OPTARG ;;
    o) old=$(realpath "$OPTARG") ;;
    r) rootfs=$(realpath "$OPTARG") ;;
    *) echo "usage: $0 [-s SCRATCH] [-o OLD_VAB] VAB" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || { echo "usage: $0 [-s SCRATCH] [-o OLD_VAB] VAB" >&2; exit 2; }
vab=$(realpath "$1")
src=$(cd "$(dirname "$0")/.." && pwd)
export LIBGUESTFS_CACHEDIR=${LIBGUESTFS_CACHEDIR:-/var/tmp}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}
mkdir -p "$scratch"
export TMPDIR=$scratch/tmp
mkdir -p "$TMPDIR"

# run NAME VAB ARGS...: wall seconds in $wall; exits on failure.
run() {
  local name=$1 bin=$2
  shift 2
  local start end
  start=$(date +%s.%N)
  if ! "$bin" build "$@" >"$scratch/$name.out" 2>"$scratch/$name.err"; then
    echo "$name failed:" >&2
    tail -5 "$scratch/$name.err" >&2
    exit 1
  fi
  end=$(date +%s.%N)
  wall=$(echo "$end - $start" | bc)
  printf '%-34s %8.1f s\n' "$name" "$wall"
}

# Keep the bootstrap entry, drop the rest.
reset_cache() {
  local cache=$1
  mkdir -p "$cache/steps"
  find "$cache/steps" -mindepth 1 -maxdepth 1 -name '[0-9a-f]*' ! -name '*.lock' |
    while read -r e; do
      grep -q '^kind source$' "$e/meta" 2>/dev/null || rm -rf "$e"
    done
}

# bench NAME TEMPLATE VAR_NAME VALUE1 VALUE2 [ARGS...]
bench() {
  local name=$1 template=$2 var=$3 v1=$4 v2=$5
  shift 5
  local cache=$scratch/cache-$name out=$scratch/out-$name
  rm -rf "$out"
  reset_cache "$cache"
  # The bootstrap once, outside the figures.
  if [ "$name" = web ] && ! ls "$cache"/steps/*/rootfs.tar >/dev/null 2>&1; then
    run "$name: bootstrap (not counted)" "$vab" "$template" --cache-dir "$cache" \
      -o "$out" --var "$var=$v1" "$@"
    reset_cache "$cache"
  fi
  if [ -n "$old" ]; then
    run "$name: cold, before the cache" "$old" "$template" --cache-dir "$cache" \
      -o "$out-old" --var "$var=$v1" "$@"
    cold_old=$wall
  fi
  run "$name: cold" "$vab" "$template" --cache-dir "$cache" -o "$out" --var "$var=$v1" "$@"
  cold=$wall
  local artifacts cache_bytes
  artifacts=$(find "$out" -maxdepth 1 -type f ! -name '*.log' -printf '%s\n' | paste -sd+ | bc)
  cache_bytes=$(du -sb --exclude='*/rootfs.tar' "$cache/steps" | cut -f1)
  run "$name: last provisioner changed" "$vab" "$template" --cache-dir "$cache" \
    -o "$out" --var "$var=$v2" "$@"
  changed=$wall
  run "$name: unchanged" "$vab" "$template" --cache-dir "$cache" -o "$out" --var "$var=$v2" "$@"
  unchanged=$wall
  grep -q 'starting the builder VM\|boot test passed' "$scratch/$name: unchanged.err" &&
    echo "$name: the unchanged rebuild started a VM" >&2
  printf '%s: changed/cold %.2f (<= 0.4), unchanged %.1f s (<= 10)\n' "$name" \
    "$(echo "$changed / $cold" | bc -l)" "$unchanged"
  [ -n "$old" ] && printf '%s: cold/cold before %.3f (<= 1.10)\n' "$name" \
    "$(echo "$cold / $cold_old" | bc -l)"
  printf '%s: cache %d bytes for %d bytes of artifacts (%.2f)\n' "$name" \
    "$cache_bytes" "$artifacts" "$(echo "$cache_bytes / $artifacts" | bc -l)"
}

if [ -z "$rootfs" ]; then
# examples/web.yaml with one more provisioner at the end, a file whose
# content is a variable: the "last provisioner" that the rebuild changes.
web=$scratch/web.yaml
sed 's|^  build: "1"|  build: "1"\n  motd: "one"|' "$src/examples/web.yaml" >"$web"
python3 - "$web" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("\ntests:", "\n  - {type: file, content: \"${motd}\\n\", destination: /etc/motd}\n\ntests:", 1)
open(p, "w").write(s)
PY
cp -r "$src/examples/web" "$scratch/" 2>/dev/null
bench web "$web" motd one two
tarball=$(find "$scratch/cache-web/steps" -name rootfs.tar | head -1)
else
  tarball=$rootfs
fi
sum=$(sha256sum "$tarball" | cut -d' ' -f1)
cat >"$scratch/six.yaml" <<YAML
vab: 1
name: six
version: "1"
variables: {last: "one"}
source:
  rootfs: {path: "$tarball", checksum: "sha256:$sum"}
disk: {size: 3G, partitions: gpt, filesystem: ext4, firmware: bios}
hardware: {cpus: 2, memory: 1G}
provisioners:
  - {type: file, content: "1\n", destination: /etc/vab-step1}
  - {type: hostname, hostname: six}
  - {type: shell, inline: ["echo 3 >/etc/vab-step3"]}
  - {type: timezone, timezone: Europe/Paris}
  - {type: shell, inline: ["echo 5 >/etc/vab-step5"]}
  - {type: file, content: "\${last}\n", destination: /etc/vab-last}
tests:
  - boot: {timeout: 600s, serial: "login:"}
outputs:
  - {format: qcow2}
  - {format: vmdk}
YAML
bench six "$scratch/six.yaml" last one two
