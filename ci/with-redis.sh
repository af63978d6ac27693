#!/usr/bin/env bash
# Runs CMD... with two throwaway Redis servers for the `cluster` tests
# (crates/multiproc/tests/cluster_*.rs), then stops them by PID:
#
#   ci/with-redis.sh bash ci/test.sh
#
# - installs redis-server (Debian's, TLS built in) when it is missing, and iproute2
#   (`ip`, for the namespace-host tests) when `ip` is;
# - starts a password-protected instance on 127.0.0.1 and a free port, with its
#   pidfile, logfile and working directory in a temporary directory, and waits for PING;
# - creates the ACL user the tests use (`mptest`, limited to keys `{mpt*}:*`);
# - makes a test CA and a server certificate for 127.0.0.1 with openssl and starts a
#   second instance that speaks only TLS;
# - exports MULTIPROC_TEST_REDIS_URL (redis://default:PASSWORD@127.0.0.1:PORT/),
#   MULTIPROC_TEST_REDIS_ACL_URL (the ACL user), MULTIPROC_TEST_REDIS_TLS_URL
#   (rediss://...) and MULTIPROC_TEST_REDIS_CA (the CA's PEM file);
# - runs CMD..., and on exit (also on failure or a signal) kills both servers by the
#   PIDs in their pidfiles and removes the temporary directory.
#
# Nothing is looked up by process name: two runs on one machine do not touch each
# other's servers. The exit status is CMD's.
set -euo pipefail

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "with-redis: installing redis-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
# The namespace-host tests (tests/cluster_netns.rs) need `ip`; they fail under CI=true without it.
command -v ip >/dev/null || { apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mp-redis.XXXXXX")
stop() {
  local rc=$?
  for f in "$tmp"/plain.pid "$tmp"/tls.pid; do
    if [[ -s $f ]]; then
      local pid
      pid=$(cat "$f")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$tmp"
  exit "$rc"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free port: bind to port 0 and read what the kernel chose. The server binds it a
# moment later; a clash makes its start fail below, loudly.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
password=$(openssl rand -hex 16)
acl_password=$(openssl rand -hex 16)

common=(--daemonize yes --bind 127.0.0.1 --requirepass "$password" --save "" --appendonly no
        --dir "$tmp" --maxmemory-policy noeviction)

wait_ping() { # PIDFILE ARGS-FOR-REDIS-CLI...
  local pidfile=$1; shift
  for _ in $(seq 200); do
    if [[ -s $pidfile ]] && REDISCLI_AUTH=$password redis-cli "$@" ping 2>/dev/null | grep -q PONG; then
      return 0
    fi
    sleep 0.05
  done
  echo "with-redis: the server did not answer PING; its log:" >&2
  cat "$tmp"/*.log >&2 || true
  return 1
}

port=$(free_port)
redis-server "${common[@]}" --port "$port" \
  --pidfile "$tmp/plain.pid" --logfile "$tmp/plain.log"
wait_ping "$tmp/plain.pid" -h 127.0.0.1 -p "$port"

# The ACL line documented in multiproc::pool::cluster, for the test prefix.
REDISCLI_AUTH=$password redis-cli -h 127.0.0.1 -p "$port" ACL SETUSER mptest on ">$acl_password" \
  resetkeys '~{mpt*}:*' resetchannels -@all +@stream +xgroup +set +get +getdel +del +exists \
  +expire +pexpire +pexpireat +eval +evalsha +multi +exec +discard +ping +info +hello \
  +client\|setname +client\|id +sadd +srem +smembers +mget +scan >/dev/null

# A test CA and a server certificate for 127.0.0.1.
(
  cd "$tmp"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
    -subj "/CN=multiproc-test-ca" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=127.0.0.1" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >ext.cnf
  openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 \
    -extfile ext.cnf 2>/dev/null
)
tls_port=$(free_port)
redis-server "${common[@]}" --port 0 --tls-port "$tls_port" \
  --tls-cert-file "$tmp/srv.pem" --tls-key-file "$tmp/srv.key" --tls-ca-cert-file "$tmp/ca.pem" \
  --tls-auth-clients no --pidfile "$tmp/tls.pid" --logfile "$tmp/tls.log"
wait_ping "$tmp/tls.pid" --tls --cacert "$tmp/ca.pem" -h 127.0.0.1 -p "$tls_port"

export MULTIPROC_TEST_REDIS_URL="redis://default:$password@127.0.0.1:$port/"
export MULTIPROC_TEST_REDIS_ACL_URL="redis://mptest:$acl_password@127.0.0.1:$port/"
export MULTIPROC_TEST_REDIS_TLS_URL="rediss://default:$password@127.0.0.1:$tls_port/"
export MULTIPROC_TEST_REDIS_CA="$tmp/ca.pem"
echo "with-redis: redis $(redis-server --version | grep -o 'v=[0-9.]*') on 127.0.0.1:$port (pid $(cat "$tmp/plain.pid")), TLS on :$tls_port (pid $(cat "$tmp/tls.pid"))" >&2

"$@"
