#!/bin/bash
# vab build --json "steps", without a VM: a rootfs source whose checksum
# does not match fails the build in its source step, after the plan.  The
# summary still lists every planned step in order with kind, label, key
# (sha256:HEX), cached and seconds; keys are stable from run to run, and a
# changed provisioner changes its key and those after it, never those
# before (also with --no-cache).  Nothing is cached: the lookup of the
# step cache leaves at most its lock files.  "accel" is "none" when the
# build chose no accelerator.
. "$SRCDIR/tests/formats/functions.sh"
require python3

echo "not a tar" >"$tmp/rootfs.tar"
template() {  # HOSTNAME
  cat <<YAML
vab: 1
name: steps
version: "1"
source:
  rootfs: {path: rootfs.tar, checksum: "sha256:$(printf '%064d' 0)"}
disk: {size: 2G, firmware: bios}
provisioners:
  - {type: file, content: "a\n", destination: /etc/a}
  - {type: hostname, hostname: $1}
tests:
  - boot: {timeout: 60s, serial: "login:"}
outputs:
  - {format: qcow2}
  - {format: raw}
YAML
}
template one >"$tmp/t.yaml"
run() {  # OUT [OPTION]: vab build --json, which must fail with exit 1
  TMPDIR=$tmp "$VAB" build "$tmp/t.yaml" --json --accel tcg -o "$tmp/out" \
    --cache-dir "$tmp/cache" ${2:+"$2"} >"$1" 2>"$tmp/err"
  local status=$?
  [ $status = 1 ] || problem "vab build: exit $status, want 1: $(cat "$tmp/err")"
}
run "$tmp/1.json"
run "$tmp/2.json" --no-cache
template two >"$tmp/t.yaml"
run "$tmp/3.json"
python3 - "$tmp/1.json" "$tmp/2.json" "$tmp/3.json" <<'PY' || problem "steps: $(cat "$tmp/1.json")"
import json, re, sys
one, two, three = (json.load(open(p)) for p in sys.argv[1:])
steps = one["steps"]
kinds = [s["kind"] for s in steps]
assert kinds == ["source", "layout", "provision", "provision", "sysprep",
                 "test", "export", "export"], kinds
labels = [s["label"] for s in steps]
assert labels[0].startswith("source: rootfs rootfs.tar (t.yaml:5)"), labels
assert labels[3] == "provision 2/2: hostname (t.yaml:9)", labels
assert labels[7] == "export 2/2: raw (t.yaml:14)", labels
for s in steps:
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", s["key"]), s
    assert s["cached"] is False, s
    assert isinstance(s["seconds"], (int, float)) and s["seconds"] >= 0, s
assert len({s["key"] for s in steps}) == len(steps), "keys repeat"
assert [s["key"] for s in two["steps"]] == [s["key"] for s in steps], \
    "keys changed between two runs of the same template"
k1 = [s["key"] for s in steps]
k3 = [s["key"] for s in three["steps"]]
assert k1[:3] == k3[:3], "a step before the changed one changed its key"
assert all(a != b for a, b in zip(k1[3:], k3[3:])), \
    "a step from the changed one on kept its key"
assert one["ok"] is False and one["source_cached"] is False
PY
grep -q "checksum mismatch" "$tmp/err" || problem "not the checksum error: $(cat "$tmp/err")"
entries=$(find "$tmp/cache" -mindepth 2 -maxdepth 2 ! -name '*.lock' 2>/dev/null)
[ -n "$entries" ] && problem "a failed build stored cache entries: $entries"
ls -A "$tmp/out" 2>/dev/null | grep -q '^\.vab-cache-' && problem "a failed build left its cache stage folder in the output"

# "accel" says what was chosen: tcg for the runs above (a VM was to run,
# --accel tcg), and "none" for a build that stops before choosing one
# (here: its output folder is a file), never "auto".
grep -q '"accel":"tcg"' "$tmp/1.json" || problem "accel is not tcg: $(cat "$tmp/1.json")"
: >"$tmp/not-a-folder"
TMPDIR=$tmp "$VAB" build "$tmp/t.yaml" --json -o "$tmp/not-a-folder" \
  --cache-dir "$tmp/cache" >"$tmp/4.json" 2>"$tmp/err"
status=$?
[ $status = 1 ] || problem "vab build -o FILE: exit $status, want 1"
python3 - "$tmp/4.json" <<'PY' || problem "no VM, accel: $(cat "$tmp/4.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["ok"] is False and doc["accel"] == "none", doc["accel"]
PY
exit $fail
