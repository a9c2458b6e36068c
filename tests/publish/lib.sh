# Shared by the publish tests: a docker-registry on 127.0.0.1 with TLS from
# a CA made here and htpasswd Basic auth, always stopped on exit.
# Needs $VAB and $MAKE_MANIFEST; skips (77) without docker-registry,
# htpasswd or openssl.
for tool in docker-registry htpasswd openssl curl; do
  command -v "$tool" >/dev/null || { echo "SKIP: no $tool"; exit 77; }
done
work=$(mktemp -d /var/tmp/vab-publish-test.XXXXXX)
# The test servers import quiet_http.py: no __pycache__ in the source tree.
export PYTHONDONTWRITEBYTECODE=1
# free_port, serve_registry
. "$SRCDIR/tests/lib/registry.sh"
registry_pid=
token_pid=
fake_pid=
# stop_process VAR [SIGNAL]: end the process whose pid VAR holds, if any,
# wait for it and empty VAR.
stop_process() {
  local var=$1 sig=${2:-TERM}
  local pid=${!var}
  if [ -n "$pid" ]; then
    kill "-$sig" "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    printf -v "$var" '%s' ''
  fi
}
stop_registry() { stop_process registry_pid KILL; }
stop_token_server() { stop_process token_pid; }
stop_fake_registry() { stop_process fake_pid; }
trap 'stop_registry; stop_token_server; stop_fake_registry; rm -rf "$work"' EXIT
failures=0
n=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
finish() {
  if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
  fi
  echo "all $n checks passed"
  exit 0
}
check() {  # NAME CMD...: the command must succeed
  local name=$1; shift
  n=$((n + 1))
  if ! "$@" >"$work/$n.log" 2>&1; then
    fail "$name: exit $?"; cat "$work/$n.log"
    return 1
  fi
}
expect_exit() {  # STATUS NAME MESSAGE CMD...: that exit and MESSAGE in the output
  local want=$1 name=$2 msg=$3; shift 3
  n=$((n + 1))
  "$@" >"$work/$n.log" 2>&1
  local got=$?
  [ "$got" = "$want" ] || fail "$name: exit $got, wanted $want"
  grep -qF -- "$msg" "$work/$n.log" || { fail "$name: no '$msg' in:"; cat "$work/$n.log"; }
}
expect_fail() { expect_exit 1 "$@"; }  # NAME MESSAGE CMD...

# A CA, and a server certificate for 127.0.0.1 signed by it.
make_tls() {
  mkdir -p "$work/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$work/tls/ca.key" -out "$work/tls/ca.crt" -days 2 \
    -subj "/CN=vab test CA" 2>/dev/null || return 1
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$work/tls/server.key" -out "$work/tls/server.csr" \
    -subj "/CN=127.0.0.1" 2>/dev/null || return 1
  printf 'subjectAltName=IP:127.0.0.1\n' >"$work/tls/ext"
  openssl x509 -req -in "$work/tls/server.csr" -CA "$work/tls/ca.crt" \
    -CAkey "$work/tls/ca.key" -CAcreateserial -days 2 \
    -extfile "$work/tls/ext" -out "$work/tls/server.crt" 2>/dev/null
}

# write the config once; start_registry may run again after a kill.
setup_registry() {  # USER PASSWORD
  make_tls || { echo "cannot make TLS files"; exit 1; }
  htpasswd -Bbn "$1" "$2" >"$work/htpasswd"
  port=$(free_port)
  host="127.0.0.1:$port"
  cat >"$work/registry.yml" <<YAML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $work/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: vab-test-secret-that-survives-restarts
  tls:
    certificate: $work/tls/server.crt
    key: $work/tls/server.key
auth:
  htpasswd:
    realm: vab-test
    path: $work/htpasswd
YAML
}

