// The OpenTelemetry JS SDK (@opentelemetry/sdk-logs) with both OTLP/HTTP log
// exporters, JSON (exporter-logs-otlp-http) and protobuf
// (exporter-logs-otlp-proto), against POST /v1/logs: every record stored
// once with the mapping of the README, whether the exporter resends a
// request whose answer it lost, or the exact bodies it sent are sent again.
import assert from "node:assert/strict";
import { test } from "node:test";

import { SeverityNumber } from "@opentelemetry/api-logs";
import { OTLPLogExporter as JsonExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { OTLPLogExporter as ProtoExporter } from "@opentelemetry/exporter-logs-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchLogRecordProcessor, LoggerProvider } from "@opentelemetry/sdk-logs";

import { base, duplicatesSince, recorder, replay, run, stats, stored } from "./lib.mjs";

// Emits `count` records through the SDK to `url`, half with log.record.uid;
// flushes and shuts down. (A failed export goes to the SDK's error handler,
// not to forceFlush: what arrived is checked, not what the SDK returned.)
async function emit(Exporter, url, service, count) {
  const exporter = new Exporter({ url: `${url}/v1/logs`, timeoutMillis: 10000 });
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({
      "service.name": service,
      "service.instance.id": "instance-1",
      "host.name": "test-host",
    }),
    processors: [new BatchLogRecordProcessor({ exporter, scheduledDelayMillis: 100 })],
  });
  const logger = provider.getLogger("otlp-sdk-test", "1.0.0");
  for (let i = 0; i < count; i++) {
    logger.emit({
      severityNumber: SeverityNumber.WARN,
      severityText: "WARN",
      body: `record ${i}`,
      attributes: i % 2 === 0 ? { seq: i, "log.record.uid": `${service}-uid-${i}` } : { seq: i },
    });
  }
  await provider.forceFlush();
  await provider.shutdown();
}

for (const [name, Exporter, type] of [
  ["json", JsonExporter, "application/json"],
  ["proto", ProtoExporter, "application/x-protobuf"],
]) {
  test(`OTLP ${name}: a resend after a lost answer, and the same bodies again, store nothing twice`, async () => {
    const service = `otlp-${name}-${run}`;
    const count = 20;
    // The first answer is lost on its way back (503): the exporter sends the
    // same request again, which ingest already took.
    const proxy = await recorder({ failFirst: 1 });
    const before = await stats();
    await emit(Exporter, proxy.url, service, count);
    await proxy.close();
    assert.ok(proxy.requests.length >= 2, `the exporter did not retry: ${proxy.requests.length}`);
    assert.equal(proxy.requests[0].headers["content-type"], type);
    assert.deepEqual(proxy.requests[1].body, proxy.requests[0].body, "a retry is the same body");
    const events = await stored(service, count);
    // The mapping: topic from service.name, source from service.instance.id,
    // event_id the uid when there is one, else a hash of the record.
    for (const event of events) {
      assert.equal(event.topic, service);
      assert.equal(event.source, "instance-1");
      assert.equal(event.payload.severity_text, "WARN");
      assert.equal(event.payload.severity_number, SeverityNumber.WARN);
      assert.equal(event.payload.resource["host.name"], "test-host");
      assert.equal(event.payload.scope.name, "otlp-sdk-test");
      const seq = event.payload.attributes.seq;
      assert.equal(event.payload.body, `record ${seq}`);
      assert.equal(event.event_id, seq % 2 === 0 ? `${service}-uid-${seq}` : event.event_id);
      if (seq % 2 === 1) assert.match(event.event_id, /^otlp-[0-9a-f]{32}$/);
    }
    // The exact bodies the exporter sent, once more: duplicates, counted.
    for (const request of proxy.requests) assert.equal(await replay(request), 200);
    await stored(service, count);
    await duplicatesSince(before, count);
  });
}

test("OTLP: a body that is no export request is 400 with a google.rpc.Status, in its encoding", async () => {
  const json = await fetch(`${base}/v1/logs`, {
    method: "POST", headers: { "content-type": "application/json" }, body: "[1,2]",
  });
  assert.equal(json.status, 400);
  assert.match((await json.json()).message, /ExportLogsServiceRequest/);
  const proto = await fetch(`${base}/v1/logs`, {
    method: "POST", headers: { "content-type": "application/x-protobuf" }, body: Buffer.from([0xff, 0xff]),
  });
  assert.equal(proto.status, 400);
  assert.equal(proto.headers.get("content-type"), "application/x-protobuf");
  const other = await fetch(`${base}/v1/logs`, {
    method: "POST", headers: { "content-type": "text/plain" }, body: "x",
  });
  assert.equal(other.status, 415);
});
