#!/usr/bin/env bash
# `make bench-stream-bound` (issue 20): a stream kept at its byte bound while
# the processors purge what they have acked. A fresh stack of its own
# (scripts/stack.sh in a temporary directory, free loopback ports; stopped
# and removed afterwards) with a small STREAM_MAX_BYTES, and loadgen
# publishing faster than the processors store: the stream fills, publishes
# get 503 and are retried, and the processors purge acked events (two of
# nats-server's blocks behind a busy consumer's ack floor). Every accepted
# event must be stored exactly once (loadgen's exact /stats check); prints
# the purges and the messages the broker skipped (pipeline_processor_
# skipped_messages_total). Environment: BUILD_DIR, BOUND_STREAM_BYTES
# (default 256 MiB), BOUND_EVENTS (default 3,000,000).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${BUILD_DIR:-$root/build}
[[ -x $build/loadtest/loadgen ]] || { echo "stream-bound: $build/loadtest/loadgen missing; run make build" >&2; exit 1; }
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/stream-bound.XXXXXX")
chmod 755 "$run_dir"
export DATA_DIR=$run_dir/stack BUILD_DIR=$build
source "$root/scripts/bench/lib.sh"
stack_ports
export STREAM_MAX_BYTES=${BOUND_STREAM_BYTES:-$((256 << 20))}
events=${BOUND_EVENTS:-3000000}
unset NATS_URL DATABASE_URL
cleanup() {
  "$root/scripts/stack.sh" stop >/dev/null 2>&1 || true
  rm -rf "$run_dir"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

echo "stream-bound: $events events through a stream of $STREAM_MAX_BYTES bytes ($run_dir)"
"$root/scripts/stack.sh" start >"$run_dir/stack-start.log" || { cat "$run_dir/stack-start.log"; exit 1; }
status=0
"$build/loadtest/loadgen" --url="http://127.0.0.1:$INGEST_HTTP_PORT" --events="$events" \
  --duplicates=0 --batch=100 --connections=8 --topics=16 --payload-bytes=200 --timeout=900s \
  --json="$run_dir/load.json" || status=$?
metrics=$(curl -fsS "http://127.0.0.1:$PROCESSOR_METRICS_PORT/metrics")
purges=$(awk '/^pipeline_processor_stream_purges_total /{print $2}' <<<"$metrics")
skipped=$(grep '^pipeline_processor_skipped_messages_total' <<<"$metrics" | tr '\n' ' ')
echo "stream-bound: purges ${purges:-?}; ${skipped:-no skipped-message series}"
exit "$status"
