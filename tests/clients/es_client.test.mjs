// The official Elasticsearch client for JavaScript (@elastic/elasticsearch
// 8.x, its product check included) against GET /, HEAD / and the bulk API:
// helpers.bulk with and without _id stores every document once; the same
// bulk again is answered 409 "document already exists" per item and stores
// nothing; a request whose answer was lost and is sent again, likewise.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Client } from "@elastic/elasticsearch";

import { base, duplicatesSince, recorder, replay, run, stats, stored } from "./lib.mjs";

const client = new Client({ node: base, maxRetries: 3, requestTimeout: 30000 });

async function bulk(index, documents, withIds) {
  const dropped = [];
  const result = await client.helpers.bulk({
    datasource: documents,
    onDocument(doc) {
      return { create: withIds ? { _index: index, _id: doc.id } : { _index: index } };
    },
    onDrop(drop) {
      dropped.push({ status: drop.status, type: drop.error?.type });
    },
    concurrency: 1,
    retries: 2,
    wait: 100,
  });
  return { result, dropped };
}

test("Elasticsearch client: info, ping and the product check pass", async () => {
  const info = await client.info();
  assert.equal(info.tagline, "You Know, for Search");
  assert.match(info.version.number, /^8\./);
  assert.equal(await client.ping(), true);
});

for (const withIds of [true, false]) {
  test(`Elasticsearch client: helpers.bulk ${withIds ? "with" : "without"} _id, twice, stores once`, async () => {
    const index = `es-${withIds ? "ids" : "noids"}-${run}`;
    const documents = Array.from({ length: 25 }, (_, i) => ({
      id: `doc-${i}`,
      message: `message ${i}`,
      "@timestamp": new Date(Date.UTC(2026, 10, 24, 10, 0, i)).toISOString(),
      host: { name: `host-${i % 3}` },
      n: i,
    }));
    const first = await bulk(index, documents, withIds);
    assert.equal(first.result.successful, documents.length, JSON.stringify(first));
    const events = await stored(index, documents.length);
    for (const event of events) {
      assert.equal(event.topic, index);
      assert.equal(event.source, `host-${event.payload.n % 3}`);
      assert.equal(event.payload.message, `message ${event.payload.n}`);
      assert.equal(event.timestamp, new Date(Date.UTC(2026, 10, 24, 10, 0, event.payload.n)).toISOString().replace(".000Z", ".000000Z"));
      if (withIds) assert.equal(event.event_id, `doc-${event.payload.n}`);
      else assert.match(event.event_id, /^bulk-[0-9a-f]{32}$/);
    }
    // The same documents again: each already stored, 409 (the helper calls
    // it a drop), nothing stored twice.
    const before = await stats();
    const second = await bulk(index, documents, withIds);
    assert.equal(second.dropped.length, documents.length, JSON.stringify(second.dropped.slice(0, 2)));
    assert.ok(second.dropped.every((d) => d.status === 409 && d.type === "version_conflict_engine_exception"));
    await stored(index, documents.length);
    await duplicatesSince(before, documents.length);
  });
}

test("Elasticsearch bulk: a request sent again after its answer was lost stores nothing twice", async () => {
  const index = `es-lost-${run}`;
  const proxy = await recorder({ failFirst: 1, failStatus: 502 });
  const lossy = new Client({ node: proxy.url, maxRetries: 3, requestTimeout: 30000 });
  const documents = Array.from({ length: 10 }, (_, i) => ({ message: `lost ${i}`, n: i }));
  await lossy.helpers.bulk({
    datasource: documents,
    onDocument: () => ({ create: { _index: index } }),
  });
  await proxy.close();
  const bulks = proxy.requests.filter((r) => r.path.endsWith("_bulk"));
  assert.ok(bulks.length >= 2, "the client did not send the bulk again after a 502");
  await stored(index, documents.length);
  for (const request of bulks) assert.equal(await replay(request), 200);
  await stored(index, documents.length);
});
