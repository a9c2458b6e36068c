#!/bin/bash
# SIGINT while the builder VM works (in the middle of the rootfs upload)
# stops the build promptly: exit status 1, no qemu left, nothing left in
# TMPDIR, no artifact.
. "$(dirname "$0")/build-test-lib.sh"
require_tools
setup_area sigint

"$VAB" build "$SRCDIR/examples/web.yaml" -o "$AREA/out" \
  --cache-dir "$VAB_TEST_CACHE" 2>"$AREA/stderr" &
pid=$!
# Wait until the builder VM's qemu runs for this build (its disk is in our
# TMPDIR) and the rootfs upload (one long libguestfs call) has started, so
# the interrupt has to stop a call in progress.
log=$AREA/out/web-1.0.1.log
started=0
uploading=0
for _ in $(seq 1 900); do
  pgrep -f "qemu-system.*$AREA" >/dev/null && started=1
  if [ "$started" -eq 1 ] && grep -q "layout: unpacking the rootfs" "$log" 2>/dev/null; then
    uploading=1
    break
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 1
done
check "the builder VM started" [ "$started" -eq 1 ]
check "the rootfs upload started" [ "$uploading" -eq 1 ]
sleep 5
kill -INT "$pid"
# The build must stop promptly, not at the end of its current phase.
stopped=0
for _ in $(seq 1 60); do
  if ! kill -0 "$pid" 2>/dev/null; then
    stopped=1
    break
  fi
  sleep 1
done
check "the build stopped within 60 s" [ "$stopped" -eq 1 ]
[ "$stopped" -eq 1 ] || kill -KILL "$pid"
wait "$pid"
status=$?
cat "$AREA/stderr"
check "exit status 1" [ "$status" -eq 1 ]
check "the error says it was interrupted" grep -q "interrupted" "$AREA/stderr"
sleep 2
check "no qemu left" no_qemu_left
check "no temporary file left" tmp_is_empty
check "no artifact" bash -c "! ls '$AREA/out' | grep -v '\\.log\$'"
finish
