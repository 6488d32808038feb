#!/usr/bin/env bash
# The loadgen smoke test of `make test` (CTest label loadtest): a fresh stack
# (scripts/stack.sh) on free loopback ports in a temporary directory, a few
# thousand events with 30% duplicates (as JSON arrays, then as gzip NDJSON),
# and loadgen's exact check of /stats after each.
# The stack is stopped and its directory removed whatever happens.
#
#   loadtest/smoke_test.sh LOADGEN BUILD_DIR [loadgen flags...]
set -euo pipefail
loadgen=$1
export BUILD_DIR=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)

# free_port (and the other helpers of scripts/bench.sh)
source "$root/scripts/bench/lib.sh"

DATA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/loadtest-smoke.XXXXXX")
chmod 755 "$DATA_DIR"  # the postgres user must reach its data directory
export DATA_DIR
taken=""
NATS_PORT=$(free_port); taken="$NATS_PORT"
PG_PORT=$(free_port); taken="$taken $PG_PORT"
INGEST_HTTP_PORT=$(free_port)
export NATS_PORT PG_PORT INGEST_HTTP_PORT
# Not the caller's: stack.sh derives them from the ports when they are unset.
unset NATS_URL DATABASE_URL

cleanup() {
  local status=$?
  if [[ $status -ne 0 ]]; then
    # Enough to explain a failure afterwards: what ran, and the last log lines.
    "$root/scripts/stack.sh" status >&2 || true
    tail -n 25 "$DATA_DIR"/logs/processor.log "$DATA_DIR"/logs/ingest.log >&2 || true
  fi
  "$root/scripts/stack.sh" stop >/dev/null 2>&1 || true
  rm -rf "$DATA_DIR"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

if ! "$root/scripts/stack.sh" start; then
  tail -n 30 "$DATA_DIR"/logs/*.log >&2 || true
  exit 1
fi
# Bounded below CTest's TIMEOUT of 300 s (stack start <= 140 s, these two
# <= 90 + 50 s): a test killed by CTest would never run the cleanup above.
timeout --foreground 90 "$loadgen" --url="http://127.0.0.1:$INGEST_HTTP_PORT" --events=3000 \
  --batch=50 --connections=4 --duplicates=0.3 --timeout=60s --request-timeout=10s --max-retries=5 "$@"
# The same check with the bodies log shippers send: NDJSON, gzip-compressed.
timeout --foreground 50 "$loadgen" --url="http://127.0.0.1:$INGEST_HTTP_PORT" --events=2000 \
  --batch=50 --connections=4 --duplicates=0.3 --timeout=30s --request-timeout=10s --max-retries=5 \
  --body=ndjson --gzip "$@"
