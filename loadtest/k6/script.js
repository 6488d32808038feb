// k6 version of loadgen's seed scenario, for the compose load profile:
// 20,000 events, 30% duplicates (within and across requests), batches of 100,
// 8 virtual users, then a wait until /stats shows every event stored once.
// Keep it in step with loadtest/loadgen.cpp (same scenario, same checks).
//
//   k6 run loadtest/k6/script.js
//   k6 run -e BASE_URL=http://ingest:8080 -e EVENTS=50000 loadtest/k6/script.js
//
// Environment: BASE_URL (http://127.0.0.1:8080), EVENTS (20000), BATCH (100),
// VUS (8), DUPLICATES (0.3), TOPICS (10), PAYLOAD_BYTES (200), SEED (42),
// TOKEN (bearer token when ingest has INGEST_API_TOKENS), DRAIN_SECONDS (120).
import http from 'k6/http';
import exec from 'k6/execution';
import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const EVENTS = parseInt(__ENV.EVENTS || '20000', 10);
const BATCH = parseInt(__ENV.BATCH || '100', 10);
const VUS = parseInt(__ENV.VUS || '8', 10);
const DUPLICATES = parseFloat(__ENV.DUPLICATES || '0.3');
const TOPICS = parseInt(__ENV.TOPICS || '10', 10);
const PAYLOAD_BYTES = parseInt(__ENV.PAYLOAD_BYTES || '200', 10);
const SEED = parseInt(__ENV.SEED || '42', 10);
const DRAIN_SECONDS = parseInt(__ENV.DRAIN_SECONDS || '120', 10);
const REQUESTS = Math.ceil(EVENTS / BATCH);
const RECENT_KEYS = 10000; // as loadgen: duplicates across requests repeat a recent key
const MAX_ATTEMPTS = 10;   // per request: the first send and its retries after 503/429

// An event re-sent after a 503 may have reached the broker the first time,
// and then its re-send counts as a duplicate too. As loadgen, the check is
// duplicate_dropped in [planned, planned + such re-sends]. Virtual users
// share no state with teardown, so one counter carries it: every re-send
// after a 503 adds 1, teardown subtracts the duplicates beyond the planned
// ones, and its threshold count>=0 is the upper bound (the lower bound is a
// teardown check).
const duplicateMargin = new Counter('duplicate_margin');

const HEADERS = { 'Content-Type': 'application/json' };
if (__ENV.TOKEN) HEADERS.Authorization = `Bearer ${__ENV.TOKEN}`;

export const options = {
  scenarios: {
    seed: { executor: 'shared-iterations', vus: VUS, iterations: REQUESTS, maxDuration: '5m' },
  },
  setupTimeout: '60s',
  teardownTimeout: `${DRAIN_SECONDS + 30}s`,
  thresholds: {
    http_req_failed: ['rate<0.01'],                       // error rate
    'http_req_duration{name:publish}': ['p(95)<500'],     // publish latency
    checks: ['rate==1.0'],                                // every answer and the /stats checks
    duplicate_margin: ['count>=0'],                       // no more duplicates than 503 re-sends explain
  },
};

