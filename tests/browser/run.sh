#!/usr/bin/env bash
# The live page (GET /) in a real browser: Debian's chromium, headless, driven
# by playwright-core (tests/browser/live_page.test.mjs, node's test runner).
#
#   tests/browser/run.sh [BUILD_DIR]     (default: build)
#
# Installs what is missing (Debian's chromium; tests/browser/node_modules with
# `npm ci` when absent or older than package-lock.json), copies BUILD_DIR's
# ingest and processor to a temporary directory (a rebuild cannot change them
# under the test) and starts a stack there with scripts/stack.sh on free
# loopback ports, like loadtest/smoke_test.sh, plus a second ingest of its own
# (the "side" ingest) that takes events while the stack's ingest is down. The
# test restarts the stack's ingest itself (SIGTERM to the pid in
# DATA_DIR/run/ingest.pid, then scripts/stack.sh start, with
# INGEST_API_TOKENS for the token scenario). Everything is stopped and the
# directory removed whatever happens. Any failure exits non-zero.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
started=$SECONDS

step() { printf 'browser: [%3d s] %s\n' "$((SECONDS - started))" "$*"; }
fail() { printf 'browser: FAILED: %s\n' "$*" >&2; exit 1; }

[[ -d $build ]] || fail "build directory $build not found (make build)"
build=$(cd "$build" && pwd)
for binary in ingest processor; do
  [[ -x $build/$binary/$binary ]] || fail "$build/$binary/$binary missing (make build)"
done

# --- node and npm ----------------------------------------------------------
step "checking node and npm"
command -v node >/dev/null || fail "node not found: node >= 20 with npm is needed (package nodejs)"
command -v npm >/dev/null || fail "npm not found: node >= 20 with npm is needed"
node_major=$(node -p 'process.versions.node.split(".")[0]')
((node_major >= 20)) || fail "node $(node --version) is too old: playwright-core needs node >= 20"

# --- chromium --------------------------------------------------------------
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x $CHROMIUM ]]; then
  [[ $CHROMIUM == /usr/bin/chromium ]] || fail "CHROMIUM=$CHROMIUM is not an executable"
  step "chromium missing: installing Debian's chromium with apt-get"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo -n)
  export DEBIAN_FRONTEND=noninteractive
  if ! { "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 ||
         { "${sudo_cmd[@]}" apt-get update -qq &&
           "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; }; then
    fail "cannot install chromium (apt-get install chromium as root, or set CHROMIUM)"
  fi
  [[ -x $CHROMIUM ]] || fail "apt-get installed chromium but $CHROMIUM is still missing"
fi
# The Debian launcher reads /etc/chromium.d/*; its stderr noise is not ours.
chromium_version=$("$CHROMIUM" --version 2>/dev/null) || fail "$CHROMIUM --version failed"
step "using $chromium_version ($CHROMIUM)"

# --- playwright-core from package-lock.json ---------------------------------
lock_sum=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
stamp=$here/node_modules/.installed-from-lock
if [[ ! -f $stamp || $(cat "$stamp") != "$lock_sum" || ! -d $here/node_modules/playwright-core ]]; then
  step "npm ci in tests/browser (node_modules missing or package-lock.json changed)"
  # playwright-core never downloads browsers; the variable makes sure of it.
  if ! (cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error); then
    fail "npm ci failed in $here"
  fi
  echo "$lock_sum" >"$stamp"
else
  step "node_modules up to date with package-lock.json"
fi

# --- a stack of our own -------------------------------------------------------
# free_port (and the other helpers of scripts/bench.sh)
source "$root/scripts/bench/lib.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/browser-test.XXXXXX")
chmod 755 "$work"  # the postgres user must reach its data directory
mkdir -p "$work/bin/ingest" "$work/bin/processor"
cp "$build/ingest/ingest" "$work/bin/ingest/ingest"
cp "$build/processor/processor" "$work/bin/processor/processor"
export BUILD_DIR=$work/bin DATA_DIR=$work/data
mkdir -p "$DATA_DIR/logs"
taken=""
NATS_PORT=$(free_port); taken="$NATS_PORT"
PG_PORT=$(free_port); taken="$taken $PG_PORT"
INGEST_HTTP_PORT=$(free_port); taken="$taken $INGEST_HTTP_PORT"
side_port=$(free_port)
export NATS_PORT PG_PORT INGEST_HTTP_PORT
# Not the caller's: stack.sh derives them from the ports when they are unset,
# and the stack starts without tokens (the test restarts ingest with some).
unset NATS_URL DATABASE_URL INGEST_API_TOKENS
side_pid=""

cleanup() {
  local status=$?
  trap - EXIT TERM INT
  if [[ $status -ne 0 ]]; then
    # Enough to explain a failure afterwards: what ran, and the last log lines.
    "$root/scripts/stack.sh" status >&2 || true
    tail -n 25 "$DATA_DIR"/logs/processor.log "$DATA_DIR"/logs/ingest.log \
      "$DATA_DIR"/logs/ingest-side.log >&2 2>/dev/null || true
  fi
  step "stopping the stack"
  if [[ -n $side_pid ]] && kill -0 "$side_pid" 2>/dev/null; then
    kill -TERM "$side_pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$side_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$side_pid" 2>/dev/null || true
  fi
  "$root/scripts/stack.sh" stop >/dev/null 2>&1 || true
  rm -rf "$work"
  if [[ $status -eq 0 ]]; then
    step "passed in $((SECONDS - started)) s"
  else
    printf 'browser: FAILED (exit %d) after %d s\n' "$status" "$((SECONDS - started))" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

step "starting a stack on 127.0.0.1 (nats $NATS_PORT, postgres $PG_PORT, ingest $INGEST_HTTP_PORT) in $work"
if ! timeout --foreground 150 "$root/scripts/stack.sh" start >"$work/stack-start.log" 2>&1; then
  cat "$work/stack-start.log" >&2
  tail -n 30 "$DATA_DIR"/logs/*.log >&2 || true
  fail "the stack did not start"
fi

step "starting the side ingest on 127.0.0.1:$side_port (publishes while the stack's ingest is down)"
INGEST_HTTP_PORT=$side_port NATS_URL=nats://127.0.0.1:$NATS_PORT \
  DATABASE_URL=postgresql://postgres@127.0.0.1:$PG_PORT/events \
  setsid "$BUILD_DIR/ingest/ingest" >>"$DATA_DIR/logs/ingest-side.log" 2>&1 </dev/null &
side_pid=$!
for ((i = 0; i < 300; i++)); do
  curl -fsS "http://127.0.0.1:$side_port/health" >/dev/null 2>&1 && break
  kill -0 "$side_pid" 2>/dev/null || fail "the side ingest exited; see its log above"
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$side_port/health" >/dev/null 2>&1 || fail "the side ingest did not come up in 30 s"

step "running live_page.test.mjs (chromium headless)"
export INGEST_URL=http://127.0.0.1:$INGEST_HTTP_PORT
export INGEST_SIDE_URL=http://127.0.0.1:$side_port
export STACK_SH=$root/scripts/stack.sh
# Bounded well below CTest's TIMEOUT: a test killed by CTest would never run
# the cleanup above.
cd "$here"
timeout --foreground 150 node --test --test-reporter=spec live_page.test.mjs
