# Helpers of scripts/bench.sh (sourced). They read the stack's pid files under
# $DATA_DIR/run and the PostgreSQL postmaster.pid.

free_port() {  # a loopback port nothing listens on, not in $taken
  local port
  for _ in $(seq 1 200); do
    # Below Linux's ephemeral range (32768-): a port from that range can be
    # taken as the source port of any outgoing connection (the stack's own
    # connections to nats-server and PostgreSQL) between this check and the
    # server's bind; seen as "Address already in use".
    port=$((20000 + RANDOM % 12000))
    [[ " ${taken:-} " == *" $port "* ]] && continue
    if ! (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  echo "bench: no free port found" >&2
  return 1
}

stack_ports() {  # free loopback ports for scripts/stack.sh's four listeners, exported
  NATS_PORT=$(free_port) && taken=$NATS_PORT
  PG_PORT=$(free_port) && taken="$taken $PG_PORT"
  INGEST_HTTP_PORT=$(free_port) && taken="$taken $INGEST_HTTP_PORT"
  PROCESSOR_METRICS_PORT=$(free_port)
  export NATS_PORT PG_PORT INGEST_HTTP_PORT PROCESSOR_METRICS_PORT
}

pid_of() {  # pid_of ingest|processor|nats|postgres
  if [[ $1 == postgres ]]; then head -1 "$DATA_DIR/postgres/postmaster.pid"; else cat "$DATA_DIR/run/$1.pid"; fi
}

cpu_ticks() {  # cpu_ticks PID [with_children]: utime+stime (+cutime+cstime) in clock ticks
  # Fields after the ")" that closes the command name: state is 1, utime 12.
  sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null |
    awk -v kids="${2:-0}" '{ t = $12 + $13; if (kids) t += $14 + $15; print t }'
}

postgres_ticks() {  # the postmaster, its reaped children, and its live children
  local pm total pid
  pm=$(pid_of postgres)
  total=$(cpu_ticks "$pm" 1)
  for pid in $(ps -o pid= --ppid "$pm"); do
    total=$((total + $(cpu_ticks "$pid" || echo 0)))
  done
  echo "$total"
}

children_ticks() {  # children_ticks FILE: CPU of finished children in a `times` output
  awk -v hz="$(getconf CLK_TCK)" 'NR == 2 {
    t = 0
    for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); t += p[1] * 60 + p[2] }
    printf "%d\n", t * hz
  }' "$1"
}

all_ticks() {  # every process's own and reaped children's CPU, in ticks: the machine's
  # work with per-process (precise) accounting, unlike the tick-sampled /proc/stat
  cat /proc/[0-9]*/stat 2>/dev/null | sed 's/^.*) //' | awk '{ t += $12 + $13 + $14 + $15 } END { print t }'
}

cpu_snapshot() {  # name=ticks lines
  local name
  for name in ingest processor nats; do echo "$name=$(cpu_ticks "$(pid_of "$name")")"; done
  echo "postgres=$(postgres_ticks)"
  echo "system=$(all_ticks)"
  echo "wall=$(date +%s.%N)"
}

storage_json() {  # storage_json FILE: what the events table takes (scripts/bench/storage.sql)
  local pg_bin
  pg_bin=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
  "$pg_bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d events -Atq \
    -f "$(dirname "${BASH_SOURCE[0]}")/storage.sql" >"$1"
}

wait_for_quiet() {  # wait_for_quiet SECONDS: until the 1-minute load is under 0.5 (bounded)
  local waited=0
  while awk '{ exit !($1 >= 0.5) }' /proc/loadavg && ((waited < $1)); do
    ((waited % 60 == 0)) && echo "bench: machine busy (load $(cut -d' ' -f1 /proc/loadavg)); waiting up to $1 s for it to calm down"
    sleep 5
    waited=$((waited + 5))
  done
}

# scenario NAME COMMAND...: runs COMMAND and writes NAME.cpu (CPU seconds of
# each component and the wall time over the scenario). A failing run is
# recorded (loadgen's JSON says what failed), not fatal.
scenario() {
  local name=$1 rc=0
  shift
  local before after times_file
  times_file=$(mktemp)
  # `times` in this shell (not in a $(...) subshell): the CPU of loadgen.
  times >"$times_file.before"
  before=$(cpu_snapshot)
  "$@" || rc=$?
  after=$(cpu_snapshot)
  times >"$times_file.after"
  before+=$'\n'"loadgen=$(children_ticks "$times_file.before")"
  after+=$'\n'"loadgen=$(children_ticks "$times_file.after")"
  rm -f "$times_file" "$times_file.before" "$times_file.after"
  [[ $rc -eq 0 ]] || echo "bench: scenario $name exited with $rc" >&2
  # "other" is what the rest of the machine used meanwhile (builds, tests of
  # other people): it skews the figures when it is not near zero.
  awk -F= -v hz="$(getconf CLK_TCK)" '
    NR == FNR { b[$1] = $2; next }
    { d = $2 - b[$1]; if ($1 != "wall") d /= hz; v[$1] = d; printf "%s=%.3f\n", $1, d }
    END { printf "other=%.3f\n", v["system"] - v["ingest"] - v["processor"] - v["nats"] - v["postgres"] - v["loadgen"] }
  ' <(echo "$before") <(echo "$after") >"$run_dir/$name.cpu"
}

sample_rss() {  # sample_rss FILE: every second, RSS (kB) and CPU (ticks) of each component
  # unix: epoch seconds; *_cpu: cumulative utime+stime; all_cpu: every process (see cpu_snapshot)
  local name pid line
  echo "unix ingest processor nats ingest_cpu processor_cpu nats_cpu postgres_cpu all_cpu" >"$1"
  for _ in $(seq 1 7200); do  # bounded to 2 h
    line=$(date +%s.%N)
    for name in ingest processor nats; do
      pid=$(pid_of "$name")
      line="$line $(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)"
    done
    for name in ingest processor nats; do line="$line $(cpu_ticks "$(pid_of "$name")" || echo 0)"; done
    line="$line $(postgres_ticks) $(all_ticks)"
    echo "$line" >>"$1"
    sleep 1
  done
}

peak_rss() {  # name=VmHWM (kB) of each service: its peak RSS since it started
  local name
  for name in ingest processor nats; do
    echo "$name=$(awk '/^VmHWM:/ { print $2 }' "/proc/$(pid_of "$name")/status")"
  done
}

write_env() {  # write_env FILE: the machine and versions, key=value
  local pg_bin
  pg_bin=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
  {
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cores=$(nproc)"
    echo "clk_tck=$(getconf CLK_TCK)"
    echo "memory_mib=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)"
    echo "cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "kernel=$(uname -r)"
    echo "nats_server=$(nats-server --version 2>&1 | head -1)"
    echo "postgres=$("$pg_bin/postgres" --version | head -1)"
    echo "gxx=$(g++ --version | head -1)"
    echo "commit=$(git describe --always --dirty 2>/dev/null || echo unknown)"
    echo "build_type=$(awk -F= '/^CMAKE_BUILD_TYPE:/ { print $2 }' "$BUILD_DIR/CMakeCache.txt")"
  } >"$1"
}
