#!/bin/bash
# vab publish and vab pull against a real docker-registry (TLS from a CA
# made here, htpasswd Basic auth), checked with skopeo, podman, curl and
# openssl.
set -u
. "$SRCDIR/tests/publish/lib.sh"
command -v skopeo >/dev/null || { echo "SKIP: no skopeo"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: no jq"; exit 77; }

setup_registry vab 's3cret:with colon'
start_registry
ca="$work/tls/ca.crt"
creds='vab:s3cret:with colon'
certs="$work/certs.d"
mkdir -p "$certs" && cp "$ca" "$certs/ca.crt"
sk() { skopeo "$@"; }

# A signed build: a real qcow2, a small raw file and the manifest.
build="$work/build"
mkdir -p "$build"
if command -v qemu-img >/dev/null; then
  qemu-img create -q -f qcow2 "$build/app-1.0.qcow2" 64M
  qemu-io -c 'write -P 0x5a 1M 300k' "$build/app-1.0.qcow2" >/dev/null 2>&1 || true
else
  head -c 300000 /dev/urandom >"$build/app-1.0.qcow2"
fi
head -c 70000 /dev/urandom >"$build/app-1.0.raw"
"$MAKE_MANIFEST" "$build/app-1.0.manifest.json" "$build/app-1.0.qcow2" \
  "$build/app-1.0.raw" || { echo "make-manifest failed"; exit 1; }
"$VAB" keygen --type ecdsa-p256 -o "$work/k" >/dev/null 2>&1 || exit 1
"$VAB" sign --key "$work/k.key" "$build" >/dev/null 2>&1 || exit 1
sha() { sha256sum "$1" | cut -d' ' -f1; }

# --- publish ---------------------------------------------------------------
export SOURCE_DATE_EPOCH=1700000000
check "publish" "$VAB" publish "$build" "$host/team/app" --tag stable \
  --creds "$creds" --ca-cert "$ca" --key "$work/k.key" --containerdisk --json
cp "$work/$n.log" "$work/publish1.json"
pub=$(grep '^{' "$work/publish1.json")
digest=$(jq -r .digest <<<"$pub")
cd_digest=$(jq -r .containerdisk_digest <<<"$pub")
[ "$(jq -r .published <<<"$pub")" = true ] || fail "published is not true: $pub"
[ "$(jq -r .blobs_uploaded <<<"$pub")" -ge 5 ] || fail "too few blobs uploaded: $pub"
[ "$(jq -r .signature_tag <<<"$pub")" = "sha256-${digest#sha256:}.sig" ] ||
  fail "signature tag: $pub"

# --- what skopeo sees ------------------------------------------------------
raw="$work/raw.json"
sk inspect --raw --cert-dir "$certs" --creds "$creds" "docker://$host/team/app:1.0" >"$raw" ||
  fail "skopeo inspect --raw"
[ "sha256:$(sha "$raw")" = "$digest" ] || fail "manifest digest differs from vab's $digest"
sk inspect --raw --cert-dir "$certs" --creds "$creds" "docker://$host/team/app:stable" |
  cmp -s - "$raw" || fail "tag stable holds another manifest"
want_layers="application/vnd.vab.disk.qcow2 app-1.0.qcow2 sha256:$(sha "$build/app-1.0.qcow2")
application/vnd.vab.disk.raw app-1.0.raw sha256:$(sha "$build/app-1.0.raw")
application/vnd.vab.manifest.v1+json app-1.0.manifest.json sha256:$(sha "$build/app-1.0.manifest.json")
application/vnd.vab.manifest.signature.v1 app-1.0.manifest.json.sig sha256:$(sha "$build/app-1.0.manifest.json.sig")"
got_layers=$(jq -r '.layers[] | "\(.mediaType) \(.annotations["org.opencontainers.image.title"]) \(.digest)"' "$raw")
[ "$got_layers" = "$want_layers" ] || fail "layers are:
$got_layers
wanted:
$want_layers"
[ "$(jq -r .artifactType "$raw")" = application/vnd.vab.appliance.v1 ] || fail "artifactType"
[ "$(jq -r '.config | "\(.mediaType) \(.digest) \(.size)"' "$raw")" = \
  "application/vnd.oci.empty.v1+json sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a 2" ] ||
  fail "config is not the empty descriptor"
[ "$(jq -r '.annotations["org.opencontainers.image.created"]' "$raw")" = 2023-11-14T22:13:20Z ] ||
  fail "created is not from SOURCE_DATE_EPOCH"
[ "$(jq -r '.annotations["org.opencontainers.image.version"]' "$raw")" = 1.0 ] || fail "version annotation"
[ "$(jq -r '.annotations["io.vab.template.digest"]' "$raw")" = \
  "sha256:0000000000000000000000000000000000000000000000000000000000000000" ] ||
  fail "template digest annotation"

# skopeo copy to an OCI layout keeps the manifest and every blob.
check "skopeo copy" sk copy --preserve-digests --src-cert-dir "$certs" \
  --src-creds "$creds" "docker://$host/team/app:1.0" "oci:$work/layout:app"
[ "$(jq -r '.manifests[0].digest' "$work/layout/index.json")" = "$digest" ] ||
  fail "OCI layout holds another manifest digest"
for f in app-1.0.qcow2 app-1.0.raw app-1.0.manifest.json app-1.0.manifest.json.sig; do
  cmp -s "$work/layout/blobs/sha256/$(sha "$build/$f")" "$build/$f" ||
    fail "OCI layout blob of $f differs"
done

# --- pull back ------------------------------------------------------------
check "pull with key" "$VAB" pull "$host/team/app:1.0" -o "$work/pulled" \
  --creds "$creds" --ca-cert "$ca" --pubkey "$work/k.pub"
for f in app-1.0.qcow2 app-1.0.raw app-1.0.manifest.json app-1.0.manifest.json.sig; do
  cmp -s "$work/pulled/$f" "$build/$f" || fail "pulled $f differs"
done
[ "$(ls -A "$work/pulled" | wc -l)" = 4 ] || fail "pulled folder: $(ls -A "$work/pulled")"
check "vab verify accepts the pulled build" "$VAB" verify --pubkey "$work/k.pub" "$work/pulled"
check "pull with a certificate" "$VAB" pull "$host/team/app:stable" -o "$work/withcert" \
  --creds "$creds" --ca-cert "$ca" --cert "$work/k.crt" --json
grep -q '"verified":true' "$work/$n.log" || fail "pull --cert did not verify: $(cat "$work/$n.log")"
check "pull by digest" "$VAB" pull "$host/team/app@$digest" -o "$work/bydigest" \
  --creds "$creds" --ca-cert "$ca" --json
grep -q '"verified":false' "$work/$n.log" || fail "pull without key says verified"
cmp -s "$work/bydigest/app-1.0.raw" "$build/app-1.0.raw" || fail "pull by digest"

# A wrong key: nothing gets a final name.
"$VAB" keygen --type ecdsa-p256 -o "$work/other" >/dev/null 2>&1
expect_fail "pull with another key" "bad signature" \
  "$VAB" pull "$host/team/app:1.0" -o "$work/wrongkey" --creds "$creds" \
  --ca-cert "$ca" --pubkey "$work/other.pub"
[ -z "$(ls -A "$work/wrongkey" 2>/dev/null)" ] || fail "files written after a bad signature"

# Resume: a partial download is continued with Range, not started over.
mkdir -p "$work/resume"
head -c 100000 "$build/app-1.0.qcow2" >"$work/resume/.app-1.0.qcow2.part"
check "pull resumes a partial file" "$VAB" pull "$host/team/app:1.0" \
  -o "$work/resume" --creds "$creds" --ca-cert "$ca" --json
total=$(($(stat -c %s "$build/app-1.0.qcow2") + 70000 + $(stat -c %s "$build/app-1.0.manifest.json") + $(stat -c %s "$build/app-1.0.manifest.json.sig")))
grep -q "\"bytes_downloaded\":$((total - 100000))," "$work/$n.log" ||
  fail "resumed pull did not skip the 100000 bytes it had: $(grep '^{' "$work/$n.log")"
cmp -s "$work/resume/app-1.0.qcow2" "$build/app-1.0.qcow2" || fail "resumed file differs"
# A partial file with wrong bytes fails the digest check and is removed.
mkdir -p "$work/badpart"
head -c 100000 /dev/zero >"$work/badpart/.app-1.0.qcow2.part"
expect_fail "pull resuming garbage" "the downloaded bytes have digest" \
  "$VAB" pull "$host/team/app:1.0" -o "$work/badpart" --creds "$creds" --ca-cert "$ca"
[ ! -e "$work/badpart/.app-1.0.qcow2.part" ] || fail "bad partial file left behind"
[ ! -e "$work/badpart/app-1.0.qcow2" ] || fail "bad file got its final name"

# --- auth -----------------------------------------------------------------
expect_fail "wrong password" "registry $host refused the credentials for user 'vab' (from --creds): HTTP 401 unauthorized" \
  "$VAB" publish "$build" "$host/team/app" --creds vab:wrong --ca-cert "$ca"
expect_fail "no credentials" "registry $host wants a user name and password" \
  env HOME="$work/emptyhome" XDG_RUNTIME_DIR= "$VAB" publish "$build" "$host/team/app" --ca-cert "$ca"
expect_fail "unknown CA" "TLS certificate of $host is not trusted" \
  "$VAB" publish "$build" "$host/team/app" --creds "$creds"
grep -q "s3cret" "$work/$n.log" && fail "a password was printed"
check "credentials from the environment" env VAB_REGISTRY_USER=vab \
  VAB_REGISTRY_PASSWORD='s3cret:with colon' "$VAB" pull "$host/team/app:1.0" \
  -o "$work/envcreds" --ca-cert "$ca"
auth=$(printf '%s' "$creds" | base64 -w0)
printf '{"auths":{"https://%s":{"auth":"%s"}}}\n' "$host" "$auth" >"$work/auth.json"
check "credentials from --authfile" "$VAB" pull "$host/team/app:1.0" \
  -o "$work/authfile" --ca-cert "$ca" --authfile "$work/auth.json"
mkdir -p "$work/run/containers"
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$host" "$auth" >"$work/run/containers/auth.json"
check "credentials from XDG_RUNTIME_DIR/containers/auth.json" env \
  XDG_RUNTIME_DIR="$work/run" HOME="$work/emptyhome" "$VAB" pull \
  "$host/team/app:1.0" -o "$work/xdg" --ca-cert "$ca"
mkdir -p "$work/home/.docker"
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$host" "$auth" >"$work/home/.docker/config.json"
check "credentials from ~/.docker/config.json" env XDG_RUNTIME_DIR= \
  HOME="$work/home" "$VAB" pull "$host/team/app:1.0" -o "$work/docker" --ca-cert "$ca"

# --- republishing uploads no blob ------------------------------------------
uploads_before=$(grep -c 'http.request.method=POST.*blobs/uploads' "$work/registry.log")
check "second publish" "$VAB" publish "$build" "$host/team/app" --tag stable \
  --creds "$creds" --ca-cert "$ca" --key "$work/k.key" --containerdisk --json
pub2=$(grep '^{' "$work/$n.log")
[ "$(jq -r '"\(.blobs_uploaded) \(.bytes_uploaded) \(.digest)"' <<<"$pub2")" = "0 0 $digest" ] ||
  fail "second publish uploaded something: $pub2"
[ "$(grep -c 'http.request.method=POST.*blobs/uploads' "$work/registry.log")" = "$uploads_before" ] ||
  fail "the registry saw new upload sessions on the second publish"

# --- cosign-style signature, checked with openssl ---------------------------
sigm="$work/sig.json"
sk inspect --raw --cert-dir "$certs" --creds "$creds" \
  "docker://$host/team/app:sha256-${digest#sha256:}.sig" >"$sigm" || fail "no signature manifest"
[ "$(jq -r '.layers[0].mediaType' "$sigm")" = application/vnd.dev.cosign.simplesigning.v1+json ] ||
  fail "signature layer media type"
jq -r '.layers[0].annotations["dev.cosignproject.cosign/signature"]' "$sigm" |
  base64 -d >"$work/sig.der"
curl -sf --cacert "$ca" -u "$creds" -o "$work/payload.json" \
  "https://$host/v2/team/app/blobs/$(jq -r '.layers[0].digest' "$sigm")" || fail "payload download"
[ "$(jq -r '.critical.image["docker-manifest-digest"]' "$work/payload.json")" = "$digest" ] ||
  fail "payload names another digest"
[ "$(jq -r '.critical.type' "$work/payload.json")" = "cosign container image signature" ] ||
  fail "payload type"
openssl dgst -sha256 -verify "$work/k.pub" -signature "$work/sig.der" \
  "$work/payload.json" >/dev/null || fail "openssl rejects the cosign signature"

# --- containerDisk ----------------------------------------------------------
check "skopeo copy containerDisk" sk copy --preserve-digests --src-cert-dir "$certs" \
  --src-creds "$creds" "docker://$host/team/app:1.0-containerdisk" "oci:$work/cd:x"
cdm=$(jq -r '.manifests[0].digest' "$work/cd/index.json")
[ "$cdm" = "$cd_digest" ] || fail "containerDisk digest $cdm, vab said $cd_digest"
layer=$(jq -r '.layers[0].digest' "$work/cd/blobs/sha256/${cdm#sha256:}")
listing=$(tar tvf "$work/cd/blobs/sha256/${layer#sha256:}" --numeric-owner |
  awk '{print $1, $2, $6}')
want="dr-xr-xr-x 107/107 disk/
-r--r--r-- 107/107 disk/app-1.0.qcow2"
[ "$listing" = "$want" ] || fail "containerDisk tar is:
$listing"
tar xOf "$work/cd/blobs/sha256/${layer#sha256:}" disk/app-1.0.qcow2 |
  cmp -s - "$build/app-1.0.qcow2" || fail "containerDisk qcow2 differs"
cfg=$(jq -r '.config.digest' "$work/cd/blobs/sha256/${cdm#sha256:}")
[ "$(jq -r '"\(.architecture) \(.os) \(.rootfs.diff_ids[0])"' "$work/cd/blobs/sha256/${cfg#sha256:}")" = \
  "amd64 linux $layer" ] || fail "containerDisk config"
expect_fail "vab pull refuses a containerDisk" "is not a vab appliance artifact" \
  "$VAB" pull "$host/team/app:1.0-containerdisk" -o "$work/cdpull" --creds "$creds" --ca-cert "$ca"
if command -v podman >/dev/null; then
  pod=(podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver vfs)
  if "${pod[@]}" pull -q --cert-dir "$certs" --creds "$creds" \
       "$host/team/app:1.0-containerdisk" >"$work/podman.log" 2>&1; then
    n=$((n + 1))
    mnt=$("${pod[@]}" image mount "$host/team/app:1.0-containerdisk")
    [ "$(stat -c '%u:%g %a' "$mnt/disk/app-1.0.qcow2")" = "107:107 444" ] ||
      fail "podman: $(stat -c '%u:%g %a' "$mnt/disk/app-1.0.qcow2")"
    cmp -s "$mnt/disk/app-1.0.qcow2" "$build/app-1.0.qcow2" || fail "podman: qcow2 differs"
    "${pod[@]}" image unmount "$host/team/app:1.0-containerdisk" >/dev/null
    "${pod[@]}" rmi -f "$host/team/app:1.0-containerdisk" >/dev/null 2>&1
  else
    echo "note: podman cannot pull here, skipped:"; cat "$work/podman.log"
  fi
fi

# --- hostile titles ----------------------------------------------------------
raw_digest="sha256:$(sha "$build/app-1.0.raw")"
for title in ../x /x a/b .. .hidden; do
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.vab.appliance.v1","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.vab.disk.raw","digest":"%s","size":70000,"annotations":{"org.opencontainers.image.title":"%s"}}]}' \
    "$raw_digest" "$title" >"$work/evil.json"
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$ca" -u "$creds" -X PUT \
    -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary @"$work/evil.json" "https://$host/v2/team/app/manifests/evil")
  [ "$code" = 201 ] || fail "crafting a manifest: HTTP $code"
  mkdir -p "$work/evil/out"
  expect_fail "pull refuses title '$title'" "has the title '$title', which is not a plain file name" \
    "$VAB" pull "$host/team/app:evil" -o "$work/evil/out" --creds "$creds" --ca-cert "$ca"
  [ -z "$(ls -A "$work/evil/out")" ] || fail "title '$title': files written: $(ls -A "$work/evil/out")"
  [ ! -e "$work/evil/x" ] && [ ! -e /x ] || fail "title '$title' escaped the folder"
done

# --- usage errors -------------------------------------------------------------
n=$((n + 1))
"$VAB" publish "$build" app:1.0 >"$work/$n.log" 2>&1
[ $? = 2 ] && grep -q "has no registry host" "$work/$n.log" || fail "bad reference: $(cat "$work/$n.log")"
n=$((n + 1))
"$VAB" pull "$host/team/app:1.0" >"$work/$n.log" 2>&1
[ $? = 2 ] && grep -q "missing -o DIR" "$work/$n.log" || fail "pull without -o: $(cat "$work/$n.log")"

finish
