#!/bin/bash
# vab convert and vab inspect as a user meets them: usage errors (exit 2),
# failures (exit 1) with their message, --json, -f, help texts.
. "$SRCDIR/tests/formats/functions.sh"
require python3

run() {  # STATUS ARGS...: run vab, check the exit status
  local want=$1
  shift
  "$VAB" "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  [ $got = "$want" ] || problem "vab $*: exit $got, want $want: $(cat "$tmp/err")"
}
err_is() {  # exact first stderr line
  [ "$(head -n1 "$tmp/err")" = "$1" ] ||
    problem "stderr: '$(head -n1 "$tmp/err")', want '$1'"
}

make_data mixed "$tmp/src.raw" $((3 * 1024 * 1024))
cd "$tmp" || exit 1

run 2 convert src.raw
err_is "vab convert: missing SRC or DST"
run 2 convert src.raw dst.qcow2
err_is "vab convert: missing -O FMT (the output format)"
run 2 convert -O qcow2 --bogus src.raw dst.qcow2
err_is "vab convert: unknown option '--bogus'"
run 2 convert -O
err_is "vab convert: option -O needs a value"
run 2 convert -O qcow2 a b c
err_is "vab convert: too many arguments"
run 2 convert -O qcow3 src.raw dst.qcow2
err_is "vab convert: error: unknown output format 'qcow3'"
run 2 convert -O qcow2 -o cluster_size=3000 src.raw dst.qcow2
err_is "vab convert: error: qcow2 option cluster_size must be a power of two from 512 to 2097152 bytes, not '3000'"
run 2 convert -O qcow2 -o compression=lzma src.raw dst.qcow2
err_is "vab convert: error: qcow2 option compression must be none, zlib, deflate or zstd, not 'lzma'"
run 2 convert -O qcow2 -o level=99 src.raw dst.qcow2
err_is "vab convert: error: qcow2 option level must be a number from 1 to 22, not '99'"
run 2 convert -O qcow2 -o dedup=maybe src.raw dst.qcow2
err_is "vab convert: error: qcow2 option dedup must be 'on' or 'off', not 'maybe'"
run 2 convert -O qcow2 -o threads=0 src.raw dst.qcow2
err_is "vab convert: error: threads must be a number from 1 to 256, not '0'"
run 2 convert -O qcow2 -o colour=blue src.raw dst.qcow2
err_is "vab convert: error: format qcow2 has no option 'colour'"
grep -qxF "  hint: qcow2 options: compression, level, dedup, cluster_size, backing_file, backing_fmt, threads" "$tmp/err" ||
  problem "no option list hint: $(cat "$tmp/err")"
run 2 convert -O qcow2 -o novalue src.raw dst.qcow2
err_is "vab convert: error: option 'novalue' is not KEY=VALUE"
run 2 convert -O qcow2 -o backing_fmt=raw src.raw dst.qcow2
err_is "vab convert: error: qcow2 option backing_fmt needs backing_file"
run 2 convert -f nosuch -O qcow2 src.raw dst.qcow2
err_is "vab convert: error: unknown image format 'nosuch'"
run 1 convert -O qcow2 missing.raw dst.qcow2
err_is "vab convert: error: cannot open 'missing.raw': No such file or directory"
[ ! -e dst.qcow2 ] || problem "a failed convert left dst.qcow2"

# --json summary.
run 0 convert --json -O qcow2 -o compression=zstd src.raw dst.qcow2
python3 - "$tmp/out" <<'PY' || problem "--json: $(cat "$tmp/out")"
import json, os, sys
j = json.load(open(sys.argv[1]))
assert j["format"] == "qcow2" and j["source"] == "src.raw", j
assert j["destination"] == "dst.qcow2", j
assert j["virtual_size"] == 3 * 1024 * 1024, j
assert j["data_bytes"] + j["zero_bytes"] == j["virtual_size"], j
assert j["data_bytes"] == 2 * 1024 * 1024, j     # random + text + zeros
assert j["file_size"] == os.path.getsize("dst.qcow2"), j
assert j["seconds"] >= 0 and j["compression_ratio"] > 0, j
PY
[ -z "$(cat "$tmp/err")" ] || problem "--json wrote to stderr: $(cat "$tmp/err")"

# Without --json, one summary line on stderr; -q silences it.
run 0 convert -O raw dst.qcow2 back.raw
grep -qE '^back.raw: raw, 3.0 MiB virtual, 2.0 MiB data, 3.0 MiB file, [0-9.]+ s$' "$tmp/err" ||
  problem "summary: $(cat "$tmp/err")"
cmp -s src.raw back.raw || problem "back.raw differs"
run 0 convert -q -O raw dst.qcow2 back.raw
[ ! -s "$tmp/err" ] || problem "-q printed: $(cat "$tmp/err")"

# -f forces the source format: the qcow2 file read as raw bytes.
run 0 convert -q -f raw -O raw dst.qcow2 bytes.raw
cmp -s dst.qcow2 bytes.raw || problem "-f raw did not copy the bytes"

# inspect.
run 0 inspect dst.qcow2
grep -qx "format:           qcow2" "$tmp/out" || problem "inspect format"
grep -qx "compression:      zstd" "$tmp/out" || problem "inspect compression"
grep -qx "virtual size:     3145728 bytes" "$tmp/out" || problem "inspect size"
run 0 inspect --json dst.qcow2
python3 - "$tmp/out" <<'PY' || problem "inspect --json: $(cat "$tmp/out")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["format"] == "qcow2" and j["subformat"] == "v3", j
assert j["cluster_size"] == 65536 and j["compression"] == "zstd", j
assert j["check"] == {"errors": 0, "leaks": 0, "checked": 32}, j
assert j["backing_chain"] == [], j
PY
run 0 inspect src.raw
grep -qx "format:           raw" "$tmp/out" || problem "inspect raw"
grep -qx "check:            no metadata to check" "$tmp/out" ||
  problem "inspect raw: $(grep check: "$tmp/out")"
run 2 inspect
err_is "vab inspect: missing IMAGE"
run 2 inspect a b
err_is "vab inspect: too many arguments"
run 1 inspect missing.qcow2
err_is "vab inspect: error: cannot open 'missing.qcow2': No such file or directory"

# Help texts name every option.
run 0 convert --help
for word in -f -O -o --json -q threads= cluster_size= compression= level= \
    dedup= backing_file= backing_fmt= --trust-backing; do
  grep -qF -- "$word" "$tmp/out" || problem "convert --help lacks $word"
done
run 0 help inspect
grep -qF "usage: vab inspect [-f FMT] [--json] [--trust-backing] IMAGE" "$tmp/out" ||
  problem "inspect help"
no_leftovers "$tmp"
exit $fail
