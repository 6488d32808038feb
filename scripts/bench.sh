#!/usr/bin/env bash
# `make bench`: starts a fresh stack (scripts/stack.sh) in a temporary
# directory on free loopback ports, with everything on this machine, and runs
# the scenarios of issue 6:
#   1. seed: 20,000 events, 30% duplicates, batches of 100, 8 connections
#   2. single events: one event per request, 64 connections, 30 s, as
#      standard clients send them (no Connection header), then the same with
#      "Connection: keep-alive" to compare
#   3. sustained: 1,000,000 events, 30% duplicates, batches of 100 (RSS and
#      consumer lag sampled every second)
#   4. stage ceilings: bench_publish, bench_consume, bench_insert alone
#   7. body formats: the same events to /publish as JSON, NDJSON, gzip
#      NDJSON, and through the shipper protocols (OTLP protobuf and JSON,
#      Elasticsearch bulk, Loki push)
#   5, 5b, 6. GET /subscribe (issue 14; scripts/bench/subscribe.sh): delivery
#      latency and exactly-once with 100 subscribers, the same with stalled
#      subscribers, and 1,000 subscriptions held open under single events
# then writes bench-results/latest.json and the generated table of
# BENCHMARKS.md. The stack is stopped and removed afterwards.
#
# Environment: BUILD_DIR (default ./build), BENCH_RESULTS (results file),
# BENCH_MARKDOWN (default BENCHMARKS.md), BENCH_QUIET_WAIT (seconds to wait
# for a quiet machine first, default 300), BENCH_SMALL=1 (a quick trial of
# the script with small sizes; its figures mean nothing), BENCH_KEEP=1 (keep
# the raw outputs directory), BENCH_ONLY=subscribe (only the warm-up and the
# subscribe scenarios, on a fresh stack all the same; the results go to
# bench-results/subscribe.json unless BENCH_RESULTS says otherwise, and only
# the subscribe section of BENCHMARKS.md is rewritten).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${BUILD_DIR:-$root/build}
only=${BENCH_ONLY:-}
[[ -z $only || $only == subscribe ]] || { echo "bench: BENCH_ONLY must be empty or subscribe" >&2; exit 2; }
default_results=bench-results/latest.json
[[ $only == subscribe ]] && default_results=bench-results/subscribe.json
results=${BENCH_RESULTS:-$default_results}  # relative to the repository root
markdown=${BENCH_MARKDOWN:-BENCHMARKS.md}
small=${BENCH_SMALL:-0}
bin=$build/loadtest

for exe in loadgen bench_publish bench_consume bench_insert bench_subscribe bench_report; do
  [[ -x $bin/$exe ]] || { echo "bench: $bin/$exe missing; run make build" >&2; exit 1; }
done

if [[ $small == 1 ]]; then
  seed_events=3000 single_duration=5s sustained_events=20000 stage_events=20000 format_events=5000
else
  seed_events=20000 single_duration=30s sustained_events=1000000 stage_events=100000
  format_events=100000
fi

run_dir=$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX")
chmod 755 "$run_dir"  # the postgres user must reach the data directory
export DATA_DIR=$run_dir/stack BUILD_DIR=$build
source "$root/scripts/bench/lib.sh"
source "$root/scripts/bench/subscribe.sh"
NATS_PORT=$(free_port) && taken=$NATS_PORT
PG_PORT=$(free_port) && taken="$taken $PG_PORT"
INGEST_HTTP_PORT=$(free_port)
export NATS_PORT PG_PORT INGEST_HTTP_PORT
# bench_subscribe counts each of its 1,000 topics from /stats.
export STATS_MAX_TOPICS=100000
unset NATS_URL DATABASE_URL
url=http://127.0.0.1:$INGEST_HTTP_PORT
nats_url=nats://127.0.0.1:$NATS_PORT
database_url=postgresql://postgres@127.0.0.1:$PG_PORT/events

