#!/bin/bash
# vab cache list, prune and clear on a cache folder filled here the way the
# store writes it (docs/build.md, "The step cache"): entries listed in
# last-use order with their sizes, JSON that parses, unsound entries shown
# and pruned, LRU and age pruning, clear; the bootstrap/ folder of vab
# before the step cache reported and removed; names that are not the cache's
# are left alone; a cache folder that is a file, an unreadable entry, and
# bad option values fail clearly.
. "$SRCDIR/tests/formats/functions.sh"
require python3 sha256sum flock

cache=$tmp/cache
mkdir -p "$cache/steps"

# entry KEYCHAR KIND LABEL BYTES DAYS_AGO: a sound entry of one file.
entry() {
  local key dir sum
  key=$(printf "%064d" 0 | tr 0 "$1")
  dir=$cache/steps/$key
  mkdir "$dir"
  head -c "$4" /dev/zero | tr '\0' x >"$dir/data.bin"
  sum=$(sha256sum "$dir/data.bin" | cut -d' ' -f1)
  printf 'vab-cache 1\nkey %s\nkind %s\nlabel %s\ncreated 1700000000\nfile %s %s data.bin\n' \
    "$key" "$2" "$3" "$4" "$sum" >"$dir/meta"
  touch -d "@$(( $(date +%s) - $5 * 86400 ))" "$dir/meta"
  echo "$key"
}

run() {  # NAME WANT_STATUS CMD...: stdout to $tmp/out, stderr to $tmp/err
  local name=$1 want=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local status=$?
  [ $status = "$want" ] || problem "$name: exit $status, want $want ($(cat "$tmp/err"))"
}

a=$(entry a source "source: bootstrap (web.yaml:4)" 3000 10)
b=$(entry b provision "provision 1/2: shell (web.yaml:9)" 2000 40)
c=$(entry c export "export qcow2 (web.yaml:20)" 1000 1)
# Names that are not the cache's own: left alone by every command.
odd_names=("not an entry" $'new\nline' "-rf" ".tmp-short" "$(printf "%064d" 7)")
for n in "${odd_names[@]}"; do echo mine >"$cache/steps/$n"; done
mkdir "$cache/steps/dddd"
ln -s /etc "$cache/steps/$(printf "%064d" 0 | tr 0 e)"

run "list" 0 "$VAB" cache list --cache-dir "$cache"
grep -q "^3 entries, " "$tmp/out" || problem "list: not 3 entries: $(cat "$tmp/out")"
order=$(grep -oE '^[a-f]{12}' "$tmp/out" | cut -c1 | tr -d '\n')
[ "$order" = bac ] || problem "list: order '$order', want bac (oldest use first)"
grep -q "provision 1/2: shell (web.yaml:9)" "$tmp/out" || problem "list: no label"

run "list --json" 0 "$VAB" cache list --json --cache-dir "$cache"
python3 - "$tmp/out" "$a" "$b" "$c" <<'PY' || problem "list --json: $(cat "$tmp/out")"
import json, sys
doc = json.load(open(sys.argv[1]))
a, b, c = sys.argv[2:]
keys = [e["key"] for e in doc["entries"]]
assert keys == ["sha256:" + k for k in (b, a, c)], keys
e = doc["entries"][1]
assert e["ok"] is True and e["kind"] == "source", e
assert e["files"][0]["name"] == "data.bin" and e["files"][0]["size"] == 3000
assert e["size"] > 3000 and e["last_used"] > 0 and e["created"] == 1700000000
assert doc["total_size"] == sum(x["size"] for x in doc["entries"])
assert doc["legacy_bootstrap"] is None, doc["legacy_bootstrap"]
PY

