// Loki push clients nobody here wrote against POST /loki/api/v1/push:
// pino with pino-loki (JSON), and a protobuf push compressed with snappy as
// Promtail and Grafana Alloy send it (protobufjs, snappyjs). Every line
// stored once; the same requests again (what Promtail and Alloy do after a
// 5xx) store nothing twice.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import protobuf from "protobufjs";
import snappy from "snappyjs";

import { base, duplicatesSince, recorder, replay, run, stats, stored } from "./lib.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));

test("pino-loki: every line once, and its requests sent again store nothing twice", async () => {
  const job = `pino-${run}`;
  const proxy = await recorder();
  const count = 30;
  const child = spawn(process.execPath, [path.join(here, "pino_loki_emit.mjs"), proxy.url, job, String(count)],
    { stdio: "inherit" });
  const code = await new Promise((resolve) => child.on("exit", resolve));
  assert.equal(code, 0);
  await proxy.close();
  assert.ok(proxy.requests.length >= 1, "pino-loki sent nothing");
  assert.equal(proxy.requests[0].headers["content-type"], "application/json");
  const events = await stored(job, count);
  for (const event of events) {
    assert.equal(event.topic, job);
    assert.equal(event.source, "pino-host");
    assert.equal(event.payload.labels.job, job);
    assert.match(JSON.parse(event.payload.line).msg, /^pino line \d+$/);
    assert.match(event.event_id, /^loki-[0-9a-f]{32}$/);
  }
  const before = await stats();
  for (const request of proxy.requests) assert.equal(await replay(request), 204);
  await stored(job, count);
  await duplicatesSince(before, count);
});

test("Loki protobuf + snappy (as Promtail and Alloy send it): once, whatever the resends", async () => {
  const root = protobuf.loadSync(path.join(here, "loki_push.proto"));
  const PushRequest = root.lookupType("logproto.PushRequest");
  const app = `proto-${run}`;
  const seconds = Math.floor(Date.now() / 1000);
  const entries = Array.from({ length: 40 }, (_, i) => ({
    timestamp: { seconds, nanos: i },
    line: `proto line ${i % 20}`, // the same line at another time is another entry
    structuredMetadata: [{ name: "trace_id", value: `t${i}` }],
  }));
  const message = PushRequest.fromObject({
    streams: [{ labels: `{app="${app}", instance="i-1", env="test"}`, entries }],
  });
  const body = Buffer.from(snappy.compress(PushRequest.encode(message).finish()));
  const push = () =>
    fetch(`${base}/loki/api/v1/push`, {
      method: "POST",
      headers: { "content-type": "application/x-protobuf" },
      body,
    });
  assert.equal((await push()).status, 204);
  const events = await stored(app, entries.length);
  for (const event of events) {
    assert.equal(event.source, "i-1");
    assert.equal(event.payload.labels.env, "test");
    assert.match(event.payload.structured_metadata.trace_id, /^t\d+$/);
  }
  for (let i = 0; i < 3; i++) assert.equal((await push()).status, 204);
  await stored(app, entries.length);
  // Not snappy: 400, as Loki answers.
  const raw = await fetch(`${base}/loki/api/v1/push`, {
    method: "POST",
    headers: { "content-type": "application/x-protobuf" },
    body: Buffer.from(PushRequest.encode(message).finish()),
  });
  assert.equal(raw.status, 400);
  assert.match(await raw.text(), /snappy/);
});
