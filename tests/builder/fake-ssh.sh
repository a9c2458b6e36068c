#!/bin/sh
# A stand-in for OpenSSH's ssh in tests/builder/test-ssh.c: it records its
# arguments in $FAKE_SSH_LOG, then runs the remote command on this host
# with sh, as sshd would in the guest.  Guest paths the booted guest uses
# (/run/vab-step, the boot id) are moved under $FAKE_ROOT.
printf '%s\n' "$@" >> "$FAKE_SSH_LOG"
printf '%s\n' '--end--' >> "$FAKE_SSH_LOG"
while [ $# -gt 0 ] && [ "$1" != "--" ]; do shift; done
[ "$1" = "--" ] || exit 255
shift
command=$(printf '%s' "$1" | sed -e "s|/run/vab-step|$FAKE_ROOT/run-vab-step|g" \
  -e "s|/proc/sys/kernel/random/boot_id|$FAKE_ROOT/boot_id|g" \
  -e "s|^systemctl reboot\$|echo rebooted-\$\$ > $FAKE_ROOT/boot_id|")
exec sh -c "$command"
