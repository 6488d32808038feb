# shellcheck shell=bash disable=SC2154  # bin, url, run_dir and small are scripts/bench.sh's
# The GET /subscribe scenarios of issue 14 (sourced by scripts/bench.sh, which
# sets bin, url, run_dir, small and the stack's DATA_DIR):
#   5.  delivery: 100 subscribers of every bench topic (bench.lat.*), 1,000
#       single-event publishes a second; latency from each publish's 200 to
#       the event's arrival at each subscriber, and exactly once in order
#   5b. the same with 5 more subscribers that never read (their socket's
#       receive buffer is 4 KiB): the others must not notice; what became
#       of the stalled ones (cut for being slow?) comes from ingest's metrics
#   6.  1,000 subscriptions, each on its own topic (bench.sub.<i>), held open
#       while loadgen publishes single events to those topics: ingest's RSS
#       growth, and the publishing rate against the same run without them
#       (6a, right before)

subscribe_scenarios() {
  local sub_duration=20s single_duration=20s sub_count=1000 hold_pid="" waited
  if [[ $small == 1 ]]; then sub_duration=5s single_duration=5s sub_count=100; fi
  local ingest_pid
  ingest_pid=$(pid_of ingest)

  echo "bench: scenario 5 (subscribe): 100 subscribers of bench.lat.*, 1,000 events/s for $sub_duration"
  scenario sub_latency timeout --foreground 300 "$bin/bench_subscribe" --url="$url" \
    --subscribers=100 --rate=1000 --duration="$sub_duration" --topic-prefix=bench.lat. \
    --topics=10 --watch-pid="$ingest_pid" --json="$run_dir/sub_latency.json"

  echo "bench: scenario 5b (subscribe): the same with 5 subscribers that never read"
  scenario sub_stalled timeout --foreground 300 "$bin/bench_subscribe" --url="$url" \
    --subscribers=100 --stalled=5 --rate=1000 --duration="$sub_duration" \
    --topic-prefix=bench.lat. --topics=10 --watch-pid="$ingest_pid" \
    --json="$run_dir/sub_stalled.json"

  # The same single-event load twice: without subscribers, then with them.
  local single=(--url="$url" --events=0 --duration="$single_duration" --batch=1 --connections=64
    --duplicates=0.3 --topics="$sub_count" --topic-prefix=bench.sub. --timeout=300s)
  echo "bench: scenario 6a (subscribe): single events to $sub_count topics, $single_duration, no subscribers"
  scenario sub_base "$bin/loadgen" "${single[@]}" --json="$run_dir/sub_base.json"

  echo "bench: scenario 6 (subscribe): the same with $sub_count subscriptions open, one per topic"
  rm -f "$run_dir/sub_ready"
  "$bin/bench_subscribe" --url="$url" --hold --subscribers="$sub_count" --subscription=own \
    --topic-prefix=bench.sub. --topics="$sub_count" --duration=900s --drain-timeout=60s \
    --ready-file="$run_dir/sub_ready" --watch-pid="$ingest_pid" \
    --json="$run_dir/sub_hold.json" >"$run_dir/sub_hold.log" 2>&1 &
  hold_pid=$!
  for waited in $(seq 1 120); do  # bounded: 2 minutes to open them
    [[ -f $run_dir/sub_ready ]] && break
    kill -0 "$hold_pid" 2>/dev/null || break
    ((waited % 10 == 0)) && echo "bench: waiting for $sub_count subscriptions to open (${waited}s)"
    sleep 1
  done
  if [[ -f $run_dir/sub_ready ]]; then
    scenario sub_loaded "$bin/loadgen" "${single[@]}" --json="$run_dir/sub_loaded.json"
  else
    echo "bench: the $sub_count subscriptions did not open; scenario 6 skipped" >&2
  fi
  kill -TERM "$hold_pid" 2>/dev/null || true
  wait "$hold_pid" || echo "bench: bench_subscribe --hold exited with $?" >&2
  tail -n 12 "$run_dir/sub_hold.log"
}
