// The live page (GET /) in Debian's chromium, headless, driven by
// playwright-core: events published with fetch appear once each, newest
// first; the topic filter, the stats counters, a restart of ingest (the page
// resumes with Last-Event-ID) and API tokens (never in a URL).
//
// Run by tests/browser/run.sh, which starts the stack and sets:
//   INGEST_URL       the stack's ingest, which the tests stop and restart
//   INGEST_SIDE_URL  a second ingest on the same servers: it takes the events
//                    published while the first one is down
//   STACK_SH, DATA_DIR (and the ports, BUILD_DIR)  to restart ingest:
//                    SIGTERM to DATA_DIR/run/ingest.pid, then `STACK_SH start`
//   CHROMIUM         the browser (default /usr/bin/chromium)
// Every wait is a poll with a deadline; none is a fixed sleep.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { execFile } from "node:child_process";
import { chromium } from "playwright-core";

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run tests/browser/run.sh`);
  return value;
}
const INGEST_URL = env("INGEST_URL");
const SIDE_URL = env("INGEST_SIDE_URL");
const STACK_SH = env("STACK_SH");
const DATA_DIR = env("DATA_DIR");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
// Event ids of this run only: a stack that already holds events changes nothing.
const RUN = "b" + Date.now().toString(36) + Math.random().toString(36).slice(2, 6);
const TOKEN = `tok-${RUN}`;
const WAIT = 15_000;  // deadline of one wait on the page or the stack
const STATS = ["received", "unique_processed", "duplicate_dropped", "dead_lettered", "pending"];

// --- the API ------------------------------------------------------------------

let serial = 0;
function event(topic, name) {
  return { topic, event_id: `${RUN}-${name}`, timestamp: new Date().toISOString(),
           source: "browser-test", payload: { name, n: ++serial } };
}

function auth(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function publish(events, { url = INGEST_URL, token } = {}) {
  const response = await fetch(`${url}/publish`, {
    method: "POST", body: JSON.stringify(events),
    headers: { "Content-Type": "application/json", ...auth(token) },
  });
  const body = await response.text();
  assert.equal(response.status, 200, `POST ${url}/publish: ${response.status} ${body}`);
  const result = JSON.parse(body);
  assert.equal(result.accepted + result.duplicates, events.length, `publish: ${body}`);
  return result;
}

// Each batch its own request, in order, so that the stream holds the batches'
// new events in that order.
async function publishAll(batches, options) {
  let sent = 0;
  for (const batch of batches) {
    await publish(batch, options);
    sent += batch.length;
  }
  return sent;
}

async function stats({ url = INGEST_URL, token } = {}) {
  const response = await fetch(`${url}/stats`, { headers: auth(token) });
  assert.equal(response.status, 200, `GET ${url}/stats: ${response.status}`);
  return response.json();
}

// poll(what, fn): calls fn until it returns true, or fails at the deadline
// with fn's last other result (what it saw) or error.
async function poll(what, fn, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await fn();
      if (value === true) return;
      last = value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; last: ${
        last instanceof Error ? last.message : JSON.stringify(last)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// --- the stack's ingest -----------------------------------------------------

function ingestPid() {
  return Number(readFileSync(`${DATA_DIR}/run/ingest.pid`, "utf8").trim());
}

function alive(pid) {  // running and not a zombie nobody reaped
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

async function stopIngest() {
  const pid = ingestPid();
  assert.ok(alive(pid), `ingest (pid ${pid}) is not running`);
  process.kill(pid, "SIGTERM");
  await poll(`ingest (pid ${pid}) to exit after SIGTERM`, () => !alive(pid), 25_000);
  return pid;
}

// scripts/stack.sh start: starts only what is not running (here: ingest).
function startStack(extraEnv = {}) {
  return new Promise((resolve, reject) => {
    execFile("bash", [STACK_SH, "start"], { env: { ...process.env, ...extraEnv }, timeout: 90_000 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`${STACK_SH} start failed: ${error.message}\n${stdout}${stderr}`));
        else resolve(stdout);
      });
  });
}

// --- the page -----------------------------------------------------------------

let browser;
before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
                                    // root: no sandbox; no GPU, no QUIC on this closed network
                                    args: ["--no-sandbox", "--disable-gpu", "--disable-quic"] });
});
after(async () => {
  if (browser) await browser.close();
});

// A fresh browser context on `path`; records every request, every script
// error, and each text|class that #state shows (window.__states).
async function openPage(path) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const requests = [];
  const errors = [];
  page.on("request", (request) => requests.push(request));
  page.on("pageerror", (error) => errors.push(error.message));
  await page.addInitScript(() => {
    window.__states = [];
    new MutationObserver(() => {
      const state = document.getElementById("state");
      if (!state) return;
      const seen = `${state.textContent}|${state.className}`;
      if (window.__states[window.__states.length - 1] !== seen) window.__states.push(seen);
    }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  const response = await page.goto(INGEST_URL + path);
  assert.equal(response.status(), 200, `GET ${path}`);
  return { context, page, requests, errors };
}

// waitForState(page, text, kind): #state shows text (a string or a RegExp
// source) with class kind ("" for none; undefined for any).
async function waitForState(page, text, kind) {
  const wanted = text instanceof RegExp ? text.source : `^${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`;
  try {
    await page.waitForFunction(([pattern, cls]) => {
      const state = document.getElementById("state");
      return new RegExp(pattern).test(state.textContent) && (cls === null || state.className === cls);
    }, [wanted, kind === undefined ? null : kind], { timeout: WAIT, polling: 100 });
  } catch (e) {
    const now = await page.evaluate(() => [document.getElementById("state").textContent, window.__states]);
    throw new Error(`#state never showed ${wanted} (class ${kind}); it shows "${now[0]}", ` +
                    `it showed ${JSON.stringify(now[1])}`);
  }
}

