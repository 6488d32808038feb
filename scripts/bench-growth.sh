#!/usr/bin/env bash
# `make bench-growth` (issue 20): how the pipeline's costs change as the
# events table grows, on a fresh stack of its own (scripts/stack.sh in a
# temporary directory, free loopback ports; stopped and removed afterwards).
# Opt-in: 50 million rows take about an hour and some 30 GB.
#
# The table grows through the real path (loadgen, batches of 100, no
# duplicates, 16 topics, 200-byte payloads) to each checkpoint of
# GROWTH_CHECKPOINTS (rows, default 1M 5M 10M 25M 50M), at GROWTH_RATE
# events/s (default 14,000: below what this 2-core machine stores, so that
# the fill measures a pipeline keeping up, not a stream filling to its
# bound and 503s), into partitions of GROWTH_PARTITION_INTERVAL (default 5m:
# a dozen at 50 M rows, so that what grows with the partitions shows). At
# each checkpoint, once PostgreSQL is quiet (no autovacuum worker left, at
# most 10 minutes, then a CHECKPOINT: every checkpoint measured alike, not
# one of them beside the vacuum of the partitions just filled):
#   - store rate: GROWTH_PROBES (default 5) probe runs of 200,000 events
#     (30% duplicates) through the whole pipeline, end-to-end events/s
#     (loadgen's exact /stats check): their median (one probe that overlaps
#     a partition's rebuild or filter build does not move it); and the CPU
#     each server process spent on them per event;
#   - GET /events?topic=...&limit=100&order=desc (the newest 100 of a
#     topic), 4 connections for 10 s: p50 / p99 / max;
#   - bytes per stored event in PostgreSQL (scripts/bench/storage.sql), the
#     stream's bytes per message, the partitions with the key filters the
#     processor holds (the processor's /metrics), and the sealed partitions
#     the processor packed, with what they took before and after.
# Then a retention pass under load: the oldest partition detached
# (CONCURRENTLY) and dropped while loadgen publishes, with its duration and
# the publishes' latency during it against before.
#
# Writes bench-results/growth.json and prints the table (also in
# bench-results/growth.md). Environment: BUILD_DIR, GROWTH_CHECKPOINTS,
# GROWTH_RATE (0: unbounded), GROWTH_PARTITION_INTERVAL, GROWTH_PROBES, GROWTH_RESTARTS
# (below), GROWTH_STATEMENTS=1 (below), GROWTH_KEEP=1 (keep the raw outputs).
#
# GROWTH_STATEMENTS=1: PostgreSQL runs with pg_stat_statements (planning
# time too), and each set of probes reports the time per call of the
# statements that took the most, so that a run shows which statement's cost
# grows with the table (a few % of overhead: compare runs with the same
# setting).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${BUILD_DIR:-$root/build}
bin=$build/loadtest
checkpoints=${GROWTH_CHECKPOINTS:-1000000 5000000 10000000 25000000 50000000}
fill_rate=${GROWTH_RATE:-14000}
probe_count=${GROWTH_PROBES:-5}
[[ $probe_count =~ ^[1-9][0-9]*$ ]] || { echo "growth: GROWTH_PROBES must be a count of 1 or more" >&2; exit 1; }
for exe in loadgen; do
  [[ -x $bin/$exe ]] || { echo "growth: $bin/$exe missing; run make build" >&2; exit 1; }
done

run_dir=$(mktemp -d "${TMPDIR:-/tmp}/growth.XXXXXX")
chmod 755 "$run_dir"
export DATA_DIR=$run_dir/stack BUILD_DIR=$build
source "$root/scripts/bench/lib.sh"
stack_ports
# Everything kept (no retention by age or size), partitions of
# GROWTH_PARTITION_INTERVAL, a stream large enough for the backlog of the fill.
export EVENTS_RETENTION=0 EVENTS_MAX_BYTES=0
export EVENTS_PARTITION_INTERVAL=${GROWTH_PARTITION_INTERVAL:-5m}
export STREAM_MAX_BYTES=$((16 << 30))
statements=${GROWTH_STATEMENTS:-0}
if [[ $statements == 1 ]]; then
  export PG_SERVER_OPTIONS="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_planning=on"
