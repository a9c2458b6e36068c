#!/bin/bash
# A failing shell command fails the build: exit status 1, an error at the
# command's template line with the guest's last output, the build log
# kept, no artifact, nothing left in TMPDIR and no qemu.
. "$(dirname "$0")/build-test-lib.sh"
require_tools
setup_area fail

tpl=$SRCDIR/tests/builder/data/fail.yaml
"$VAB" build "$tpl" -o "$AREA/out" --cache-dir "$VAB_TEST_CACHE" --no-test \
  2>"$AREA/stderr"
status=$?
cat "$AREA/stderr"
check "exit status 1" [ "$status" -eq 1 ]
check "error at the failing command's line" \
  grep -qF "$tpl:18:9: error: shell: inline command 2 failed in the guest (exit status 3)" "$AREA/stderr"
check "the hint shows the guest's output" grep -q "before-the-failure" "$AREA/stderr"
check "commands after the failure did not run" \
  bash -c "! grep -q never-printed '$AREA/out/fail-1.log'"
check "the build log names the error" grep -q "inline command 2 failed" "$AREA/out/fail-1.log"
check "no artifact" [ ! -e "$AREA/out/fail-1.qcow2" ]
check "only the log in the output folder" [ "$(ls "$AREA/out")" = "fail-1.log" ]
check "no temporary file left" tmp_is_empty
check "no qemu left" no_qemu_left
finish