const live = (page) => waitForState(page, "live", "live");

async function waitForRow(page, eventId) {
  try {
    await page.waitForFunction((id) => [...document.querySelectorAll("tbody#events tr")]
      .some((row) => row.dataset.eventId === id), eventId, { timeout: WAIT, polling: 100 });
  } catch (e) {
    const shown = (await rows(page)).map((row) => row.id);
    const state = await page.textContent("#state");
    throw new Error(`${eventId} never shown (state "${state}"; rows ${shown}): ${e.message}`);
  }
}

// The rows shown, top to bottom.
function rows(page) {
  return page.$$eval("tbody#events tr", (trs) => trs.map((tr) => ({
    id: tr.dataset.eventId, topic: tr.dataset.topic, cells: [...tr.cells].map((td) => td.textContent),
  })));
}

// Each expected event shown exactly once, in this order (each entry an event,
// or an array of events whose order among themselves the test leaves open).
async function assertRows(page, expected) {
  const shown = await rows(page);
  const ids = shown.map((row) => row.id);
  const flat = expected.flat();
  for (const e of flat) {
    assert.equal(ids.filter((id) => id === e.event_id).length, 1, `${e.event_id} shown once: ${ids}`);
  }
  assert.equal(ids.length, flat.length, `rows shown: ${ids}`);
  let at = 0;
  for (const group of expected) {
    const want = [group].flat().map((e) => e.event_id).sort();
    assert.deepEqual(ids.slice(at, at + want.length).sort(), want, `newest first: ${ids}`);
    at += want.length;
  }
  const byId = new Map(flat.map((e) => [e.event_id, e]));
  for (const row of shown) assert.equal(row.topic, byId.get(row.id).topic, `data-topic of ${row.id}`);
  assert.equal(await page.textContent("#shown"), String(flat.length), "#shown");
  return shown;
}

// The page is self-contained: every request it made went to ingest.
function assertSameOrigin(requests) {
  for (const request of requests) {
    assert.ok(request.url().startsWith(`${INGEST_URL}/`), `a request elsewhere: ${request.url()}`);
  }
}

