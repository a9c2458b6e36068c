#!/bin/bash
# vab inspect --json and vab convert --json fail with one JSON object on
# stdout (ok false, the diagnostics with code and message) and exit 1.
. "$SRCDIR/tests/formats/functions.sh"
require python3

python3 "$SRCDIR/tests/formats/make-qcow2.py" "$tmp/h" >/dev/null
printf 'QFI\373 too short' >"$tmp/short.qcow2"
mkdir "$tmp/out"

# json_failure NAME CODE_NAME MESSAGE: $tmp/json is such an object.
json_failure() {
  python3 - "$tmp/json" "$2" "$3" <<'PY' || problem "$1: $(cat "$tmp/json")"
import json, sys
path, code_name, message = sys.argv[1:]
with open(path) as f:
    text = f.read()
assert text.count("\n") == 1, "not one line"
doc = json.loads(text)
assert doc["ok"] is False, "ok is not false"
assert doc["errors"] >= 1, "no error counted"
d = [x for x in doc["diagnostics"] if x["severity"] == "error"]
assert d, "no error diagnostic"
assert isinstance(d[0]["code"], int) and d[0]["code"] > 0, "no code"
assert d[-1]["code_name"] == code_name, "code_name %r" % d[-1]["code_name"]
assert any(message in x["message"] for x in d), "no %r" % message
PY
}

run() {  # NAME WANT_STATUS CMD...: stdout to $tmp/json
  local name=$1 want=$2; shift 2
  "$@" >"$tmp/json" 2>"$tmp/err"
  local status=$?
  [ $status = "$want" ] || problem "$name: exit $status, want $want"
  [ -s "$tmp/err" ] || problem "$name: nothing on stderr"
}

run "inspect, missing" 1 "$VAB" inspect --json "$tmp/no-such.qcow2"
json_failure "inspect, missing" io "cannot open '$tmp/no-such.qcow2'"
grep -qF "\"image\":\"$tmp/no-such.qcow2\"" "$tmp/json" ||
  problem "inspect, missing: no image field"

run "inspect, short" 1 "$VAB" inspect --json "$tmp/short.qcow2"
json_failure "inspect, short" format "file too small for a qcow2 header"

run "convert, missing" 1 "$VAB" convert --json -O qcow2 "$tmp/no-such.raw" \
  "$tmp/out/x.qcow2"
json_failure "convert, missing" io "cannot open '$tmp/no-such.raw'"
grep -qF "\"destination\":\"$tmp/out/x.qcow2\"" "$tmp/json" ||
  problem "convert, missing: no destination field"

run "convert, short" 1 "$VAB" convert --json -O raw "$tmp/short.qcow2" \
  "$tmp/out/x.raw"
json_failure "convert, short" format "file too small for a qcow2 header"

# Corrupt mid-way: a compressed cluster that does not inflate.
run "convert, corrupt" 1 "$VAB" convert --json -O qcow2 \
  "$tmp/h/bad-compressed.qcow2" "$tmp/out/x.qcow2"
json_failure "convert, corrupt" format "bad-compressed.qcow2"

[ -z "$(ls -A "$tmp/out")" ] || problem "outputs left: $(ls -A "$tmp/out")"
exit $fail
