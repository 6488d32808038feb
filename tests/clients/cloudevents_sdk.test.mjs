// The official CloudEvents SDK for JavaScript (npm "cloudevents") emits
// events at ingest in structured, binary and batch mode; what is stored is
// what the mapping says, a producer's retry is a duplicate in any mode, and
// the SDK itself reads the events back from GET /events?format=cloudevents.
import test from "node:test";
import assert from "node:assert/strict";
import { CloudEvent, HTTP, Mode, emitterFor, httpTransport } from "cloudevents";
import { base, run, publish, stored } from "./lib.mjs";

const type = `sdk.order.created.${run}`;
const source = "https://shop.example/orders";
const key = (id) => `ce:${Buffer.byteLength(source)}:${source}:${id}`;

test("structured mode through the SDK's emitter; its retry is a duplicate", async () => {
  const emit = emitterFor(httpTransport(`${base}/publish`), { mode: Mode.STRUCTURED });
  const event = new CloudEvent({ type, source, id: "s-1", data: { amount: 42 } });
  const first = JSON.parse((await emit(event)).body);
  assert.equal(first.accepted, 1, JSON.stringify(first));
  assert.equal(first.results[0].event_id, key("s-1"));
  assert.equal(first.results[0].topic, type);
  const again = JSON.parse((await emit(event)).body);
  assert.equal(again.duplicates, 1, JSON.stringify(again));
});

test("binary mode (HTTP.binary); the same event in structured mode is a duplicate", async () => {
  const event = new CloudEvent({
    type, source, id: "b-1", time: "2026-11-24T10:00:00.250Z",
    datacontenttype: "application/json", data: { celsius: 21.5 }, traceparent: "00-ab-cd-01",
  });
  const binary = HTTP.binary(event);
  assert.ok(binary.headers["ce-id"], "the SDK wrote ce- headers");
  const first = await publish(binary.body, binary.headers);
  assert.equal(first.status, 200, JSON.stringify(first.json));
  assert.equal(first.json.results[0].event_id, key("b-1"));
  const structured = HTTP.structured(event);
  const retry = await publish(structured.body, structured.headers);
  assert.equal(retry.status, 200);
  assert.equal(retry.json.results[0].status, "duplicate");
});

test("a batch of SDK events; an invalid one is rejected alone, naming its attribute", async () => {
  const good = [1, 2, 3].map((i) => new CloudEvent({ type, source, id: `batch-${i}`, data: { i } }));
  const body = JSON.stringify([...good, { specversion: "1.0", id: "x", source }]);
  const answer = await publish(body, { "content-type": "application/cloudevents-batch+json" });
  assert.equal(answer.status, 200, JSON.stringify(answer.json));
  assert.equal(answer.json.accepted, 3);
  assert.equal(answer.json.rejected, 1);
  assert.equal(answer.json.results[3].field, "type");
  assert.match(answer.json.results[3].error, /^type: is required/);
  const retry = await publish(JSON.stringify(good), { "content-type": "application/cloudevents-batch+json" });
  assert.equal(retry.json.duplicates, 3, JSON.stringify(retry.json));
});

test("what is stored is what the mapping says, each event once", async () => {
  const native = await stored(type, 5);
  const byId = Object.fromEntries(native.map((e) => [e.event_id, e]));
  assert.deepEqual(Object.keys(byId).sort(), ["b-1", "batch-1", "batch-2", "batch-3", "s-1"].map(key).sort());
  assert.equal(byId[key("b-1")].timestamp, "2026-11-24T10:00:00.250000Z");
  assert.equal(byId[key("b-1")].source, source);
  assert.deepEqual(byId[key("s-1")].payload, { amount: 42 });
});

test("the SDK reads GET /events?format=cloudevents as valid CloudEvents", async () => {
  const rendered = await stored(type, 5, "cloudevents");
  const read = rendered.map((e) => HTTP.toEvent({
    headers: { "content-type": "application/cloudevents+json" }, body: JSON.stringify(e),
  }));
  for (const event of read) {
    assert.equal(event.validate(), true);
    assert.equal(event.type, type);
    assert.equal(event.source, source);
  }
  const b1 = read.find((e) => e.id === "b-1");
  assert.ok(b1, `b-1 among ${read.map((e) => e.id)}`);
  assert.deepEqual(b1.data, { celsius: 21.5 });
  assert.equal(b1.time, "2026-11-24T10:00:00.250Z");
});