fi
unset NATS_URL DATABASE_URL
url=http://127.0.0.1:$INGEST_HTTP_PORT
pg_bin=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
psql_events() { "$pg_bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d events -Atq "$@"; }

cleanup() {
  "$root/scripts/stack.sh" stop >/dev/null 2>&1 || true
  if [[ ${GROWTH_KEEP:-0} == 1 ]]; then echo "growth: raw outputs kept in $run_dir"; else rm -rf "$run_dir"; fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT

echo "growth: fresh stack in $run_dir; checkpoints: $checkpoints rows"
"$root/scripts/stack.sh" start >"$run_dir/stack-start.log" || { cat "$run_dir/stack-start.log"; exit 1; }
if [[ $statements == 1 ]]; then psql_events -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"; fi

rows() { psql_events -c "SELECT count(*) FROM events"; }
# No autovacuum worker left (at most 10 minutes), then a CHECKPOINT.
settle() {
  local deadline=$(($(date +%s) + 600)) busy
  while busy=$(psql_events -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'") &&
    ((busy > 0)) && (($(date +%s) < deadline)); do
    sleep 5
  done
  ((busy == 0)) || echo "growth: autovacuum still running after 10 minutes; measuring all the same"
  psql_events -c "CHECKPOINT"
}
field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

# probes LABEL: GROWTH_PROBES probe runs of 200,000 events (30% duplicates);
# sets rates (all of them), rate (their median) and cpu (µs per event of each
# server process over them: nats-server / PostgreSQL / ingest / processor).
probes() {
  local label=$1 probe
  rates=()
  if [[ $statements == 1 ]]; then psql_events -c "SELECT pg_stat_statements_reset()" >/dev/null; fi
  cpu_snapshot >"$run_dir/cpu_before_$label"
  for ((probe = 1; probe <= probe_count; probe++)); do
    "$bin/loadgen" --url="$url" --events=200000 --duplicates=0.3 --batch=100 --connections=8 \
      --topics=16 --payload-bytes=200 --timeout=600s --quiet \
      --json="$run_dir/probe_${label}_$probe.json" >/dev/null
    rates+=("$(field "$run_dir/probe_${label}_$probe.json" "round(d['verify']['end_to_end_events_per_second'])")")
  done
  cpu_snapshot >"$run_dir/cpu_after_$label"
  cpu=$(python3 -c '
import sys
read = lambda path: dict(line.strip().split("=", 1) for line in open(path))
before, after, hz = read(sys.argv[1]), read(sys.argv[2]), int(sys.argv[3])
us = lambda name: (float(after[name]) - float(before[name])) / hz / (200000 * int(sys.argv[4])) * 1e6
print(" / ".join("%.0f" % us(n) for n in ("nats", "postgres", "ingest", "processor")))
' "$run_dir/cpu_before_$label" "$run_dir/cpu_after_$label" "$(getconf CLK_TCK)" "$probe_count")
  rate=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n "$(((probe_count + 1) / 2))p")
  echo "growth: probes ${rates[*]} events/s"
  if [[ $statements == 1 ]]; then
    echo "$label" >>"$run_dir/statement_labels"
    psql_events -c "SELECT coalesce(json_agg(s), '[]') FROM (
      SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 80) AS query, calls,
             round((total_exec_time / calls)::numeric, 3) AS exec_ms,
             round((total_plan_time / greatest(plans, 1))::numeric, 3) AS plan_ms,
             round((total_exec_time + total_plan_time)::numeric) AS total_ms
      FROM pg_stat_statements
      WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'events') AND calls > 0
      ORDER BY total_exec_time + total_plan_time DESC LIMIT 10) s" >"$run_dir/statements_$label.json"
  fi
}