// A deterministic hash of (seed, slot, salt) in [0, 1): no shared state is
// needed, so every virtual user derives the same plan.
function unit(slot, salt) {
  let h = Math.imul(SEED ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(slot + 1, 0xc2b2ae35) ^ salt;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}

// Slot s (0..EVENTS-1) is a duplicate with probability DUPLICATES (never the
// first). A duplicate repeats an earlier slot of its own request half of the
// time (when there is one), a recent slot otherwise; a key is its first
// slot's number.
function isDuplicate(slot) {
  return slot > 0 && unit(slot, 1) < DUPLICATES;
}
function keyOf(slot) {
  while (isDuplicate(slot)) {
    const first = slot - (slot % BATCH);
    if (slot > first && unit(slot, 2) < 0.5) {
      slot = first + Math.floor(unit(slot, 3) * (slot - first));
    } else {
      slot -= 1 + Math.floor(unit(slot, 4) * Math.min(slot, RECENT_KEYS));
    }
  }
  return slot;
}

const PAD = 'abcdefghijklmnopqrstuvwxyz'.repeat(Math.ceil(PAYLOAD_BYTES / 26) + 1);

function event(runId, key) {
  const head = `{"i":${key},"pad":"`;
  const pad = Math.max(0, PAYLOAD_BYTES - head.length - 2);
  return {
    topic: `loadtest.t${key % TOPICS}`,
    event_id: `${runId}-${key}`,
    timestamp: new Date(Date.UTC(2026, 0, 1) + key).toISOString(),
    source: 'k6',
    payload: { i: key, pad: PAD.substring(0, pad) },
  };
}

function stats() {
  const r = http.get(`${BASE_URL}/stats`, { headers: HEADERS, tags: { name: 'stats' } });
  return r.status === 200 ? r.json() : null;
}

export function setup() {
  let duplicates = 0;
  for (let s = 0; s < EVENTS; s++) if (isDuplicate(s)) duplicates++;
  const before = stats();
  if (!before) throw new Error(`no GET /stats from ${BASE_URL}`);
  // A fresh prefix per run: the stack may already hold an earlier run's keys.
  const runId = `k${Date.now().toString(16)}`;
  return { runId, before, unique: EVENTS - duplicates, duplicates };
}

export default function (data) {
  const request = exec.scenario.iterationInTest;
  const first = request * BATCH;
  let events = [];
  for (let s = first; s < Math.min(first + BATCH, EVENTS); s++) events.push(event(data.runId, keyOf(s)));
  // 503: retry only the events that failed, so that the accepted ones do not
  // come back as duplicates; 429: retry them all, nothing was published.
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const r = http.post(`${BASE_URL}/publish`, JSON.stringify(events),
      { headers: HEADERS, tags: { name: 'publish' } });
    if (r.status === 200) {
      check(r, { 'every event accepted or duplicate': (x) => x.json('rejected') === 0 && x.json('failed') === 0 });
      return;
    }
    if (r.status !== 503 && r.status !== 429) {
      check(r, { 'publish answered 200': () => false });
      return;
    }
    if (r.status === 503) {
      const results = r.json('results');
      if (results) events = results.filter((x) => x.status === 'failed').map((x) => events[x.index]);
      if (events.length === 0) return;
      // The failed events (all of them without results) may be in the
      // stream already: their re-send may add a duplicate.
      if (attempt + 1 < MAX_ATTEMPTS) duplicateMargin.add(events.length);
    }
    sleep(Math.min(parseInt(r.headers['Retry-After'] || '1', 10), 5));
  }
  check(null, { 'publish eventually answered 200': () => false });
}

export function teardown(data) {
  const grew = (x, name) => x[name] - data.before[name];
  const deadline = Date.now() + DRAIN_SECONDS * 1000;
  let s = stats();
  while (Date.now() < deadline) {
    if (s && s.pending === 0 && grew(s, 'unique_processed') >= data.unique &&
        grew(s, 'duplicate_dropped') >= data.duplicates) break;
    sleep(0.25);
    s = stats();
  }
  // The duplicates beyond the planned ones, which the 503 re-sends must cover.
  if (s) duplicateMargin.add(-(grew(s, 'duplicate_dropped') - data.duplicates));
  check(s, {
    'unique_processed grew by the unique events sent':
      (x) => x && grew(x, 'unique_processed') === data.unique,
    'duplicate_dropped grew by at least the duplicates sent (at most 503 re-sends more)':
      (x) => x && grew(x, 'duplicate_dropped') >= data.duplicates,
    'nothing dead-lettered': (x) => x && grew(x, 'dead_lettered') === 0,
    'nothing pending': (x) => x && x.pending === 0,
    'received = unique_processed + duplicate_dropped + dead_lettered':
      (x) => x && x.received === x.unique_processed + x.duplicate_dropped + x.dead_lettered,
  });
}