# An unsound entry: shown as such, and the first to go.
u=$(entry f layout "layout (web.yaml:6)" 500 0)
truncate -s 100 "$cache/steps/$u/data.bin"
# Unreadable meta: a FIFO (never opened blocking) and a link.
v=$(entry 1 sysprep "sysprep" 10 0)
rm "$cache/steps/$v/meta" && mkfifo "$cache/steps/$v/meta"
w=$(entry 2 test "test" 10 0)
rm "$cache/steps/$w/meta" && ln -s /etc/passwd "$cache/steps/$w/meta"
run "list, unsound" 0 timeout 20 "$VAB" cache list --cache-dir "$cache"
grep -q "^${u:0:12} .*unsound: data.bin has 100 bytes, 500 recorded" "$tmp/out" ||
  problem "list: truncated entry not shown unsound: $(cat "$tmp/out")"
grep -q "^${v:0:12} .*unsound: cannot read its meta: not a regular file" "$tmp/out" ||
  problem "list: FIFO meta not shown unsound"
grep -q "^${w:0:12} .*unsound: cannot read its meta" "$tmp/out" ||
  problem "list: linked meta not shown unsound"

# prune --max-size: the unsound go, then b (oldest use) to fit 5000 bytes.
run "prune --max-size" 0 timeout 20 "$VAB" cache prune --max-size 5000 --cache-dir "$cache"
grep -q "removed 4 entries" "$tmp/err" || problem "prune: $(cat "$tmp/err")"
for k in "$u" "$v" "$w" "$b"; do
  [ -e "$cache/steps/$k" ] && problem "prune: ${k:0:12} left"
done
[ -f "$cache/steps/$a/meta" ] && [ -f "$cache/steps/$c/meta" ] ||
  problem "prune: removed a or c"

# prune --older-than: a was used 10 days ago, c 1 day ago.
run "prune --older-than" 0 "$VAB" cache prune --older-than 5d --cache-dir "$cache"
[ -e "$cache/steps/$a" ] && problem "prune --older-than 5d: a left"
[ -f "$cache/steps/$c/meta" ] || problem "prune --older-than 5d: c removed"

# A leftover of a killed writer goes with clear (no one holds its key).
mkdir "$cache/steps/.tmp-$c-AbC123" && echo half >"$cache/steps/.tmp-$c-AbC123/data.bin"
run "clear" 0 "$VAB" cache clear --cache-dir "$cache"
[ -e "$cache/steps/$c" ] && problem "clear: c left"
[ -e "$cache/steps/.tmp-$c-AbC123" ] && problem "clear: stale temp left"
for n in "${odd_names[@]}"; do
  [ "$(cat "$cache/steps/$n")" = mine ] || problem "clear: '$n' touched"
done
[ -d "$cache/steps/dddd" ] || problem "clear: removed a folder not its own"
[ -d /etc ] && [ -L "$cache/steps/$(printf "%064d" 0 | tr 0 e)" ] ||
  problem "clear: removed a link with a key's name"
run "list, empty" 0 "$VAB" cache list --cache-dir "$cache"
grep -q "^0 entries, " "$tmp/out" || problem "list after clear: $(cat "$tmp/out")"

# A missing cache is empty, and is not created.
run "list, missing" 0 "$VAB" cache list --cache-dir "$tmp/none"
[ -e "$tmp/none" ] && problem "list created the missing cache folder"
# The default folder, as for vab build.
mkdir -p "$tmp/xdg/vab/steps"
run "list, default" 0 env XDG_CACHE_HOME="$tmp/xdg" "$VAB" cache list
grep -qF "in $tmp/xdg/vab" "$tmp/out" || problem "default cache folder: $(cat "$tmp/out")"

# A cache folder that is a file.
echo x >"$tmp/file"
for action in list prune clear; do
  run "$action, a file" 1 "$VAB" cache $action --cache-dir "$tmp/file"
  grep -qF "cannot use the cache folder '$tmp/file': Not a directory" "$tmp/err" ||
    problem "$action on a file: $(cat "$tmp/err")"
