// Node's built-in fetch publishes what log shippers send: plain JSON, NDJSON,
// and both compressed with gzip and deflate (node:zlib).
import test from "node:test";
import assert from "node:assert/strict";
import { deflateSync, gzipSync } from "node:zlib";
import { publish, run, stored } from "./lib.mjs";

const topic = `fetch.logs.${run}`;
const event = (id, payload = {}) => ({
  topic, event_id: id, timestamp: "2026-11-24T10:00:00Z", source: "node-fetch", payload,
});
const ndjson = (events) => events.map((e) => JSON.stringify(e)).join("\n") + "\n";

test("plain JSON: one event, then an array", async () => {
  const one = await publish(JSON.stringify(event("plain-1", { n: 1 })), { "content-type": "application/json" });
  assert.equal(one.status, 200, JSON.stringify(one.json));
  assert.equal(one.json.results[0].status, "accepted");
  const many = await publish(JSON.stringify([event("plain-2"), event("plain-1")]),
    { "content-type": "application/json" });
  assert.equal(many.json.accepted, 1);
  assert.equal(many.json.duplicates, 1);
});

test("NDJSON: one event per line, a bad line rejected alone", async () => {
  const body = ndjson([event("nd-1"), event("nd-2")]) + "{oops\n" + ndjson([event("nd-3")]);
  const answer = await publish(body, { "content-type": "application/x-ndjson" });
  assert.equal(answer.status, 200, JSON.stringify(answer.json));
  assert.equal(answer.json.accepted, 3);
  assert.equal(answer.json.rejected, 1);
  assert.match(answer.json.results[2].error, /^line 3: malformed JSON/);
});

test("gzip and deflate bodies, as shippers send them", async () => {
  const lines = Array.from({ length: 300 }, (_, i) => event(`gz-${i}`, { message: "x".repeat(80), i }));
  const body = gzipSync(ndjson(lines));
  assert.ok(body.length * 5 < Buffer.byteLength(ndjson(lines)), "compressed");
  const gzip = await publish(body, { "content-type": "application/x-ndjson", "content-encoding": "gzip" });
  assert.equal(gzip.status, 200, JSON.stringify(gzip.json));
  assert.equal(gzip.json.accepted, 300);
  const deflate = await publish(deflateSync(JSON.stringify(event("df-1"))),
    { "content-type": "application/json", "content-encoding": "deflate" });
  assert.equal(deflate.status, 200, JSON.stringify(deflate.json));
  const unknown = await publish(Buffer.from("x"), { "content-type": "application/json", "content-encoding": "br" });
  assert.equal(unknown.status, 415);
  assert.equal(unknown.headers.get("accept-encoding"), "gzip, deflate");
});

test("a gzip bomb is a 413 and the next request is served", async () => {
  const bomb = gzipSync(Buffer.alloc(16 << 20));
  const answer = await publish(bomb, { "content-type": "application/json", "content-encoding": "gzip" });
  assert.equal(answer.status, 413);
  assert.match(answer.json.error, /INGEST_MAX_BODY_BYTES/);
  const next = await publish(JSON.stringify(event("after-bomb")), { "content-type": "application/json" });
  assert.equal(next.status, 200);
});

test("everything accepted is stored once", async () => {
  const events = await stored(topic, 2 + 3 + 300 + 1 + 1);
  assert.equal(new Set(events.map((e) => e.event_id)).size, events.length);
  const first = events.find((e) => e.event_id === "plain-1");
  assert.deepEqual(first.payload, { n: 1 });
});