// The page's counters equal /stats, and /stats says want (deltas from base).
async function assertStats(page, base, want, token) {
  await poll(`the page's counters to match /stats (${JSON.stringify(want)} more than before)`,
    async () => {
      const now = await stats({ token });
      for (const [name, delta] of Object.entries(want)) {
        if (now[name] - (base[name] ?? 0) !== delta) return { stats: now };
      }
      const onPage = await page.evaluate((names) =>
        names.map((name) => document.getElementById(`stat-${name}`).textContent), STATS);
      const expected = STATS.map((name) => String(now[name]));
      return JSON.stringify(onPage) === JSON.stringify(expected) || { onPage, expected };
    });
}

// --- scenario without tokens: one page through every step ---------------------

let a;  // { context, page, requests, errors }
let base;  // /stats before the first publish
let filtered;  // the events shown under the filter orders.*

test("the page goes live and shows each published event once, newest first", { timeout: 30_000 },
  async () => {
    base = await stats();
    a = await openPage("/");
    await live(a.page);
    const o1 = event("orders.created", "o1"), p1 = event("payments.settled", "p1");
    const o2 = event("orders.shipped", "o2"), u1 = event("users.signup", "u1");
    const x = [event("inventory.reserved", "x1"), event("inventory.reserved", "x2"),
               event("orders.cancelled", "x3")];
    const o3 = event("orders.created", "o3");
    // Duplicates in one request and across requests.
    const sent = await publishAll([[o1, o1], [p1], [o2, o1], [u1, p1, u1], [...x, x[0], o2],
                                   [o3, u1]]);
    // The last new event: in cursor order everything before it is shown by then.
    await waitForRow(a.page, o3.event_id);
    a.sent = sent;
    const shown = await assertRows(a.page, [o3, x, u1, o2, p1, o1]);
    const top = shown[0].cells;
    assert.equal(top.length, 5);
    assert.match(top[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/, "stored_at");
    assert.deepEqual(top.slice(1, 4), [o3.topic, o3.event_id, "browser-test"]);
    assert.deepEqual(JSON.parse(top[4]), o3.payload);
    assert.deepEqual(a.errors, [], "script errors on the page");
  });

test("the stats counters refresh to the numbers of /stats", { timeout: 30_000 }, async () => {
  assert.ok(a?.sent, "needs the events of the first test");
  await assertStats(a.page, base, { received: a.sent, unique_processed: 8,
                                    duplicate_dropped: a.sent - 8, dead_lettered: 0 });
  assert.equal((await stats()).pending, 0);
});

test("the topic filter shows only matching events after apply", { timeout: 30_000 }, async () => {
  assert.ok(a, "needs the page of the first test");
  await a.page.fill("#topic", "orders.*");
  await a.page.click("#apply");
  await live(a.page);
  assert.equal(await a.page.textContent("#shown"), "0", "apply clears the rows");
  const f1 = event("orders.created", "f1"), f2 = event("orders.refunded", "f2");
  const f3 = event("orders.created", "f3");
  await publishAll([[f1], [event("payments.settled", "f-p")], [event("orders.eu.created", "f-deep")],
                    [event("orders", "f-bare")], [f2, f1], [event("ordersx.created", "f-x")], [f3]]);
  await waitForRow(a.page, f3.event_id);
  filtered = [f3, f2, f1];
  await assertRows(a.page, filtered);
  const url = a.requests.map((r) => r.url()).filter((u) => u.includes("/subscribe")).pop();
  assert.equal(new URL(url).searchParams.get("topic"), "orders.*");
});

test("after a restart of ingest the page resumes: what was published meanwhile appears once",
  { timeout: 45_000 }, async () => {
    assert.ok(a && filtered, "needs the page of the previous tests");
    await a.page.evaluate(() => { window.__states = []; });
    const seen = a.requests.length;
    const oldPid = await stopIngest();
    await waitForState(a.page, /resuming/);
    const r1 = event("orders.created", "r1"), r2 = event("orders.updated", "r2");
    const r3 = event("orders.created", "r3");
    // Through the side ingest: the page's is down. f3 again: shown before, not again.
    await publishAll([[r1], [event("payments.settled", "r-p")], [r2, r1, filtered[0]],
                      [event("orders.eu.created", "r-deep")], [r3]], { url: SIDE_URL });
    assert.equal((await fetch(`${INGEST_URL}/health`).catch(() => null)), null, "ingest still down");
    await startStack();
    assert.notEqual(ingestPid(), oldPid, "a new ingest");
    await waitForRow(a.page, r3.event_id);
    await live(a.page);
    await assertRows(a.page, [r3, r2, r1, ...filtered]);
    const states = await a.page.evaluate(() => window.__states);
    assert.ok(states.some((s) => s.startsWith("resuming|")), `showed resuming: ${states}`);
    assert.equal(states[states.length - 1], "live|live");
    // The reconnects sent the id of the last event shown, and kept the filter.
    const resumed = [];
    for (const request of a.requests.slice(seen)) {
      if (!request.url().includes("/subscribe")) continue;
      const headers = await request.allHeaders();
      assert.equal(new URL(request.url()).searchParams.get("topic"), "orders.*");
      if (headers["last-event-id"]) resumed.push(headers["last-event-id"]);
    }
    assert.ok(resumed.length > 0, "a /subscribe with Last-Event-ID after the restart");
    assert.deepEqual(a.errors, [], "script errors on the page");
    assertSameOrigin(a.requests);
    await a.context.close();
  });

// --- scenario with tokens: ingest restarted with INGEST_API_TOKENS -------------

test("with INGEST_API_TOKENS: an error until the token is applied, live after; no token in a URL",
  { timeout: 45_000 }, async () => {
    await stopIngest();
    await startStack({ INGEST_API_TOKENS: TOKEN });
    assert.equal((await fetch(`${INGEST_URL}/stats`)).status, 401, "the stack now needs a token");
    const tokenBase = await stats({ token: TOKEN });
    const b = await openPage(`/?topic=${encodeURIComponent("orders.>")}`);
    assert.equal(await b.page.inputValue("#topic"), "orders.>", "?topic= fills the filter");
    await waitForState(b.page, /^401: /, "error");
    assert.equal(await b.page.textContent("#stat-received"), "-", "no stats without the token");

    await b.page.fill("#token", TOKEN);
    await b.page.click("#apply");
    await live(b.page);
    const t1 = event("orders.created", "t1"), t2 = event("orders.eu.created", "t2");
    const unauthorized = await fetch(`${INGEST_URL}/publish`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify([t1]) });
    assert.equal(unauthorized.status, 401, "publish without the token");
    const sent = await publishAll([[t1], [event("billing.charged", "t-b")], [t2, t1]],
                                  { token: TOKEN });
    await waitForRow(b.page, t2.event_id);
    await assertRows(b.page, [t2, t1]);
    await assertStats(b.page, tokenBase, { received: sent, unique_processed: 3,
                                           duplicate_dropped: 1 }, TOKEN);

    // The token went in the Authorization header of /subscribe and /stats
    // requests, and into no URL of any request.
    const secrets = [TOKEN, encodeURIComponent(TOKEN), Buffer.from(TOKEN).toString("base64")];
    let authorized = 0;
    for (const request of b.requests) {
      for (const secret of secrets) {
        assert.ok(!request.url().includes(secret), `token in the URL ${request.url()}`);
      }
      const path = new URL(request.url()).pathname;
      const headers = await request.allHeaders();
      if ((path === "/subscribe" || path === "/stats") && headers.authorization === `Bearer ${TOKEN}`) {
        authorized++;
      }
    }
    assert.ok(authorized >= 2, `requests with the token in Authorization: ${authorized}`);
    assert.ok(!b.page.url().includes(TOKEN), "token in the page URL");
    assert.deepEqual(b.errors, [], "script errors on the page");
    assertSameOrigin(b.requests);
    await b.context.close();
  });