done
[ "$(cat "$tmp/file")" = x ] || problem "the file was changed"
run "list --json, a file" 1 "$VAB" cache list --json --cache-dir "$tmp/file"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ok"] is False' \
  "$tmp/out" || problem "list --json on a file: $(cat "$tmp/out")"

# The bootstrap cache of vab before the step cache, CACHE/bootstrap/:
# listed apart, removed by prune (not while an older vab holds one of its
# locks), and the step cache's entries beside it are untouched.
cache=$tmp/legacy
mkdir -p "$cache/steps" "$cache/bootstrap"
kept=$(entry 3 source "source: bootstrap (web.yaml:4)" 100 0)
old_key=$(printf "%064d" 0 | tr 0 9)
head -c 4000 /dev/zero >"$cache/bootstrap/$old_key.tar"
: >"$cache/bootstrap/$old_key.lock"
run "list, legacy" 0 "$VAB" cache list --cache-dir "$cache"
grep -qF "and $cache/bootstrap: 2 files (" "$tmp/out" ||
  problem "list: no word of the legacy bootstrap folder: $(cat "$tmp/out")"
grep -q "^1 entry, " "$tmp/out" || problem "list, legacy: not 1 entry: $(cat "$tmp/out")"
run "list --json, legacy" 0 "$VAB" cache list --json --cache-dir "$cache"
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["legacy_bootstrap"] == {"files": 2, "size": 4000}, d["legacy_bootstrap"]
assert len(d["entries"]) == 1' "$tmp/out" || problem "list --json, legacy: $(cat "$tmp/out")"
hold_flock "$cache/bootstrap/$old_key.lock" || problem "flock(1) did not start"
run "prune, legacy in use" 0 "$VAB" cache prune --cache-dir "$cache"
[ -f "$cache/bootstrap/$old_key.tar" ] || problem "prune removed a legacy folder in use"
grep -q "kept $cache/bootstrap.*an older vab is using it" "$tmp/err" ||
  problem "prune, legacy in use: $(cat "$tmp/err")"
release_flock
run "prune, legacy" 0 "$VAB" cache prune --cache-dir "$cache"
[ -e "$cache/bootstrap" ] && problem "prune left the legacy bootstrap folder"
grep -q "removed $cache/bootstrap, the bootstrap cache from before the step cache (2 files" \
  "$tmp/err" || problem "prune, legacy: $(cat "$tmp/err")"
[ -f "$cache/steps/$kept/meta" ] || problem "prune, legacy: removed a sound entry"
run "list, legacy gone" 0 "$VAB" cache list --cache-dir "$cache"
grep -q "before the step cache" "$tmp/out" &&
  problem "list still reports the legacy folder: $(cat "$tmp/out")"
mkdir -p "$cache/bootstrap" && : >"$cache/bootstrap/$old_key.tar"
run "clear, legacy" 0 "$VAB" cache clear --cache-dir "$cache"
[ -e "$cache/bootstrap" ] && problem "clear left the legacy bootstrap folder"
cache=$tmp/cache

# Usage errors.
run "no action" 2 "$VAB" cache
run "bad action" 2 "$VAB" cache purge
run "bad size" 2 "$VAB" cache prune --max-size 10GB --cache-dir "$cache"
grep -q "max-size" "$tmp/err" || problem "bad size: $(cat "$tmp/err")"
run "bad age" 2 "$VAB" cache prune --older-than soon --cache-dir "$cache"
run "json on prune" 2 "$VAB" cache prune --json --cache-dir "$cache"
run "bad VAB_CACHE_MAX_SIZE" 2 env VAB_CACHE_MAX_SIZE=lots "$VAB" cache prune --cache-dir "$cache"
grep -q "VAB_CACHE_MAX_SIZE" "$tmp/err" || problem "bad VAB_CACHE_MAX_SIZE: $(cat "$tmp/err")"
run "help" 0 "$VAB" cache --help
grep -q "vab cache prune" "$tmp/out" || problem "help"
exit $fail
