#!/bin/bash
# End to end on a small appliance: every provisioner and the default
# sysprep, checked in the exported image with guestfish (an independent
# reader), and a boot test that fetches a page the firstboot script wrote.
. "$(dirname "$0")/build-test-lib.sh"
require_tools
setup_area e2e

# The template signs the build with this key (sign: in e2e.yaml) and
# publishes it (publish:) to a registry on 127.0.0.1.
"$VAB" keygen --type ecdsa-p256 -o "$AREA/release" || fail "vab keygen"
command -v docker-registry >/dev/null || fail "docker-registry is not installed"
start_plain_registry "$AREA" || fail "docker-registry did not start"
trap 'kill "$registry_pid" 2>/dev/null' EXIT
# A cache of its own, so the bootstrap really runs, with descriptors 3-9
# inherited as from a CI runner or `time -o`: before children got a clean
# descriptor table, mmdebstrap's apt hook then failed ("Bad fd number").
"$VAB" build "$SRCDIR/tests/builder/data/e2e.yaml" -o "$AREA/out" \
  --var "sign_key=$AREA/release.key" \
  --var "publish_ref=127.0.0.1:$port/e2e/app" \
  --cache-dir "$AREA/cache" --json >"$AREA/build.json" 2>"$AREA/stderr" \
  3</dev/null 4</dev/null 5</dev/null 6</dev/null 7</dev/null 8</dev/null \
  9</dev/null
status=$?
cat "$AREA/stderr"
check "vab build e2e.yaml exits 0" [ "$status" -eq 0 ]
[ "$status" -eq 0 ] || finish

img=$AREA/out/e2e-1.qcow2
log=$AREA/out/e2e-1.log
check "qemu-img check" qemu-img check -q "$img"
check "boot test fetched the firstboot page" grep -q "boot test passed" "$log"
check "the bootstrap ran (not cached)" grep -q "bootstrap: mmdebstrap" "$log"
# --json "steps": every planned step in order, with its key; nothing was
# cached in this cache of its own.  e2e.yaml: 9 provisioners, 1 boot test,
# 1 output.
check "--json steps: kinds, labels, keys, cached, seconds" python3 - \
  "$AREA/build.json" <<'PY'
import json, re, sys
doc = json.load(open(sys.argv[1]))
steps = doc["steps"]
kinds = [s["kind"] for s in steps]
want = ["source", "layout"] + ["provision"] * 9 + ["sysprep", "test", "export"]
assert kinds == want, kinds
assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", s["key"]) for s in steps)
assert len({s["key"] for s in steps}) == len(steps), "keys repeat"
assert all(s["cached"] is False for s in steps), "a step was cached"
assert all(isinstance(s["seconds"], float) and s["seconds"] >= 0 for s in steps)
assert steps[0]["seconds"] > 1, "the bootstrap took no time"
assert steps[-1]["seconds"] > 0, "the export took no time"
assert steps[2]["label"].startswith("provision 1/9: file (")
assert "e2e.yaml:" in steps[2]["label"], steps[2]["label"]
assert doc["source_cached"] is False and doc["ok"] is True
PY
check "the cache holds one bootstrap entry and entries of every step kind" \
  python3 - "$VAB" "$AREA/cache" <<'PY'
import json, subprocess, sys
out = subprocess.run([sys.argv[1], "cache", "list", "--json", "--cache-dir",
                      sys.argv[2]], check=True, capture_output=True, text=True)
kinds = [e["kind"] for e in json.loads(out.stdout)["entries"] if e["ok"]]
assert kinds.count("source") == 1, kinds
for kind in ("layout", "provision", "sysprep", "test", "export"):
    assert kind in kinds, (kind, kinds)
PY

