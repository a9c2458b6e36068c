# Sourced by the shell tests that run a docker-registry on 127.0.0.1
# (tests/publish/lib.sh, tests/builder/build-test-lib.sh): the one copy
# of its start-up.  Needs docker-registry, curl and python3.

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# serve_registry CONFIG LOG URL [CURL OPTION]...: docker-registry serving
# CONFIG in the background (its pid in $registry_pid, its output appended
# to LOG); returns once URL answers, or 1 if it has not within 10 s.
serve_registry() {
  local config=$1 log=$2 url=$3 i
  shift 3
  docker-registry serve "$config" >>"$log" 2>&1 &
  registry_pid=$!
  for i in $(seq 1 100); do
    curl -s -o /dev/null "$@" "$url" && return 0
    sleep 0.1
  done
  return 1
}

# start_plain_registry DIR: a registry with neither TLS nor auth (vab
# allows plain HTTP to loopback) storing in DIR/registry, its config and
# log in DIR; sets $port and $registry_pid.
start_plain_registry() {
  local dir=$1
  port=$(free_port)
  cat >"$dir/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $dir/registry
http:
  addr: 127.0.0.1:$port
YAML
  serve_registry "$dir/registry.yml" "$dir/registry.log" \
    "http://127.0.0.1:$port/v2/"
}