# The same registry with Bearer token auth: a token server (token-server.py)
# on another port issues ES256 tokens to USER:PASSWORD.
setup_token_registry() {  # USER PASSWORD
  make_tls || { echo "cannot make TLS files"; exit 1; }
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$work/tls/token.key" -out "$work/tls/token.crt" -days 2 \
    -subj "/CN=vab test token signer" 2>/dev/null || exit 1
  port=$(free_port)
  host="127.0.0.1:$port"
  token_port=$(free_port)
  cat >"$work/registry.yml" <<YAML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: 127.0.0.1:$port
  secret: vab-test-secret-that-survives-restarts
  tls:
    certificate: $work/tls/server.crt
    key: $work/tls/server.key
auth:
  token:
    realm: https://127.0.0.1:$token_port/token
    service: vab-test-registry
    issuer: vab-test-issuer
    rootcertbundle: $work/tls/token.crt
YAML
  python3 "$SRCDIR/tests/publish/token-server.py" "$token_port" \
    "$work/tls/server.crt" "$work/tls/server.key" "$work/tls/token.key" \
    "$work/tls/token.crt" "$1" "$2" "$work/token.log" \
    >"$work/token-server.out" 2>&1 &
  token_pid=$!
  local i
  for i in $(seq 1 100); do
    curl -s -o /dev/null --cacert "$work/tls/ca.crt" \
      "https://127.0.0.1:$token_port/" && return 0
    sleep 0.1
  done
  echo "token server did not start:"; cat "$work/token-server.out"
  exit 1
}

start_registry() {
  serve_registry "$work/registry.yml" "$work/registry.log" \
    "https://$host/v2/" --cacert "$work/tls/ca.crt" && return 0
  echo "registry did not start:"; tail -20 "$work/registry.log"
  exit 1
}

# A vab artifact for fake-registry.py in DIR: one layer app-1.0.raw of
# SIZE random bytes, declared as DECLARED bytes (default SIZE).
make_fake_artifact() {  # DIR SIZE [DECLARED]
  local dir=$1 size=$2 declared=${3:-$2}
  mkdir -p "$dir"
  head -c "$size" /dev/urandom >"$dir/app-1.0.raw"
  fake_digest=$(sha256sum "$dir/app-1.0.raw" | cut -d' ' -f1)
  cp "$dir/app-1.0.raw" "$dir/$fake_digest"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.vab.appliance.v1","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.vab.disk.raw","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.title":"app-1.0.raw"}}]}' \
    "$fake_digest" "$declared" >"$dir/manifest.json"
}

# fake-registry.py MODE serving DIR on $fake_port (and $fake_other_port),
# logging requests to $work/fake.log; it exits by itself after 90 s.
start_fake_registry() {  # MODE DIR
  stop_fake_registry
  command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }
  fake_port=$(free_port)
  fake_other_port=$(free_port)
  : >"$work/fake.log"
  python3 "$SRCDIR/tests/publish/fake-registry.py" "$1" "$fake_port" \
    "$fake_other_port" "$2" "$work/fake.log" >"$work/fake.out" 2>&1 &
  fake_pid=$!
  local i
  for i in $(seq 1 100); do
    if [ "$1" = mute ]; then
      # Nothing to ask: wait until the port accepts connections.
      python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
        "$fake_port" 2>/dev/null && { : >"$work/fake.log"; return 0; }
    else
      curl -s -o /dev/null "http://127.0.0.1:$fake_port/token" && {
        : >"$work/fake.log"; return 0; }
    fi
    sleep 0.1
  done
  echo "fake registry did not start:"; cat "$work/fake.out"
  exit 1
}

# expect_fail, and the command must end within SECONDS.
expect_fail_within() {  # SECONDS NAME MESSAGE CMD...
  local limit=$1 start end; shift
  start=$(date +%s)
  expect_fail "$@"
  end=$(date +%s)
  [ $((end - start)) -le "$limit" ] ||
    fail "$1: took $((end - start)) s, more than $limit s"
}
