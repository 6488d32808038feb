#!/usr/bin/env bash
# Builds the runtime image of the Dockerfile with Debian's podman and runs it:
# processor and ingest from the image, as its non-root user, against a
# nats-server (JetStream) and a PostgreSQL cluster of their own, and one event
# sent through ingest end to end until GET /events returns it.
#
#   scripts/check-image.sh [BUILD_DIR]      (default: build; CI runs it after make test)
#
# To stay quick it does not compile inside the image: the Dockerfile target
# runtime-prebuilt is the runtime image (same runtime-base stage: packages of
# scripts/packages-runtime.txt, user pipeline with uid 10001, same ENV and
# CMD) with BUILD_DIR's ingest and processor, stripped as the build stage
# strips them, instead of the build stage's.
#
# scripts/podman-setup.sh sets podman up first when it is missing. The base images and the image's package layer stay in podman's
# storage, so later runs only copy the binaries in: about a minute the first
# time on a machine (debootstrap), 5-15 s afterwards. Everything else it
# starts (containers, servers, temporary directories) is removed on exit.
#
# Environment: IMAGE (tag to build, default event-pipeline:check),
# READY_TIMEOUT and EVENT_TIMEOUT (seconds, default 60 and 30).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
build_dir=${1:-build}
[[ $build_dir == /* ]] || build_dir=$ROOT/$build_dir
IMAGE=${IMAGE:-event-pipeline:check}
READY_TIMEOUT=${READY_TIMEOUT:-60}
EVENT_TIMEOUT=${EVENT_TIMEOUT:-30}
PIPELINE_UID=10001  # the Dockerfile's user pipeline (compose.yaml's PIPELINE_UID)
export DEBIAN_FRONTEND=noninteractive

say() { echo "check-image: $*"; }
fail() {
  echo "check-image: FAIL: $*" >&2
  exit 1
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }
seconds_since() {  # seconds_since MS: elapsed time as 12.3
  local ms=$(($(now_ms) - $1))
  printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100))
}
script_start=$(now_ms)
step_number=0
step() {  # step DESCRIPTION FUNCTION [ARGS...]: runs it, prints its wall time
  local description=$1 t0
  shift
  step_number=$((step_number + 1))
  say "[$step_number] $description ..."
  t0=$(now_ms)
  "$@"
  say "[$step_number] $description: ok ($(seconds_since "$t0"))"
}

[[ $(id -u) -eq 0 ]] || fail "run as root (it installs packages and runs rootful podman)"

# --- cleanup -------------------------------------------------------------------

work=""          # temporary directory: staged binaries, server data and logs
containers=()    # containers this run started
stack=""         # scripts/stack.sh's data directory for the servers
nats_port="" pg_port="" metrics_port="" http_port=""

dump_logs() {  # the last lines of every log of this run, for a failure
  local c
  for c in "${containers[@]}"; do
    podman container exists "$c" 2>/dev/null || continue
    echo "---- podman logs $c (last 40 lines; state $(podman inspect -f '{{.State.Status}} exit={{.State.ExitCode}}' "$c" 2>/dev/null))" >&2
    podman logs --tail 40 "$c" >&2 2>&1 || true
  done
  if [[ -n $work ]]; then
    local log
    for log in "$stack"/logs/nats.log "$stack"/postgres/server.log; do
      [[ -s $log ]] || continue
      echo "---- $log (last 10 lines)" >&2
      tail -n 10 "$log" >&2 || true
    done
    [[ -s $work/ready.json ]] && echo "---- last answer of GET /ready: $(cat "$work/ready.json")" >&2
  fi
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  [[ $status -eq 0 ]] || dump_logs
  local c
  for c in "${containers[@]}"; do
    podman rm -f -t 5 "$c" >/dev/null 2>&1
  done
  [[ -n $stack ]] && stack_sh stop >/dev/null 2>&1
  [[ -n $work ]] && rm -rf "$work"
  if [[ $status -eq 0 ]]; then
    say "passed in $(seconds_since "$script_start")"
  else
    say "FAILED (exit $status) after $(seconds_since "$script_start")" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers ---------------------------------------------------------------------

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s until it
# succeeds; fails after SECONDS, or at once when a container of this run died.
wait_until() {
  local seconds=$1 what=$2 deadline c
  shift 2
  deadline=$(($(now_ms) + seconds * 1000))
  while true; do
    "$@" >/dev/null 2>&1 && return 0
    for c in "${containers[@]}"; do
      [[ $(podman inspect -f '{{.State.Running}}' "$c" 2>/dev/null) == true ]] ||
        fail "container $c stopped while waiting for $what"
    done
    (($(now_ms) < deadline)) || fail "$what: not within ${seconds}s"
    sleep 0.2
  done
}

used_ports=" "
free_port() {  # free_port VAR: a loopback port nobody listens on, not handed out before
  local port
  for _ in $(seq 200); do
    port=$((20000 + RANDOM % 12000))  # below Linux's ephemeral range (32768-)
    [[ $used_ports == *" $port "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      used_ports+="$port "
      printf -v "$1" '%s' "$port"
      return 0
    fi
  done
  fail "no free loopback port found"
}

# scripts/stack.sh on this run's ports and directory: the servers `make run`
# starts, started the same way.
stack_sh() { DATA_DIR=$stack NATS_PORT=$nats_port PG_PORT=$pg_port scripts/stack.sh "$@"; }

# --- 1. podman: scripts/podman-setup.sh -------------------------------------------

# --- 2. the image ------------------------------------------------------------------

stage_binaries() {
  work=$(mktemp -d /tmp/check-image.XXXXXX)
  chmod 0711 "$work"  # the postgres user must reach its data directory below
  mkdir -p "$work/prebuilt"
  local binary source
  for binary in ingest processor; do
    source=$build_dir/$binary/$binary
    [[ -x $source ]] || fail "$source missing: build first (make build BUILD_DIR=...)"
    # A copy first: BUILD_DIR may be rebuilt meanwhile.
    cp "$source" "$work/$binary.unstripped"
    readelf -h "$work/$binary.unstripped" >/dev/null 2>&1 || fail "$source is not an ELF file (being rebuilt?)"
    if readelf -d "$work/$binary.unstripped" | grep -Eq 'NEEDED.*lib(a|t|ub|l)san'; then
      fail "$source is a sanitizer build; pass a normal build directory"
    fi
    strip --strip-debug -o "$work/prebuilt/$binary" "$work/$binary.unstripped"
    rm -f "$work/$binary.unstripped"
    chmod 0755 "$work/prebuilt/$binary"
    if readelf -S -W "$work/prebuilt/$binary" | grep -q '\.debug_'; then
      fail "$binary still has debug sections after strip --strip-debug"
    fi
    say "$binary: $(du -h "$source" | cut -f1) -> $(du -h "$work/prebuilt/$binary" | cut -f1) stripped ($(readelf -h "$work/prebuilt/$binary" | awk -F: '/Machine/ {gsub(/^ +/, "", $2); print $2}'))"
  done
}

build_image() {
  local old new
  old=$(podman image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  podman build --network host -f Dockerfile --target runtime-prebuilt \
    --build-context "prebuilt=$work/prebuilt" -t "$IMAGE" . >"$work/build.log" 2>&1 ||
    { tail -n 40 "$work/build.log" >&2; fail "podman build failed"; }
  local steps cached
  steps=$(grep -E '^\[[0-9/]+\] STEP' "$work/build.log" | grep -vc ' STEP [0-9/]*: FROM ' || true)
  cached=$(grep -c '^--> Using cache' "$work/build.log" || true)
  say "build steps: $((steps - cached)) run, $cached from podman's cache"
  new=$(podman image inspect -f '{{.Id}}' "$IMAGE")
  # The previous build of this tag is now unused: don't let runs pile up images.
  if [[ -n $old && $old != "$new" ]]; then
    podman rmi "$old" >/dev/null 2>&1 || true
  fi
  say "built $IMAGE (${new:0:12}, $(podman image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}'))"
}

check_image() {
  local user ldd_out
  user=$(podman image inspect -f '{{.Config.User}}' "$IMAGE")
  [[ -n $user && $user != root && $user != 0 && $user != 0:* ]] ||
    fail "$IMAGE runs as '${user:-root}'; it should run as a non-root user"
  # Every library the binaries ask for is in the image (scripts/packages-runtime.txt).
  ldd_out=$(podman run --rm --network none --entrypoint ldd "$IMAGE" \
    /usr/local/bin/ingest /usr/local/bin/processor 2>&1) || {
    echo "$ldd_out" >&2
    fail "ldd failed in the image"
  }
  if grep -Eq 'not found|version .* not found' <<<"$ldd_out"; then
    grep -E 'not found' <<<"$ldd_out" >&2
    fail "libraries missing in $IMAGE: add their packages to scripts/packages-runtime.txt"
  fi
  # The image holds exactly the staged binaries (no stale layer from the cache).
  local in_image staged
  in_image=$(podman run --rm --network none --entrypoint sha256sum "$IMAGE" \
    /usr/local/bin/ingest /usr/local/bin/processor | awk '{print $1}')
  staged=$(sha256sum "$work/prebuilt/ingest" "$work/prebuilt/processor" | awk '{print $1}')
  [[ $in_image == "$staged" ]] || fail "the binaries in $IMAGE are not the ones staged from $build_dir"
  # The binaries start in the image (dynamic linking, symbol versions).
  local binary
  for binary in ingest processor; do
    podman run --rm --network none "$IMAGE" "$binary" --help >"$work/$binary-help.txt" 2>&1 ||
      { cat "$work/$binary-help.txt" >&2; fail "$binary --help failed in the image"; }
  done
  say "user $user; ldd finds all $(grep -c '=>' <<<"$ldd_out") libraries; ingest and processor --help run"
}

# --- 3. servers ------------------------------------------------------------------------

start_servers() {
  free_port nats_port
  free_port pg_port
  stack=$work/stack
  stack_sh servers || fail "scripts/stack.sh servers failed"
  say "nats-server -js on 127.0.0.1:$nats_port, PostgreSQL on 127.0.0.1:$pg_port (in $stack)"
}

# --- 4. containers -------------------------------------------------------------------------

run_service() {  # run_service NAME ENV...: detached, host network, the image's own user
  local service=$1 name
  shift
  name=check-image-$$-$service
  local env_args=() assignment
  for assignment in "$@"; do env_args+=(-e "$assignment"); done
  # Not --rm: the logs of a container that exits are still there to show;
  # cleanup removes it.
  containers+=("$name")
  podman run -d --name "$name" --network host \
    -e "NATS_URL=nats://127.0.0.1:$nats_port" \
    -e "DATABASE_URL=postgresql://postgres@127.0.0.1:$pg_port/events" \
    -e LOG_LEVEL=info "${env_args[@]}" "$IMAGE" "$service" >/dev/null ||
    fail "podman run $service failed"
}

check_user() {  # check_user CONTAINER: the service runs as uid PIPELINE_UID, not root
  local container=$1 uid pid host_uids
  uid=$(podman exec "$container" id -u) || fail "podman exec $container id -u failed"
  [[ $uid == "$PIPELINE_UID" ]] || fail "$container runs as uid $uid, expected $PIPELINE_UID"
  # The service process itself, seen from the host (rootful podman: no user namespace).
  pid=$(podman inspect -f '{{.State.Pid}}' "$container")
  host_uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
  [[ $host_uids == "$PIPELINE_UID $PIPELINE_UID $PIPELINE_UID $PIPELINE_UID" ]] ||
    fail "$container's process $pid has uids $host_uids, expected $PIPELINE_UID"
  say "$container: uid $uid ($(podman exec "$container" id -un)), process $pid ($(tr -d '\0' <"/proc/$pid/comm"))"
}

start_services() {
  free_port metrics_port
  free_port http_port
  run_service processor "PROCESSOR_METRICS_ADDRESS=127.0.0.1:$metrics_port"
  run_service ingest INGEST_HTTP_ADDRESS=127.0.0.1 "INGEST_HTTP_PORT=$http_port"
  check_user "${containers[0]}"
  check_user "${containers[1]}"
}

# --- 5. one event end to end -----------------------------------------------------------------

ingest_ready() {  # GET /ready answers 200; its last answer stays in ready.json
  [[ $(curl -sS -o "$work/ready.json" -w '%{http_code}' "http://127.0.0.1:$http_port/ready") == 200 ]]
}

wait_ready() {
  wait_until "$READY_TIMEOUT" "ingest's GET /ready on 127.0.0.1:$http_port" ingest_ready
  wait_until 20 "the processor's GET /metrics on 127.0.0.1:$metrics_port" \
    curl -fsS -o /dev/null "http://127.0.0.1:$metrics_port/metrics"
  say "ready: $(cat "$work/ready.json")"
}

send_event() {
  topic=image.check.r$$
  event_id=image-check-$(date +%s%N)
  timestamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  event=$(jq -cn --arg topic "$topic" --arg id "$event_id" --arg ts "$timestamp" \
    '{topic: $topic, event_id: $id, timestamp: $ts, source: "check-image",
      payload: {step: "end-to-end", n: 42, nested: {list: [1, "two", null, true]}}}')
  local status
  status=$(curl -sS -o "$work/publish.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "$event" "http://127.0.0.1:$http_port/publish") || fail "POST /publish: curl failed"
  [[ $status == 200 ]] || fail "POST /publish answered $status: $(cat "$work/publish.json")"
  jq -e '.accepted == 1 and .results[0].status == "accepted"' "$work/publish.json" >/dev/null ||
    fail "POST /publish did not accept the event: $(cat "$work/publish.json")"
  say "POST /publish: 200 $(jq -c '{accepted, results}' "$work/publish.json")"
}

event_stored() {
  curl -fsS -o "$work/events.json" "http://127.0.0.1:$http_port/events?topic=$topic" &&
    jq -e '.count >= 1' "$work/events.json"
}

check_stored() {
  wait_until "$EVENT_TIMEOUT" "the event in GET /events?topic=$topic" event_stored
  # Exactly the event sent: same fields, payload equal as JSON, timestamp the
  # same instant (stored in UTC, perhaps with a zero fraction).
  jq -e --argjson sent "$event" '
      .count == 1 and (.events | length) == 1 and
      (.events[0] | .topic == $sent.topic and .event_id == $sent.event_id and
                    .source == $sent.source and .payload == $sent.payload and
                    (.timestamp | sub("\\.0+Z$"; "Z")) == $sent.timestamp)' \
    "$work/events.json" >/dev/null ||
    fail "GET /events returned another event than was sent:
  sent:   $event
  stored: $(cat "$work/events.json")"
  say "GET /events: $(jq -c '.events[0] | {topic, event_id, timestamp, stored_at}' "$work/events.json")"
}

# --- 6. stop -----------------------------------------------------------------------------------

stop_services() {  # SIGTERM as compose would send it: each service must exit 0 in time
  local c t0 code
  for c in "${containers[1]}" "${containers[0]}"; do
    t0=$(now_ms)
    podman stop -t 20 "$c" >/dev/null || fail "podman stop $c failed"
    code=$(podman inspect -f '{{.State.ExitCode}}' "$c")
    [[ $code == 0 ]] || fail "$c exited with $code on SIGTERM (137: it had to be killed)"
    say "$c stopped on SIGTERM, exit 0 ($(seconds_since "$t0"))"
  done
}

say "image $IMAGE from $build_dir"
step "podman, runc, base images debian:12 and debian:12-slim" scripts/podman-setup.sh
step "stage stripped binaries from $build_dir" stage_binaries
step "build $IMAGE (target runtime-prebuilt)" build_image
step "check the image: user, ldd, --help" check_image
step "start nats-server and PostgreSQL (scripts/stack.sh servers)" start_servers
step "run processor and ingest containers" start_services
step "wait for /ready" wait_ready
step "publish one event" send_event
step "wait for the event in GET /events" check_stored
step "stop the containers" stop_services
