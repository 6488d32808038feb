#!/usr/bin/env bash
# One PostgreSQL cluster shared by the integration tests' processes (a CTest
# fixture: tests/CMakeLists.txt runs `start` before the first case and `stop`
# after the last; each case makes a database of its own on it).
#
#   tests/support/postgres-fixture.sh start DIR   initdb + start; writes DIR/url
#   tests/support/postgres-fixture.sh stop DIR    stop and remove DIR
#
# The tests find it through PIPELINE_TEST_POSTGRES=DIR/url; run directly,
# without that variable, a test binary starts a cluster of its own.
set -euo pipefail
action=${1:?start or stop}
dir=${2:?directory}

bindir=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[[ -x "$bindir/pg_ctl" ]] || { echo "postgres-fixture: no pg_ctl (set PG_BINDIR)" >&2; exit 1; }
# initdb and postgres refuse to run as root.
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# The cluster lives in a directory of its own under /tmp, not in DIR: DIR is
# in the build tree, which the postgres user may not be able to enter (a
# clone under /root, whose home is 0700 on Debian 12). DIR/location names it.
stop() {
  local data
  data=$(cat "$dir/location" 2>/dev/null || true)
  if [[ -n "$data" && -f "$data/data/postmaster.pid" ]]; then
    as_pg "$bindir/pg_ctl" -D "$data/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  [[ -n "$data" && "$data" == /tmp/pipeline-test-postgres.* ]] && rm -rf "$data"
  rm -rf "$dir"
}

# A port below Linux's ephemeral range (32768-60999), so that no outgoing
# connection of the tests can hold it first; free when tried.
free_port() {
  python3 - <<'PY'
import random, socket
for _ in range(1000):
    port = random.randint(20000, 31999)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
PY
}

case $action in
  start)
    stop  # what a killed earlier run left behind
    mkdir -p "$dir"
    data=$(mktemp -d /tmp/pipeline-test-postgres.XXXXXX)
    echo "$data" >"$dir/location"
    [[ $(id -u) == 0 ]] && chown postgres: "$data"
    port=$(free_port)
    as_pg "$bindir/initdb" -D "$data/data" -A trust -U postgres -E UTF8 --no-sync \
      --no-instructions >"$data/initdb.log" 2>&1 || { cat "$data/initdb.log" >&2; exit 1; }
    # fsync=off only risks data on an OS crash, which no test makes.
    as_pg "$bindir/pg_ctl" -D "$data/data" -l "$data/postgres.log" -w -t 60 \
      -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
      start >/dev/null || { cat "$data/postgres.log" >&2; exit 1; }
    echo "host=127.0.0.1 port=$port user=postgres connect_timeout=5" >"$dir/url"
    echo "postgres-fixture: up on 127.0.0.1:$port ($data)"
    ;;
  stop)
    stop
    echo "postgres-fixture: stopped"
    ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