results=()
for target in $checkpoints; do
  have=$(rows)
  if ((have < target)); then
    need=$((target - have))
    echo "growth: filling $have -> $target rows ($need events, at most $fill_rate/s)"
    start=$(date +%s)
    timeout --foreground 14400 "$bin/loadgen" --url="$url" --events="$need" --duplicates=0 \
      --batch=100 --connections=8 --topics=16 --payload-bytes=200 --timeout=3600s --rate="$fill_rate" \
      --sample-interval=0 --json="$run_dir/fill_$target.json" >"$run_dir/fill_$target.log" 2>&1 ||
      { tail -20 "$run_dir/fill_$target.log"; exit 1; }
    echo "growth: filled in $(( $(date +%s) - start )) s"
  fi
  settle
  echo "growth: at $(rows) rows: the newest 100 of a topic, then $probe_count probes of 200,000 events"
  "$bin/loadgen" --url="$url" --get='/events?topic=loadtest.t3&limit=100&order=desc' \
    --duration=10s --connections=4 --quiet --json="$run_dir/query_$target.json" >/dev/null
  probes "$target"
  psql_events -f "$root/scripts/bench/storage.sql" >"$run_dir/storage_$target.json"
  n=$(field "$run_dir/storage_$target.json" "d['rows']")
  q=$(field "$run_dir/query_$target.json" "'%.2f / %.2f / %.2f' % (d['latency_ms']['p50'], d['latency_ms']['p99'], d['latency_ms']['max'])")
  per=$(field "$run_dir/storage_$target.json" "round(d['total_bytes'] / d['rows'])")
  # The stream's bytes per message (nothing purged below half its bound).
  metrics=$(curl -fsS "http://127.0.0.1:$PROCESSOR_METRICS_PORT/metrics")
  stream=$(awk '/^pipeline_stream_bytes /{b=$2} /^pipeline_stream_messages /{m=$2} END {if (m > 0) printf "%d", b / m; else print "-"}' <<<"$metrics")
  parts=$(awk '/^pipeline_processor_event_partitions /{p=$2} /^pipeline_processor_key_filter_partitions /{f=$2} END {printf "%d (%d)", p, f}' <<<"$metrics")
  idx=$(field "$run_dir/storage_$target.json" "round(d['index_bytes'] / d['rows'])")
  packed=$(field "$run_dir/storage_$target.json" "'%d: %.0f -> %.0f MB' % (d['packed']['partitions'], d['packed']['bytes_before'] / 1e6, d['packed']['bytes_after'] / 1e6)")
  line="| $n | $rate (${rates[*]}) | $cpu | $q | $per ($idx) | $stream | $parts | $packed |"
  echo "growth: $line"
  results+=("$line")
done

# GROWTH_RESTARTS (say "processor ingest nats postgres"): after the last
# checkpoint, restart each of these in turn (the earlier ones stay restarted)
# and run the same probes: which process's state, grown over the fill, costs
# the store rate that a restart of the whole stack gets back.
metric() {  # metric NAME: the processor's gauge, as an integer (0 when it cannot be read)
  { curl -fsS "http://127.0.0.1:$PROCESSOR_METRICS_PORT/metrics" 2>/dev/null || true; } |
    awk -v m="$1" '$1 == m {v = $2} END {printf "%d\n", v}'
}
restarted=()
for name in ${GROWTH_RESTARTS:-}; do
  filters=$(metric pipeline_processor_key_filter_partitions)
  echo "growth: restarting $name"
  "$root/scripts/stack.sh" stop "$name" >>"$run_dir/stack-restart.log"
  "$root/scripts/stack.sh" start >>"$run_dir/stack-restart.log" || { tail -20 "$run_dir/stack-restart.log"; exit 1; }
  # Ready again: ingest's /ready, and the processor holding as many key
  # filters as before or more (at most 10 minutes).
  deadline=$(($(date +%s) + 600))
  until curl -fsS "$url/ready" >/dev/null 2>&1 && (($(metric pipeline_processor_key_filter_partitions) >= filters)); do
    (($(date +%s) < deadline)) || { echo "growth: the stack was not ready 10 minutes after restarting $name" >&2; exit 1; }
    sleep 1
  done
  restarted+=("$name")
  echo "$name" >>"$run_dir/restarts"
  settle
  probes "restart_$name"
  results+=("| $(rows), ${restarted[*]} restarted | $rate (${rates[*]}) | $cpu | | | | | |")
done

