#!/usr/bin/env bash
# The local stack: nats-server (JetStream), a PostgreSQL cluster of its own,
# the processor and ingest, all with data and logs under ./.data/.
#
#   scripts/stack.sh start   start whatever is not running (safe to repeat;
#                            after a crash of any component it heals the stack)
#   scripts/stack.sh servers only nats-server and PostgreSQL (for services
#                            run some other way: scripts/check-image.sh)
#   scripts/stack.sh stop    stop everything it started (data is kept)
#   scripts/stack.sh stop NAME...  stop only these (ingest, processor,
#                            postgres, nats); start brings them back
#   scripts/stack.sh status  show what runs
#
# PG_SERVER_OPTIONS: more options for the PostgreSQL server when it starts
# ("-c name=value ..."; scripts/bench-growth.sh uses it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DATA=${DATA_DIR:-$ROOT/.data}
BUILD=${BUILD_DIR:-$ROOT/build}
NATS_PORT=${NATS_PORT:-4222}
PG_PORT=${PG_PORT:-55432}
INGEST_HTTP_PORT=${INGEST_HTTP_PORT:-8080}
PG_BIN=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
RUN=$DATA/run
LOGS=$DATA/logs

# The processor's GET /metrics: 9101 for the default stack; any free port for
# stacks on other ports (tests, benchmarks), so that several can run at once.
if [[ $INGEST_HTTP_PORT == 8080 ]]; then
  PROCESSOR_METRICS_PORT=${PROCESSOR_METRICS_PORT:-9101}
else
  PROCESSOR_METRICS_PORT=${PROCESSOR_METRICS_PORT:-0}