# One guestfish run (each launch costs a VM boot); each answer follows its
# label on the lines after it.  guestfish prints st_mode in decimal.
answers=$(guestfish --ro -a "$img" -i <<'EOF_GF'
echo hostname=
cat /etc/hostname
echo localtime=
readlink /etc/localtime
echo timezone=
cat /etc/timezone
echo index=
cat /var/www/html/index.html
echo site=
cat /srv/site/index.html
echo site-css=
cat /srv/site/css/site.css
echo site-owner=
lstatns /srv/site/css/site.css | grep -E '^st_(uid|gid)'
echo greeting=
cat /srv/shell/greeting
echo sudo-bin=
exists /usr/bin/sudo
echo passwd=
grep "^admin:" /etc/passwd
echo shadow-admin=
grep "^admin:" /etc/shadow | cut -c1-9
echo shadow-root=
grep "^root:" /etc/shadow | cut -c1-6
echo groups=
grep "^sudo:" /etc/group
echo operator-user=
grep "^operator:" /etc/passwd
echo staff-user=
grep "^staff:" /etc/passwd
echo reserved-groups=
grep "^operator:" /etc/group
grep "^staff:" /etc/group
grep "^users:" /etc/group
echo operator-home=
is-dir /home/operator
echo keys=
cat /home/admin/.ssh/authorized_keys
echo keys-mode=
lstatns /home/admin/.ssh/authorized_keys | grep st_mode
echo sudoers=
cat /etc/sudoers.d/vab-admin
echo masked=
readlink /etc/systemd/system/apt-daily.timer
echo nginx-enabled=
exists /etc/systemd/system/multi-user.target.wants/nginx.service
echo firstboot-script=
exists /var/lib/vab/firstboot/001
echo firstboot-enabled=
exists /etc/systemd/system/multi-user.target.wants/vab-firstboot.service
echo machine-id-size=
filesize /etc/machine-id
echo apt-lists=
ls /var/lib/apt/lists
echo policy-rc=
exists /usr/sbin/policy-rc.d
echo tmp=
ls /tmp
echo network=
cat /etc/systemd/network/80-vab-dhcp.network
echo fstab=
cat /etc/fstab
echo grub=
grep "console=ttyS0,115200n8" /boot/grub/grub.cfg
echo efi=
exists /boot/efi/EFI/BOOT/BOOTX64.EFI
echo end=
EOF_GF
)
echo "$answers"
# value LABEL: the lines between "LABEL=" and the next label.
value() { awk -v l="$1=" '$0 == l {on=1; next} /^[a-z-]+=$/ {on=0} on' <<<"$answers"; }
expect() {  # expect LABEL EXPECTED
  local got
  got=$(value "$1")
  if [ "$got" = "$2" ]; then pass "$1"; else fail "$1: expected '$2', got '$got'"; fi
}
expect_match() {  # expect_match LABEL REGEX
  local got
  got=$(value "$1")
  if grep -Eq "$2" <<<"$got"; then pass "$1"; else fail "$1: '$got' does not match /$2/"; fi
}

expect hostname "e2e-host"
expect localtime "/usr/share/zoneinfo/Europe/Madrid"
expect timezone "Europe/Madrid"
expect index "<html><body>vab e2e page</body></html>"
expect site "<html><body>a folder copied by the file provisioner</body></html>"
expect site-css "body { font-family: sans-serif; }"
expect site-owner "$(printf 'st_uid: 33\nst_gid: 33')"
expect greeting "hello"
expect sudo-bin "true"
expect_match passwd "^admin:x:[0-9]+:[0-9]+::/home/admin:/bin/bash$"
expect shadow-admin "admin:\$6\$"
expect_match shadow-root '^root:!'
expect_match groups "^sudo:x:27:admin$"
expect_match operator-user "^operator:x:[0-9]{4,}:100::/home/operator:/bin/bash$"
expect_match staff-user "^staff:x:[0-9]{4,}:100::/home/staff:/bin/bash$"
expect reserved-groups "$(printf 'operator:x:37:\nstaff:x:50:\nusers:x:100:')"
expect operator-home "true"
expect keys "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJm5fG8d8m2H1vQe3cU0b7fX8y5rN7h1xY0u2wQk9Lq4 e2e@vab"
expect keys-mode "st_mode: 33152"  # 0100600: a regular file, 0600
expect sudoers "admin ALL=(ALL) NOPASSWD:ALL"
expect masked "/dev/null"
expect nginx-enabled "true"
expect firstboot-script "true"
expect firstboot-enabled "true"
expect machine-id-size "0"
expect apt-lists "partial"
expect policy-rc "false"
expect tmp ""
expect_match network "^Name=en\* eth\*$"
expect_match fstab "^UUID=[0-9a-f-]{36} / ext4 errors=remount-ro 0 1$"
expect_match fstab "^UUID=[0-9A-F]{4}-[0-9A-F]{4} /boot/efi vfat umask=0077 0 2$"
expect_match grub "linux.*root=UUID=[0-9a-f-]{36} .*console=ttyS0,115200n8"
expect efi "true"

manifest=$AREA/out/e2e-1.manifest.json
check "the build wrote its manifest" [ -f "$manifest" ]
check "the build signed its manifest" [ -f "$manifest.sig" ]
check "vab verify accepts the build" "$VAB" verify --pubkey "$AREA/release.pub" "$AREA/out"
check "openssl accepts the manifest signature" openssl dgst -sha256 \
  -verify "$AREA/release.pub" -signature "$manifest.sig" "$manifest"
check "the build published itself (publish:)" grep -q '"published":1' "$AREA/build.json"
check "vab pull gets the published build back, signature good" \
  "$VAB" pull "127.0.0.1:$port/e2e/app:latest" -o "$AREA/pulled" \
  --pubkey "$AREA/release.pub"
check "the pulled qcow2 is byte-identical" cmp "$img" "$AREA/pulled/e2e-1.qcow2"
check "the manifest lists the qcow2 with its sha256" \
  grep -q "\"sha256\": \"$(sha256sum "$img" | cut -d' ' -f1)\"" "$manifest"
check "the shell step's output is in the build log" grep -q "shell-output-hello" "$log"
check "the password is not in the build log" bash -c "! grep -q 'e2e-Secret-Passw0rd' '$log'"
check "no password hash in the build log" bash -c "! grep -q '\\\$6\\\$' '$log'"
check "no temporary file left" tmp_is_empty
check "no qemu left" no_qemu_left
finish