echo "growth: a retention pass under load (the oldest partition detached and dropped)"
oldest=$(psql_events -c "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  WHERE i.inhparent = 'events'::regclass ORDER BY pg_get_expr(c.relpartbound, c.oid) ~ 'MINVALUE' DESC,
  c.relname LIMIT 1 OFFSET 1")
oldest_rows=$(psql_events -c "SELECT count(*) FROM $oldest")
"$bin/loadgen" --url="$url" --events=0 --duration=10s --batch=100 --connections=8 --topics=16 \
  --payload-bytes=200 --quiet --no-verify --json="$run_dir/load_before.json" >/dev/null
"$bin/loadgen" --url="$url" --events=0 --duration=20s --batch=100 --connections=8 --topics=16 \
  --payload-bytes=200 --quiet --no-verify --json="$run_dir/load_during.json" >/dev/null &
load_pid=$!
sleep 5
t0=$(date +%s.%N)
psql_events -c "ALTER TABLE events DETACH PARTITION $oldest CONCURRENTLY"
t1=$(date +%s.%N)
psql_events -c "DROP TABLE $oldest"
t2=$(date +%s.%N)
wait "$load_pid"
detach=$(python3 -c "print('%.2f' % ($t1 - $t0))")
drop=$(python3 -c "print('%.3f' % ($t2 - $t1))")
before=$(field "$run_dir/load_before.json" "'%.1f / %.1f ms' % (d['latency_ms']['p99'], d['latency_ms']['max'])")
during=$(field "$run_dir/load_during.json" "'%.1f / %.1f ms' % (d['latency_ms']['p99'], d['latency_ms']['max'])")

{
  echo "| Rows | Store rate, events/s: median (probes of 200,000, 30% duplicates) | CPU µs per event of the probes: nats-server / PostgreSQL / ingest / processor | GET /events (topic, newest 100) p50 / p99 / max, ms | PostgreSQL bytes per event (indexes) | Stream bytes per message | Partitions (with key filters) | Sealed partitions packed: bytes before -> after |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${results[@]}"
  echo
  echo "Retention pass under load: partition $oldest ($oldest_rows rows) detached CONCURRENTLY in $detach s, dropped in $drop s; publishes (batches of 100, 8 connections) p99 / max latency $before before, $during during the pass."
  if [[ $statements == 1 ]]; then
    echo
    python3 - "$run_dir" <<'EOF'
import json, os, sys
d = sys.argv[1]
labels = open(os.path.join(d, "statement_labels")).read().split()
runs = {l: {s["query"]: s for s in json.load(open(os.path.join(d, f"statements_{l}.json")))}
        for l in labels}
queries = sorted(set(q for r in runs.values() for q in r),
                 key=lambda q: -runs[labels[-1]].get(q, {"total_ms": 0})["total_ms"])
print("PostgreSQL statements over each set of probes (pg_stat_statements): execution / planning ms per call (calls)")
print()
print("| Statement | " + " | ".join(labels) + " |")
print("|---|" + "---:|" * len(labels))
for q in queries:
    cell = lambda s: "%.3f / %.3f (%d)" % (s["exec_ms"], s["plan_ms"], s["calls"]) if s else ""
    print("| `%s` | " % q.replace("|", "/") + " | ".join(cell(runs[l].get(q)) for l in labels) + " |")
EOF
  fi
} | tee "$run_dir/growth.md"
mkdir -p bench-results
cp "$run_dir/growth.md" bench-results/growth.md
python3 - "$run_dir" >bench-results/growth.json <<'EOF'
import glob, json, os, sys
d = sys.argv[1]
probes = lambda n: [json.load(open(p)) for p in sorted(
    glob.glob(os.path.join(d, f"probe_{n}_*.json")), key=lambda p: int(p.split("_")[-1][:-5]))]
out = {"checkpoints": []}
for path in sorted(glob.glob(os.path.join(d, "storage_*.json")), key=lambda p: int(p.split("_")[-1][:-5])):
    n = path.split("_")[-1][:-5]
    load = lambda name: json.load(open(os.path.join(d, f"{name}_{n}.json")))
    out["checkpoints"].append({"target_rows": int(n), "storage": load("storage"),
                               "probes": probes(n),
                               "query": load("query"),
                               "statements": (load("statements") if os.path.exists(
                                   os.path.join(d, f"statements_{n}.json")) else None)})
restarts = os.path.join(d, "restarts")
names = open(restarts).read().split() if os.path.exists(restarts) else []
out["restarts"] = [{"restarted": name, "probes": probes("restart_" + name)}
                   for name in names]
out["retention_pass"] = {"load_before": json.load(open(os.path.join(d, "load_before.json"))),
                         "load_during": json.load(open(os.path.join(d, "load_during.json")))}
print(json.dumps(out, indent=1))
EOF
echo "growth: bench-results/growth.json, bench-results/growth.md"