sampler_pid=""
cleanup() {
  [[ -n $sampler_pid ]] && kill "$sampler_pid" 2>/dev/null
  "$root/scripts/stack.sh" stop >/dev/null 2>&1 || true
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then echo "bench: raw outputs kept in $run_dir"; else rm -rf "$run_dir"; fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# Everything shares two cores: other work on the machine shows in the figures.
wait_for_quiet "${BENCH_QUIET_WAIT:-300}"
echo "bench: fresh stack in $run_dir"
"$root/scripts/stack.sh" start >"$run_dir/stack-start.log" || { cat "$run_dir/stack-start.log"; exit 1; }
echo "bench: load average $(cut -d' ' -f1-3 /proc/loadavg); the \"other\" CPU column shows what else ran"

write_env "$run_dir/env.txt"

# A warm-up run, not recorded: the fresh PostgreSQL cluster creates its WAL
# segments and the services their connections and caches on first use.
echo "bench: warm-up (20,000 events, not recorded)"
"$bin/loadgen" --url="$url" --events=20000 --quiet --timeout=120s >/dev/null

if [[ $only == subscribe ]]; then
  subscribe_scenarios
  mkdir -p "$(dirname "$results")"
  "$bin/bench_report" --dir="$run_dir" --results="$results" --markdown="$markdown" --only=subscribe
  exit 0
fi

echo "bench: scenario 1 (seed): $seed_events events, 30% duplicates, batch 100, 8 connections, 3 runs"
# Three runs, the median reported: its end-to-end figure includes the drain
# of a consumer backlog, whose speed nats-server 2.9 varies by 2x from one
# run to the next (BENCHMARKS.md, "Where the time goes").
for run in 1 2 3; do
  scenario "seed_run$run" "$bin/loadgen" --url="$url" --events="$seed_events" --duplicates=0.3 \
    --batch=100 --connections=8 --timeout=120s --json="$run_dir/seed_run$run.json"
done

echo "bench: scenario 4 (stage ceilings, right after scenario 1)"
common=(--events="$stage_events" --duplicates=0.3 --batch=100 --topics=10 --payload-bytes=200 --seed=42)
timeout --foreground 300 "$bin/bench_publish" --nats-url="$nats_url" "${common[@]}" --json="$run_dir/publish.json"
timeout --foreground 300 "$bin/bench_consume" --nats-url="$nats_url" "${common[@]}" --json="$run_dir/consume.json"
timeout --foreground 300 "$bin/bench_insert" --database-url="$database_url" "${common[@]}" --json="$run_dir/insert.json"

echo "bench: scenario 2 (single events): batch 1, 64 connections, $single_duration, no Connection header"
scenario single "$bin/loadgen" --url="$url" --events=0 --duration="$single_duration" --batch=1 \
  --connections=64 --duplicates=0.3 --timeout=300s --json="$run_dir/single.json"

echo "bench: scenario 2b: the same with \"Connection: keep-alive\" on every request"
scenario single_header "$bin/loadgen" --url="$url" --events=0 --duration="$single_duration" \
  --batch=1 --connections=64 --duplicates=0.3 --timeout=300s --keep-alive-header \
  --json="$run_dir/single_header.json"

echo "bench: HTTP baseline: GET /health, 64 connections, 10 s (no NATS, no PostgreSQL)"
scenario health "$bin/loadgen" --url="$url" --get=/health --duration=10s --connections=64 \
  --quiet --json="$run_dir/health.json"

echo "bench: scenario 3 (sustained): $sustained_events events, 30% duplicates, batch 100"
sample_rss "$run_dir/rss.tsv" &
sampler_pid=$!
scenario sustained timeout --foreground 1200 "$bin/loadgen" --url="$url" --events="$sustained_events" \
  --duplicates=0.3 --batch=100 --connections=8 --timeout=900s --json="$run_dir/sustained.json"
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=""
peak_rss >"$run_dir/hwm.txt"

echo "bench: storage per event (the events table after scenario 3)"
storage_json "$run_dir/storage.json"

echo "bench: scenario 7 (body formats): $format_events events, 30% duplicates, batch 100, 8 connections, as a JSON array, NDJSON, gzip NDJSON, OTLP protobuf and JSON, Elasticsearch bulk, Loki push"
for body in json ndjson ndjson_gzip otlp otlp_json bulk loki; do
  case $body in
    ndjson_gzip) coding=(--body=ndjson --gzip) ;;
    *) coding=(--body="${body//_/-}") ;;
  esac
  scenario "body_$body" "$bin/loadgen" --url="$url" --events="$format_events" --duplicates=0.3 \
    --batch=100 --connections=8 --timeout=300s "${coding[@]}" --json="$run_dir/body_$body.json"
done

subscribe_scenarios

mkdir -p "$(dirname "$results")"
"$bin/bench_report" --dir="$run_dir" --results="$results" --markdown="$markdown"
