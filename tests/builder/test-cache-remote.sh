#!/bin/bash
# The step cache shared through a registry (vab build --cache-from /
# --cache-to), on the store API through cache-remote-tool, against a
# docker-registry on 127.0.0.1:
#  - push an entry, pull it into an empty cache: a hit, the same bytes;
#  - push again: nothing uploaded;
#  - a missing tag, a tampered blob, a garbage meta, a meta whose sha256
#    is not its layer's, a meta naming another key, a dead registry: a
#    miss (a warning for all but the missing tag), and nothing in the
#    cache but the real entries, no .tmp- folder;
#  - htpasswd auth over TLS: works, a wrong password is a warning and a
#    miss, and the password is in no output;
#  - vab build refuses a --cache-from with a tag before any work.
set -u
. "$SRCDIR/tests/publish/lib.sh"
tool=$CACHE_TOOL

key_a=$(printf a | sha256sum | cut -d' ' -f1)
key_b=$(printf b | sha256sum | cut -d' ' -f1)
mkdir -p "$work/files"
head -c 300000 /dev/urandom >"$work/files/rootfs.tar"
printf 'small file\n' >"$work/files/small.txt"

start_plain_registry "$work" || { echo "registry did not start"; exit 1; }
repo="127.0.0.1:$port/ci/cache"
blobs="$work/registry/docker/registry/v2/blobs/sha256"
blob_data() { echo "$blobs/${1:0:2}/$1/data"; }

check "put an entry" "$tool" put "$work/c1" "$key_a" \
  "$work/files/rootfs.tar" "$work/files/small.txt"
check "push it" "$tool" push "$work/c1" "$repo" "$key_a"
grep -qx "pushed 1 present 0 uploaded 3 skipped 0" "$work/$n.log" ||
  fail "first push: $(cat "$work/$n.log")"
check "push it again" "$tool" push "$work/c1" "$repo" "$key_a"
grep -qx "pushed 0 present 1 uploaded 0 skipped 2" "$work/$n.log" ||
  fail "second push uploaded something: $(cat "$work/$n.log")"
check "push a key the store lacks" "$tool" push "$work/c1" "$repo" "$key_b"
grep -qx "pushed 0 present 0 uploaded 0 skipped 0" "$work/$n.log" ||
  fail "pushing an absent key: $(cat "$work/$n.log")"

# only_entries CACHE KEY...: steps/ holds these entries (and locks), no
# other entry and no .tmp- folder.
only_entries() {
  local cache=$1; shift
  local want got
  want=$(printf '%s\n' "$@" | sort)
  got=$(cd "$cache/steps" && ls -A | grep -v '\.lock$' | sort)
  [ "$got" = "$want" ] || fail "$cache/steps holds '$got', wanted '$want'"
}
get_expect() {  # NAME hit|miss CACHE REPO KEY
  local name=$1 want=$2 cache=$3 r=$4 key=$5
  mkdir -p "$work/dest-$n"
  check "$name" "$tool" get "$cache" "$r" "$key" "$work/dest-$n" || return
  grep -qx "$want" "$work/$n.log" || fail "$name: not a $want: $(cat "$work/$n.log")"
}

get_expect "pull into an empty cache" hit "$work/c2" "$repo" "$key_a"
cmp -s "$work/dest-$((n - 1))/rootfs.tar" "$work/files/rootfs.tar" ||
  fail "the pulled rootfs.tar differs"
cmp -s "$work/dest-$((n - 1))/small.txt" "$work/files/small.txt" ||
  fail "the pulled small.txt differs"
grep -q "got entry $key_a" "$work/$n.log" || fail "no word of the remote hit"
only_entries "$work/c2" "$key_a"
grep -q '^warning' "$work/$n.log" && fail "a warning on a good pull: $(cat "$work/$n.log")"
# Hashed once: the download checks each layer's digest on the way in, and
# the store neither hashes the files again to record them nor to hand
# them out.  A later local hit verifies them (both files, once).
grep -qx "hashed 0" "$work/$n.log" ||
  fail "the store hashed a pulled entry again: $(grep hashed "$work/$n.log")"
entry_bytes=$(cat "$work/files/rootfs.tar" "$work/files/small.txt" | wc -c)
get_expect "the pulled entry, a local hit" hit "$work/c2" "$repo" "$key_a"
grep -qx "hashed $entry_bytes" "$work/$n.log" ||
  fail "a local hit did not verify the entry once: $(grep hashed "$work/$n.log")"

get_expect "a missing tag" miss "$work/c3" "$repo" "$key_b"
grep -q "has no entry $key_b" "$work/$n.log" || fail "no word of the missing entry"
only_entries "$work/c3"

