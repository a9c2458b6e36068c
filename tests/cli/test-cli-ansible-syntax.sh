#!/bin/bash
# The booted example's playbook (examples/booted/site.yml) passes the real
# ansible-playbook's --syntax-check, and a broken copy of it does not; a
# template with an ansible step on it validates, and without
# ansible-playbook in PATH validate fails at the step with the install
# hint.  Skipped without Ansible (Debian's `ansible`, scripts/packages.txt).
. "$SRCDIR/tests/formats/functions.sh"
require ansible-playbook

playbook="$SRCDIR/examples/booted/site.yml"
mkdir "$tmp/home" "$tmp/local"
: >"$tmp/ansible.cfg"
# As vab runs it: nothing of this user's Ansible setup.
syntax_check() {  # PLAYBOOK
  env -i PATH="$PATH" HOME="$tmp/home" LC_ALL=C.UTF-8 \
    ANSIBLE_CONFIG="$tmp/ansible.cfg" ANSIBLE_LOCAL_TEMP="$tmp/local" \
    ANSIBLE_NOCOLOR=1 \
    timeout 120 ansible-playbook --syntax-check -i localhost, "$1"
}

if ! syntax_check "$playbook" >"$tmp/out" 2>&1; then
  problem "ansible-playbook --syntax-check $playbook failed"
  sed 's/^/  /' "$tmp/out"
fi
grep -qxF "playbook: $playbook" "$tmp/out" ||
  problem "the syntax check did not name the playbook"
# Each module the example is about is there.
for module in template copy lineinfile service; do
  grep -qE "^ +ansible\.builtin\.$module:" "$playbook" ||
    problem "the example playbook has no $module task"
done
grep -qF '{{ site_title }}' "$SRCDIR/examples/booted/templates/ansible.html.j2" ||
  problem "the example's template uses no extra_vars variable"

# The check sees a broken playbook: it is not a formality.
mkdir "$tmp/broken"
cp -r "$SRCDIR/examples/booted/." "$tmp/broken/"
sed -i 's/^  tasks:$/  tasks: {/' "$tmp/broken/site.yml"
syntax_check "$tmp/broken/site.yml" >"$tmp/out" 2>&1 &&
  problem "a broken playbook passed the syntax check"

cat >"$tmp/t.yaml" <<YAML
vab: 1
name: ansible-check
source: {bootstrap: {suite: bookworm}}
provisioners:
  - {type: packages, install: [python3]}
  - type: ansible
    playbook: $SRCDIR/examples/booted/site.yml
    extra_vars: {site_title: Configured by Ansible, build_number: 1}
  - {type: reboot}
YAML
"$VAB" validate "$tmp/t.yaml" >"$tmp/out" 2>"$tmp/err" ||
  { problem "validate of an ansible step failed"; cat "$tmp/err"; }
grep -qF "$tmp/t.yaml: valid (" "$tmp/err" || problem "no 'valid' line"

status=0
PATH=/nonexistent "$VAB" validate "$tmp/t.yaml" >"$tmp/out" 2>"$tmp/err" ||
  status=$?
[ "$status" -eq 1 ] || problem "validate without ansible-playbook: exit $status, want 1"
grep -qF "$tmp/t.yaml:6:5: error: an ansible step runs ansible-playbook on this host, and it is not in PATH" "$tmp/err" ||
  { problem "validate without ansible-playbook: no located error"; cat "$tmp/err"; }
grep -qxF "  hint: install Ansible: apt-get install ansible" "$tmp/err" ||
  problem "validate without ansible-playbook: no install hint"
exit $fail
