#!/bin/bash
# Booted steps (issue 13) on examples/booted.yaml: a booted file and shell
# steps (systemd, nginx started, curl's answer written into the image), an
# offline step after them, the boot test, one qcow2.  Read back with
# guestfish: what each step left, no vab key in any authorized_keys, no
# openssh-server (the template did not ask for it), nothing of vab's SSH
# set-up.  Then one rebuild whose last booted step fails: the error names
# its file:line:column and exit status, the cached prefix is reused and
# the appliance boots once.  No qemu, temporary file or key is left.
. "$(dirname "$0")/build-test-lib.sh"
require_tools
for tool in ssh ssh-keygen; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool (openssh-client)"; exit 77; }
done
# Opt-in until it is seen passing end to end (issue 13 is open): the
# booted path has unit tests against a fake ssh, but this build has not yet
# run to completion on a real appliance.
if [ "${VAB_TEST_BOOTED:-}" != 1 ]; then
  echo "SKIP: set VAB_TEST_BOOTED=1 (booted steps are not verified end to end yet)"
  exit 77
fi
setup_area booted

tpl=$SRCDIR/examples/booted.yaml
out=$AREA/out
"$VAB" build "$tpl" -o "$out" --cache-dir "$VAB_TEST_CACHE" --json \
  >"$AREA/build.json" 2>"$AREA/stderr"
status=$?
tail -40 "$AREA/stderr"
check "the booted build succeeds" [ "$status" -eq 0 ]
img=$out/booted-1.0.qcow2
check "the qcow2 output exists" [ -s "$img" ]
check "the booted serial log is kept" [ -s "$out/booted-1.0.booted-serial.log" ]
# booted: true, and the types that always boot.
n_booted=$(grep -cE '^    booted: true|^  - type: (ansible|reboot)' "$tpl")
check "--json marks the booted steps" \
  [ "$(grep -o '"booted":true' "$AREA/build.json" | wc -l)" -eq "$n_booted" ]
check "--json marks the offline steps" grep -q '"booted":false' "$AREA/build.json"

# Read back only what the build made: absent files would pass the "no
# trace" checks by themselves.
if [ ! -s "$img" ]; then
  fail "no image to read back; the build failed"
  finish
fi
rb=$AREA/readback
mkdir -p "$rb"
guestfish --ro -a "$img" -i >"$rb/answers" 2>"$rb/errors" <<GF
-download /etc/vab-booted-page $rb/page
-download /etc/vab-boot-id-1 $rb/id1
-download /etc/vab-boot-id-2 $rb/id2
-download /etc/vab-nginx-after $rb/nginx-after
-download /etc/hostname $rb/hostname
-download /var/lib/dpkg/status $rb/dpkg-status
-download /root/.ssh/authorized_keys $rb/root-authorized_keys
-download /var/www/html/ansible.html $rb/ansible-page
-download /var/www/html/robots.txt $rb/robots
-download /etc/nginx/sites-available/default $rb/nginx-site
is-symlink /etc/systemd/system/multi-user.target.wants/nginx.service
exists /tmp/.vab-ansible
exists /root/.ansible
glob-expand /home/*/.ssh/authorized_keys*
echo ---
exists /var/lib/vab-booted
exists /etc/ssh/sshd_config.d/00-vab-build.conf
exists /usr/sbin/sshd
exists /usr/sbin/policy-rc.d
exists /run/vab-step
GF
check "the booted shell's curl got the booted file's page" \
  grep -q "Welcome to vab, booted" "$rb/page"
check "the booted steps wrote boot ids" [ -s "$rb/id1" ] && [ -s "$rb/id2" ]
if grep -q '^  - type: reboot' "$tpl"; then
  check "the reboot gave the later step a new boot" \
    bash -c "! cmp -s '$rb/id1' '$rb/id2'"
else
  check "consecutive booted steps shared one boot" cmp -s "$rb/id1" "$rb/id2"
fi
# The ansible step: template (a Jinja variable from extra_vars), copy,
# lineinfile and service, and nothing of Ansible's own left behind.
check "ansible's template used extra_vars" \
  grep -q "<h1>Configured by Ansible</h1>" "$rb/ansible-page"
check "ansible's template used build_number" grep -q "build 1\." "$rb/ansible-page"
check "ansible's copy" cmp -s "$rb/robots" <(printf 'User-agent: *\nDisallow: /private/\n')
check "ansible's lineinfile" \
  grep -qP '^\tadd_header X-Provisioned-By "vab-ansible" always;' "$rb/nginx-site"
# The answers' first three lines: is-symlink, then the two exists.
check "ansible's service enabled nginx" [ "$(sed -n 1p "$rb/answers")" = true ]
check "no ansible temp left in the guest" \
  [ "$(sed -n 2,3p "$rb/answers" | tr '\n' ' ')" = "false false " ]
check "nginx ran in the booted appliance" grep -qx active "$rb/nginx-after"
check "the offline step after the booted ones ran" grep -qx booted "$rb/hostname"
check "curl (a template package) is installed" \
  grep -qx "Package: curl" "$rb/dpkg-status"
check "no openssh-server (vab's is purged)" \
  bash -c "! grep -q '^Package: openssh-server\$' '$rb/dpkg-status'"
check "no vab key in root's authorized_keys" \
  bash -c "[ ! -e '$rb/root-authorized_keys' ] || ! grep -q vab-build '$rb/root-authorized_keys'"
check "no authorized_keys under /home" \
  bash -c "! sed -n '1,/^---\$/p' '$rb/answers' | grep -q authorized_keys"
check "nothing of vab's SSH set-up is left" \
  [ "$(sed -n '/^---$/,$p' "$rb/answers" | grep -c '^false$')" -eq 5 ]
check "no qemu left" no_qemu_left
check "no temporary file or key left" tmp_is_empty

# A failing booted step: the prefix (bootstrap, layout, packages) comes
# from the cache, the booted segment runs again and fails.
fail_tpl=$AREA/fail.yaml
sed 's|systemctl is-active nginx > /etc/vab-nginx-after|echo before-the-failure; exit 7|' \
  "$tpl" >"$fail_tpl"
line=$(grep -n 'before-the-failure' "$fail_tpl" | cut -d: -f1)
"$VAB" build "$fail_tpl" -o "$AREA/out-fail" --cache-dir "$VAB_TEST_CACHE" \
  --no-test 2>"$AREA/stderr-fail"
status=$?
tail -20 "$AREA/stderr-fail"
check "the failing build exits 1" [ "$status" -eq 1 ]
check "the error names the booted command's location and status" \
  grep -qF "$fail_tpl:$line:9: error: shell: inline command 2 failed in the guest (exit status 7)" \
  "$AREA/stderr-fail"
check "the hint shows the guest's output" grep -q before-the-failure "$AREA/stderr-fail"
check "the offline prefix came from the cache" \
  grep -q "packages.*: cached" "$AREA/out-fail/booted-1.0.log"
check "the appliance booted once" \
  [ "$(grep -c 'booting the appliance for its booted steps' "$AREA/out-fail/booted-1.0.log")" -eq 1 ]
check "no qemu left after the failure" no_qemu_left
check "no temporary file or key left after the failure" tmp_is_empty
finish
