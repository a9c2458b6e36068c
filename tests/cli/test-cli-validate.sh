#!/bin/bash
# vab validate as a user runs it: every example passes, every broken
# template fails with its located message, --json is JSON, --print is a
# fixed point.
set -u
: "${VAB:?}" "${SRCDIR:?}"
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$SRCDIR" || exit 1
problem() { echo "FAIL: $*"; fail=1; }

# Every example is valid.
for t in examples/*.yaml; do
  timeout 10 "$VAB" validate "$t" >"$tmp/out" 2>"$tmp/err"
  status=$?
  [ $status -eq 0 ] || { problem "$t: exit $status"; cat "$tmp/err"; }
  grep -qF "$t: valid (" "$tmp/err" || problem "$t: no 'valid' line"
done

# Every broken template fails with exit 1, quickly, with the message its
# first line announces ("# expect: LINE:COL: error: ...").
for t in tests/templates/data/broken/*.yaml; do
  timeout 10 "$VAB" validate "$t" >"$tmp/out" 2>"$tmp/err"
  status=$?
  [ $status -eq 1 ] || { problem "$t: exit $status, want 1"; cat "$tmp/err"; }
  want=$(sed -n '1s/^# expect: //p' "$t")
  if [ -n "$want" ] && ! grep -qF -- "$t:$want" "$tmp/err"; then
    problem "$t: stderr lacks '$t:$want'"
    sed 's/^/  /' "$tmp/err"
  fi
  grep -qE "^$t: invalid: [0-9]+ errors?$" "$tmp/err" ||
    problem "$t: no summary line"
done

# Hints and carets.
"$VAB" validate tests/templates/data/broken/misspelt-type.yaml 2>"$tmp/err"
grep -qxF "  hint: did you mean 'hostname'?" "$tmp/err" ||
  problem "misspelt-type: no 'did you mean'"
grep -qxF "    - type: hostnme" "$tmp/err" || problem "misspelt-type: no line"
grep -qxF "            ^" "$tmp/err" || problem "misspelt-type: caret"

# Not templates at all.
"$VAB" validate examples 2>"$tmp/err"
[ $? -eq 1 ] || problem "a directory: exit status"
grep -qF "vab validate: error: 'examples' is a directory, not a template file" \
  "$tmp/err" || problem "a directory: message"
"$VAB" validate no/such.yaml 2>"$tmp/err"
[ $? -eq 1 ] || problem "a missing path: exit status"
grep -qF "vab validate: error: cannot open template 'no/such.yaml': No such file or directory" \
  "$tmp/err" || problem "a missing path: message"
head -c 5000000 /dev/zero >"$tmp/huge.yaml"
timeout 10 "$VAB" validate "$tmp/huge.yaml" 2>"$tmp/err"
[ $? -eq 1 ] || problem "a huge file: exit status"
grep -qF "is too large for a template: 5000000 bytes" "$tmp/err" ||
  problem "a huge file: message"

# --json: valid JSON with the diagnostics, on stdout.
"$VAB" validate --json tests/templates/data/broken/bad-size.yaml \
  >"$tmp/json" 2>"$tmp/err"
[ $? -eq 1 ] || problem "--json on a broken template: exit status"
python3 - "$tmp/json" <<'PY' || problem "--json: wrong content"
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["valid"] is False, doc
assert doc["errors"] == 1, doc
d = doc["diagnostics"][0]
assert d["file"] == "tests/templates/data/broken/bad-size.yaml", d
assert (d["line"], d["column"]) == (5, 14), d
assert d["severity"] == "error" and d["code_name"] == "schema", d
assert d["hint"] == "sizes are binary: write 4G or 4GiB", d
PY
for t in examples/web.yaml tests/templates/data/broken/invalid-utf8.yaml \
         tests/templates/data/broken/binary.yaml; do
  "$VAB" validate --json "$t" >"$tmp/json" 2>/dev/null
  python3 -m json.tool "$tmp/json" >/dev/null || problem "--json $t: not JSON"
done
"$VAB" validate --json examples/web.yaml >"$tmp/json"
python3 - "$tmp/json" <<'PY' || problem "--json on web.yaml: wrong content"
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc == {"valid": True, "template": "examples/web.yaml", "name": "web",
               "version": "1.0.1", "errors": 0, "diagnostics": []}, doc
PY

# --print: the canonical form validates again, to the same bytes.  The
# print goes into a copy of examples/ so that its relative paths resolve.
cp -r examples "$tmp/examples"
for t in examples/*.yaml; do
  base=$(basename "$t" .yaml)
  "$VAB" validate --print "$t" >"$tmp/$base.1" || problem "--print $t"
  printed="$tmp/examples/printed-$base.yaml"
  cp "$tmp/$base.1" "$printed"
  "$VAB" validate --print "$printed" >"$tmp/$base.2" 2>"$tmp/err"
  status=$?
  [ $status -eq 0 ] || { problem "--print of $t does not validate"; cat "$tmp/err"; }
  cmp -s "$tmp/$base.1" "$tmp/$base.2" ||
    { problem "--print of $t is not a fixed point"; diff "$tmp/$base.1" "$tmp/$base.2"; }
done

# Defaults are filled in the print.
for line in "version: 0" "  size: 4G" "  memory: 2G" "- format: qcow2" \
            "  - machine-id"; do
  grep -qxF -- "$line" "$tmp/minimal.1" || problem "minimal --print lacks '$line'"
done

# Variables: the template's default, then --var, then VAB_VAR_NAME.
[ "$(env -u VAB_VAR_build "$VAB" validate --print examples/web.yaml |
     sed -n 's/^version: //p')" = '1.0.1' ] || problem "default variable"
[ "$(env -u VAB_VAR_build "$VAB" validate --print --var build=42 examples/web.yaml |
     sed -n 's/^version: //p')" = '1.0.42' ] || problem "--var"
[ "$(VAB_VAR_build=7 "$VAB" validate --print --var build=42 examples/web.yaml |
     sed -n 's/^version: //p')" = '1.0.7' ] || problem "VAB_VAR_build"

exit $fail