# A blob changed in the registry's storage (same size, other bytes).
small_sha=$(sha256sum "$work/files/small.txt" | cut -d' ' -f1)
cp "$(blob_data "$small_sha")" "$work/small.saved"
printf 'SMALL FILE\n' >"$(blob_data "$small_sha")"
get_expect "a tampered blob" miss "$work/c4" "$repo" "$key_a"
grep -q "^warning: registry cache $repo: entry $key_a .* not used: .*digest" \
  "$work/$n.log" || fail "no warning for the tampered blob: $(cat "$work/$n.log")"
only_entries "$work/c4"
cp "$work/small.saved" "$(blob_data "$small_sha")"

# Manifests written by hand: upload_blob FILE (prints its digest hex),
# put_manifest TAG JSON.
upload_blob() {
  local hex loc
  hex=$(sha256sum "$1" | cut -d' ' -f1)
  loc=$(curl -sf -D - -o /dev/null -X POST \
    "http://127.0.0.1:$port/v2/ci/cache/blobs/uploads/" |
    tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  case $loc in http*) ;; *) loc="http://127.0.0.1:$port$loc" ;; esac
  case $loc in *\?*) loc="$loc&" ;; *) loc="$loc?" ;; esac
  curl -sf -X PUT -H 'Content-Type: application/octet-stream' \
    --data-binary "@$1" "${loc}digest=sha256:$hex" -o /dev/null || return 1
  echo "$hex"
}
put_manifest() {
  curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "$2" "http://127.0.0.1:$port/v2/ci/cache/manifests/$1" -o /dev/null
}
rootfs_sha=$(sha256sum "$work/files/rootfs.tar" | cut -d' ' -f1)
entry_manifest() {  # RECORD-FILE: a manifest of the two files with it as config
  local rec
  rec=$(upload_blob "$1") || return 1
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.vab.cache.step.v1","config":{"mediaType":"application/vnd.vab.cache.step.meta.v1","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.vab.cache.step.file.v1","digest":"sha256:%s","size":300000,"annotations":{"org.opencontainers.image.title":"rootfs.tar"}},{"mediaType":"application/vnd.vab.cache.step.file.v1","digest":"sha256:%s","size":11,"annotations":{"org.opencontainers.image.title":"small.txt"}}]}' \
    "$rec" "$(stat -c %s "$1")" "$rootfs_sha" "$small_sha"
}
meta_of() {  # KEY SMALL-SHA
  printf 'vab-cache 1\nkey %s\nkind source\nlabel test entry\ncreated 1\nfile 300000 %s rootfs.tar\nfile 11 %s small.txt\n' \
    "$1" "$rootfs_sha" "$2"
}
n=$((n + 1))
meta_of "$key_b" "$small_sha" >"$work/meta-good"
json=$(entry_manifest "$work/meta-good") && put_manifest "step-$key_b" "$json" ||
  fail "cannot write a hand-made entry"
get_expect "a hand-made sound entry" hit "$work/c5" "$repo" "$key_b"
only_entries "$work/c5" "$key_b"

n=$((n + 1))
printf 'not a meta\n' >"$work/meta-garbage"
json=$(entry_manifest "$work/meta-garbage") && put_manifest "step-$key_b" "$json" ||
  fail "cannot write the garbage entry"
get_expect "a garbage meta" miss "$work/c6" "$repo" "$key_b"
grep -q "not used: its meta is corrupt" "$work/$n.log" ||
  fail "no warning for the garbage meta: $(cat "$work/$n.log")"
only_entries "$work/c6"

n=$((n + 1))
meta_of "$key_b" "$rootfs_sha" >"$work/meta-lying"
json=$(entry_manifest "$work/meta-lying") && put_manifest "step-$key_b" "$json" ||
  fail "cannot write the lying entry"
get_expect "a meta whose sha256 is not its layer's" miss "$work/c7" "$repo" "$key_b"
grep -q "not used: the layer small.txt is sha256:$small_sha" "$work/$n.log" ||
  fail "no warning for the lying meta: $(cat "$work/$n.log")"
only_entries "$work/c7"

# The entry of key a, tagged as key b.
n=$((n + 1))
json=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://127.0.0.1:$port/v2/ci/cache/manifests/step-$key_a") &&
  put_manifest "step-$key_b" "$json" || fail "cannot retag the entry"
get_expect "a meta naming another key" miss "$work/c8" "$repo" "$key_b"
grep -q "not used: its meta names another key, $key_a" "$work/$n.log" ||
  fail "no warning for the other key: $(cat "$work/$n.log")"
only_entries "$work/c8"

