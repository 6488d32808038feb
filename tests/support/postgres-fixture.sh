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

stop() {
  if [[ -f "$dir/data/postmaster.pid" ]]; then
    as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

case $action in
  start)
    stop  # what a killed earlier run left behind
    mkdir -p "$dir"
    [[ $(id -u) == 0 ]] && chown postgres: "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-sync \
      --no-instructions >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    # fsync=off only risks data on an OS crash, which no test makes.
    as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
      start >/dev/null || { cat "$dir/postgres.log" >&2; exit 1; }
    echo "host=127.0.0.1 port=$port user=postgres connect_timeout=5" >"$dir/url"
    echo "postgres-fixture: up on 127.0.0.1:$port ($dir)"
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