fi
export PROCESSOR_METRICS_ADDRESS=${PROCESSOR_METRICS_ADDRESS:-127.0.0.1:$PROCESSOR_METRICS_PORT}
export NATS_URL=${NATS_URL:-nats://127.0.0.1:$NATS_PORT}
export DATABASE_URL=${DATABASE_URL:-postgresql://postgres@127.0.0.1:$PG_PORT/events}
export INGEST_HTTP_PORT

# Runs a command as the postgres user when we are root (initdb and postgres
# refuse to run as root), as ourselves otherwise.
as_pg() {
  # From /, which the postgres user can always enter (every path here is absolute).
  if [[ $(id -u) -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# PostgreSQL's data directory: $DATA/postgres, unless we are root and the
# postgres user cannot reach $DATA (a checkout under /root, which is 0700):
# then a directory of that user's own, named after $DATA, and
# $DATA/postgres.location says where it is.
mkdir -p "$DATA"
PG_DATA=$DATA/postgres
if [[ $(id -u) -eq 0 ]] && ! runuser -u postgres -- test -x "$DATA" 2>/dev/null; then
  PG_DATA=$(getent passwd postgres | cut -d: -f6)/event-pipeline/$(printf %s "$DATA" | md5sum | cut -c1-12)
  echo "$PG_DATA" >"$DATA/postgres.location"
fi

pid_alive() {  # pid_alive PID: running, and not a zombie nobody reaped
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ -n $state && $state != Z* ]]
}

alive() {  # alive NAME: its pid file names a running process
  local pidfile=$RUN/$1.pid
  [[ -f $pidfile ]] && pid_alive "$(cat "$pidfile")"
}

wait_for() {  # wait_for DESCRIPTION SECONDS COMMAND...
  local what=$1 seconds=$2
  shift 2
  for ((i = 0; i < seconds * 10; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "stack: $what did not come up in ${seconds}s; see $LOGS" >&2
  return 1
}

start_daemon() {  # start_daemon NAME COMMAND...: background, own session, pid file
  local name=$1
  shift
  setsid nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

start_nats() {
  if alive nats; then echo "  nats-server  running (pid $(cat "$RUN/nats.pid"))"; return; fi
  start_daemon nats nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$DATA/nats"
  wait_for "nats-server" 20 bash -c "echo > /dev/tcp/127.0.0.1/$NATS_PORT"
  echo "  nats-server  started on 127.0.0.1:$NATS_PORT (store $DATA/nats)"
}

pg_running() { as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

start_postgres() {
  if [[ ! -f $PG_DATA/PG_VERSION ]]; then
    mkdir -p "$PG_DATA"
    if [[ $(id -u) -eq 0 ]]; then
      chown postgres:postgres "$(dirname "$PG_DATA")" 2>/dev/null || true
      chown postgres:postgres "$PG_DATA"
      if ! runuser -u postgres -- test -w "$PG_DATA"; then
        echo "stack: the postgres user cannot reach $PG_DATA (a parent directory is" >&2
        echo "       not searchable by others); set DATA_DIR to a path it can reach" >&2
        exit 1
      fi
    fi
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 \
      --no-instructions >>"$LOGS/initdb.log" 2>&1
  fi
  if pg_running; then
    echo "  postgresql   running"
  else
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w -t 60 \
      -o "-p $PG_PORT -k $PG_DATA -c listen_addresses=127.0.0.1 ${PG_SERVER_OPTIONS:-}" start >/dev/null
    echo "  postgresql   started on 127.0.0.1:$PG_PORT (data $PG_DATA)"
  fi
  local exists
  exists=$(as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atc \
    "SELECT 1 FROM pg_database WHERE datname = 'events'")
  if [[ "$exists" != "1" ]]; then
    as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qc "CREATE DATABASE events"
  fi
}

start_service() {  # start_service NAME
  local name=$1
  if alive "$name"; then echo "  $(printf %-12s "$name") running (pid $(cat "$RUN/$name.pid"))"; return; fi
  start_daemon "$name" "$BUILD/$name/$name"
  echo "  $(printf %-12s "$name") started (log $LOGS/$name.log)"
}

servers() {
  mkdir -p "$RUN" "$LOGS"
  start_nats
  start_postgres
}

start() {
  mkdir -p "$RUN" "$LOGS"
  for binary in ingest processor; do
    [[ -x $BUILD/$binary/$binary ]] || { echo "stack: $BUILD/$binary/$binary missing; run make build" >&2; exit 1; }
  done
  echo "stack: starting (data in $DATA)"
  start_nats
  start_postgres
  start_service processor
  start_service ingest
  if ! wait_for "ingest" 60 curl -fsS "http://127.0.0.1:$INGEST_HTTP_PORT/health"; then
    tail -n 20 "$LOGS/ingest.log" >&2
    exit 1
  fi
  alive processor || { echo "stack: processor exited; see $LOGS/processor.log" >&2; tail -n 20 "$LOGS/processor.log" >&2; exit 1; }
  cat <<INFO
stack: up
  ingest       http://127.0.0.1:$INGEST_HTTP_PORT  (try: curl http://127.0.0.1:$INGEST_HTTP_PORT/stats)
  metrics      http://127.0.0.1:$INGEST_HTTP_PORT/metrics, processor on $PROCESSOR_METRICS_ADDRESS
  nats         $NATS_URL
  postgresql   $DATABASE_URL
  logs         $LOGS/
  stop with    make stop
INFO
}

stop_pid() {  # stop_pid NAME: SIGTERM, then SIGKILL after 20 s
  local name=$1
  alive "$name" || { rm -f "$RUN/$name.pid"; return; }
  local pid
  pid=$(cat "$RUN/$name.pid")
  kill -TERM "$pid"
  for ((i = 0; i < 200; i++)); do pid_alive "$pid" || break; sleep 0.1; done
  if pid_alive "$pid"; then kill -KILL "$pid"; fi
  rm -f "$RUN/$name.pid"
  echo "  $name stopped"
}

stop_postgres() {
  if [[ -f $PG_DATA/PG_VERSION ]] && pg_running; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
    echo "  postgresql stopped"
  fi
}

stop() {  # stop [NAME...]: these (ingest, processor, postgres, nats), or all
  local name
  if (($# > 0)); then
    for name in "$@"; do
      case $name in
        postgres) stop_postgres ;;
        ingest | processor | nats) stop_pid "$name" ;;
        *) echo "stack: no component $name (ingest, processor, postgres, nats)" >&2; exit 2 ;;
      esac
    done
    return
  fi
  echo "stack: stopping"
  stop_pid ingest
  stop_pid processor
  stop_postgres
  stop_pid nats
  echo "stack: stopped (data kept in $DATA)"
}

status() {
  for name in nats processor ingest; do
    if alive $name; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"; else echo "$name: stopped"; fi
  done
  if [[ -f $PG_DATA/PG_VERSION ]] && pg_running; then echo "postgresql: running"; else echo "postgresql: stopped"; fi
}

case "${1:-}" in
  start) start ;;
  servers) servers ;;
  stop) shift; stop "$@" ;;
  status) status ;;
  *) echo "usage: $0 start|servers|stop [NAME...]|status" >&2; exit 2 ;;
esac