# The source step (builder/source.c) with the registry behind its store: a
# second machine's empty cache gets the bootstrap from the registry, and
# mmdebstrap (a fake that counts its runs) does not run again.
mkdir -p "$work/bin" "$work/w1" "$work/w2"
cat >"$work/bin/mmdebstrap" <<'SH'
#!/bin/sh
echo run >>"$FAKE_COUNT"
eval "target=\${$(($# - 1))}"
mkdir -p "$TMPDIR/root/etc"
echo ID=debian >"$TMPDIR/root/etc/os-release"
tar -cf "$target" -C "$TMPDIR/root" .
SH
chmod +x "$work/bin/mmdebstrap"
export FAKE_COUNT="$work/mmdebstrap-runs"
printf 'vab: 1\nname: t\nversion: "1"\nsource:\n  bootstrap: {suite: bookworm}\ndisk: {size: 2G, firmware: bios}\noutputs:\n  - {format: raw}\n' \
  >"$work/t.yaml"
check "bootstrap on machine 1" env PATH="$work/bin:$PATH" TMPDIR="$work" \
  "$tool" source "$work/c20" - "$work/t.yaml" "$work/w1"
boot_key=$(sed -n 's/^made //p' "$work/$n.log")
[ -n "$boot_key" ] || fail "the bootstrap was not made: $(cat "$work/$n.log")"
check "push the bootstrap" "$tool" push "$work/c20" "$repo" "$boot_key"
grep -qx "pushed 1 present 0 uploaded 2 skipped 0" "$work/$n.log" ||
  fail "push of the bootstrap: $(cat "$work/$n.log")"
check "the source step on machine 2" env PATH="$work/bin:$PATH" TMPDIR="$work" \
  "$tool" source "$work/c21" "$repo" "$work/t.yaml" "$work/w2"
grep -qx "cached $boot_key" "$work/$n.log" ||
  fail "machine 2 did not reuse the bootstrap: $(cat "$work/$n.log")"
[ "$(wc -l <"$FAKE_COUNT")" = 1 ] || fail "mmdebstrap ran $(wc -l <"$FAKE_COUNT") times"
tar -xOf "$work/w2/rootfs.tar" ./etc/os-release | grep -qx ID=debian ||
  fail "machine 2's rootfs.tar is not the bootstrap"
only_entries "$work/c21" "$boot_key"

# A dead registry: a warning and a miss, and the local entries still work.
dead="127.0.0.1:$(free_port)/ci/cache"
get_expect "a dead registry" miss "$work/c9" "$dead" "$key_a"
grep -q "^warning: registry cache $dead cannot be used: .*going on without it" \
  "$work/$n.log" || fail "no warning for the dead registry: $(cat "$work/$n.log")"
only_entries "$work/c9"
get_expect "a local hit needs no registry" hit "$work/c2" "$dead" "$key_a"
expect_fail "push to a dead registry" "registry cache $dead: cannot push entry $key_a" \
  "$tool" push "$work/c1" "$dead" "$key_a"

# vab build checks the reference before any work.
expect_fail "vab build --cache-from with a tag" "give a repository, HOST/REPO, with no tag" \
  "$VAB" build "$work/t.yaml" -o "$work/out" --cache-dir "$work/cb" \
  --cache-from "$repo:latest"
stop_registry

# Basic auth over TLS, credentials from the environment.
pw='Sup3r-S3cret:pw/x'
setup_registry vab "$pw"
start_registry
repo="$host/ci/cache"
export CACHE_CA_CERT="$work/tls/ca.crt"
check "push with credentials" env VAB_REGISTRY_USER=vab VAB_REGISTRY_PASSWORD="$pw" \
  "$tool" push "$work/c1" "$repo" "$key_a"
grep -qx "pushed 1 present 0 uploaded 3 skipped 0" "$work/$n.log" ||
  fail "push with credentials: $(cat "$work/$n.log")"
mkdir -p "$work/dest-auth"
check "pull with credentials" env VAB_REGISTRY_USER=vab VAB_REGISTRY_PASSWORD="$pw" \
  "$tool" get "$work/c10" "$repo" "$key_a" "$work/dest-auth"
grep -qx hit "$work/$n.log" || fail "pull with credentials: $(cat "$work/$n.log")"
check "a wrong password" env VAB_REGISTRY_USER=vab VAB_REGISTRY_PASSWORD="x$pw" \
  "$tool" get "$work/c11" "$repo" "$key_a" "$work/dest-auth2"
grep -qx miss "$work/$n.log" || fail "a wrong password was not a miss: $(cat "$work/$n.log")"
grep -q "^warning: registry cache $repo cannot be used" "$work/$n.log" ||
  fail "no warning for the wrong password: $(cat "$work/$n.log")"
only_entries "$work/c11"
for f in "$work"/*.log; do
  grep -qF -- "Sup3r-S3cret" "$f" && fail "the password is in $f"
done
finish
