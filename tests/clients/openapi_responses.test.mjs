// The server's answers against its own OpenAPI document: for every status
// these requests provoke, the document must list it for the operation, with
// the content type sent, and the body must match the documented schema
// (validated by Ajv, the OpenAPI 3.0 schemas turned into JSON Schema).
import test from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import net from "node:net";
import { gzipSync } from "node:zlib";
import Ajv from "ajv";
import addFormats from "ajv-formats";
import { base, run, stored } from "./lib.mjs";

const document = JSON.parse(readFileSync(new URL("../../ingest/openapi.json", import.meta.url)));

// OpenAPI 3.0 Schema Objects to JSON Schema: nullable becomes a null type,
// component references point into one schema holding them all.
function toJsonSchema(schema) {
  if (Array.isArray(schema)) return schema.map(toJsonSchema);
  if (schema === null || typeof schema !== "object") return schema;
  const out = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === "nullable") continue;
    if (key === "$ref") out.$ref = value.replace("#/components/schemas/", "components#/definitions/");
    else out[key] = toJsonSchema(value);
  }
  if (schema.nullable === true && out.type) out.type = [out.type, "null"];
  return out;
}

const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema({ $id: "components", definitions: toJsonSchema(document.components.schemas) });

const resolve = (object) =>
  object.$ref ? object.$ref.split("/").slice(1).reduce((node, part) => node[part], document) : object;

// Checks one answer against the document's operation.
function check(method, path, status, contentType, body) {
  const operation = document.paths[path]?.[method.toLowerCase()];
  assert.ok(operation, `${method} ${path} is not documented`);
  const documented = operation.responses[String(status)];
  assert.ok(documented, `${method} ${path} answered ${status}, which the document does not list`);
  const response = resolve(documented);
  const type = (contentType ?? "").split(";")[0].trim();
  if (response.content === undefined) {
    assert.equal(body, "", `${method} ${path} ${status}: documented without content`);
    return;
  }
  const media = response.content?.[type];
  assert.ok(media, `${method} ${path} ${status}: content type ${type} not documented`);
  if (type !== "application/json") return;
  const validate = ajv.compile(toJsonSchema(media.schema));
  const parsed = JSON.parse(body);
  assert.ok(validate(parsed), `${method} ${path} ${status}: ${ajv.errorsText(validate.errors)}\n${body}`);
}

// `as`: the document's path for a templated one (/{index}/_bulk).
async function call(method, path, { body, headers = {}, as } = {}) {
  const response = await fetch(`${base}${path}`, { method, body, headers });
  const text = await response.text();
  check(method, as ?? path.split("?")[0], response.status, response.headers.get("content-type"), text);
  return { status: response.status, headers: response.headers, text };
}

// Raw bytes, for what fetch will not send; the status line and body back.
function raw(bytes) {
  const url = new URL(base);
  return new Promise((resolvePromise, reject) => {
    const socket = net.connect(Number(url.port), url.hostname, () => socket.end(bytes));
    let data = "";
    socket.on("data", (chunk) => { data += chunk; });
    socket.on("error", reject);
    socket.on("close", () => {
      const [head, ...rest] = data.split("\r\n\r\n");
      const type = /\r\ncontent-type: *([^\r]*)/i.exec(head)?.[1];
      resolvePromise({ status: Number(head.slice(9, 12)), type, body: rest.join("\r\n\r\n") });
    });
  });
}

const topic = `openapi.check.${run}`;
const event = (id) => ({ topic, event_id: id, timestamp: "2026-11-24T10:00:00Z", source: "spec" });
const json = { "content-type": "application/json" };
const expectStatus = async (promise, status) => assert.equal((await promise).status, status);

test("GET /openapi.json serves this very document", async () => {
  const { text } = await call("GET", "/openapi.json");
  assert.deepEqual(JSON.parse(text), document);
});

test("POST /publish: each format's answers match the document", async () => {
  await expectStatus(call("POST", "/publish", { body: JSON.stringify(event("a")), headers: json }), 200);
  await expectStatus(call("POST", "/publish", { body: JSON.stringify([event("b"), { topic }]), headers: json }), 200);
  await expectStatus(call("POST", "/publish", {
    body: gzipSync(`${JSON.stringify(event("c"))}\n${JSON.stringify(event("d"))}\n`),
    headers: { "content-type": "application/x-ndjson", "content-encoding": "gzip" },
  }), 200);
  const ce = { specversion: "1.0", id: "e", source: "/spec", type: topic, data: { n: 1 } };
  await expectStatus(call("POST", "/publish", { body: JSON.stringify(ce), headers: { "content-type": "application/cloudevents+json" } }), 200);
  await expectStatus(call("POST", "/publish", { body: JSON.stringify([{ ...ce, id: "f" }]), headers: { "content-type": "application/cloudevents-batch+json" } }), 200);
  await expectStatus(call("POST", "/publish", {
    body: "{}", headers: { ...json, "ce-specversion": "1.0", "ce-id": "g", "ce-source": "/spec", "ce-type": topic },
  }), 200);
});

test("POST /publish: 400, 413 and 415 match the document", async () => {
  await expectStatus(call("POST", "/publish", { body: JSON.stringify({ topic }), headers: json }), 400);
  await expectStatus(call("POST", "/publish", { body: "{not json", headers: json }), 400);
  await expectStatus(call("POST", "/publish", { body: Buffer.from("nope"), headers: { ...json, "content-encoding": "gzip" } }), 400);
  const many = Array.from({ length: 1001 }, (_, i) => event(`m${i}`));
  await expectStatus(call("POST", "/publish", { body: JSON.stringify(many), headers: json }), 413);
  await expectStatus(call("POST", "/publish", { body: gzipSync(Buffer.alloc(8 << 20)), headers: { ...json, "content-encoding": "gzip" } }), 413);
  await expectStatus(call("POST", "/publish", { body: "hello", headers: { "content-type": "text/plain" } }), 415);
  await expectStatus(call("POST", "/publish", { body: "{}", headers: { ...json, "content-encoding": "br" } }), 415);
  await expectStatus(call("POST", "/publish", { body: "1", headers: { "content-type": "text/plain", "ce-id": "x" } }), 415);
});

test("GET /events in both formats, and its 400", async () => {
  await stored(topic, 7);
  await expectStatus(call("GET", `/events?topic=${topic}`), 200);
  await expectStatus(call("GET", `/events?topic=${topic}&format=cloudevents`), 200);
  await expectStatus(call("GET", "/events?limit=0"), 400);
  await expectStatus(call("GET", "/events?format=xml"), 400);
});

test("the other operations", async () => {
  for (const path of ["/stats", "/health", "/ready", "/metrics"]) {
    await expectStatus(call("GET", path), 200);
  }
});

test("POST /v1/logs: OTLP/JSON answers match the document", async () => {
  const logs = (records) => JSON.stringify({
    resourceLogs: [{ resource: { attributes: [{ key: "service.name", value: { stringValue: topic } }] }, scopeLogs: [{ logRecords: records }] }],
  });
  const uid = (value) => ({ body: { stringValue: "u" }, attributes: [{ key: "log.record.uid", value: { stringValue: value } }] });
  await expectStatus(call("POST", "/v1/logs", { body: logs([{ timeUnixNano: "1764496800000000000", body: { stringValue: "a" } }]), headers: json }), 200);
  const partial = await call("POST", "/v1/logs", { body: logs([uid(`otlp-${run}`), uid("x".repeat(300))]), headers: json });
  assert.equal(JSON.parse(partial.text).partialSuccess.rejectedLogRecords, "1");
  await expectStatus(call("POST", "/v1/logs", { body: JSON.stringify({ resourceLogs: 5 }), headers: json }), 400);
  await expectStatus(call("POST", "/v1/logs", { body: logs(Array.from({ length: 1001 }, () => ({}))), headers: json }), 413);
  await expectStatus(call("POST", "/v1/logs", { body: "x", headers: { "content-type": "text/plain" } }), 415);
});

test("Elasticsearch: bulk and the start-up calls match the document", async () => {
  const ndjson = { "content-type": "application/x-ndjson" };
  const bulk = `{"create":{"_index":"${topic}","_id":"es-1"}}\n{"message":"m"}\n{"delete":{"_id":"es-1"}}\n`;
  const answer = await call("POST", "/_bulk", { body: bulk, headers: ndjson });
  assert.equal(answer.status, 200);
  assert.equal(answer.headers.get("x-elastic-product"), "Elasticsearch");
  await expectStatus(call("PUT", `/${topic}/_bulk`, { body: '{"index":{}}\n{"n":1}\n', headers: ndjson, as: "/{index}/_bulk" }), 200);
  await expectStatus(call("POST", "/_bulk", { body: '{"index":{}}', headers: ndjson }), 400);
  await expectStatus(call("POST", "/_bulk", { body: '{"delete":{}}\n'.repeat(1001), headers: ndjson }), 413);
  await expectStatus(call("POST", "/_bulk", { body: "{}\n", headers: { ...ndjson, "content-encoding": "br" } }), 415);
  for (const path of ["/", "/_cluster/health", "/_license"]) await expectStatus(call("GET", path), 200);
  await expectStatus(call("GET", "/", { headers: { accept: "text/html" } }), 200);
});

test("POST /loki/api/v1/push: Loki's answers match the document", async () => {
  const push = (values) => JSON.stringify({ streams: [{ stream: { service_name: topic }, values }] });
  await expectStatus(call("POST", "/loki/api/v1/push", { body: push([[`${Date.now()}000000`, "hello", { k: "v" }]]), headers: json }), 204);
  await expectStatus(call("POST", "/loki/api/v1/push", { body: JSON.stringify({ streams: 5 }), headers: json }), 400);
  await expectStatus(call("POST", "/loki/api/v1/push", { body: "not snappy", headers: { "content-type": "application/x-protobuf" } }), 400);
  await expectStatus(call("POST", "/loki/api/v1/push", { body: push(Array.from({ length: 1001 }, (_, i) => [String(i), "x"])), headers: json }), 413);
  await expectStatus(call("POST", "/loki/api/v1/push", { body: "{}", headers: { ...json, "content-encoding": "br" } }), 415);
});

test("the HTTP layer's own answers match the document", async () => {
  const cases = [
    [`GET /health?${"x".repeat(9000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 414],
    [`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"y".repeat(30000)}\r\n\r\n`, 431],
    ["GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 505],
    ["POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501],
    ["POST /publish HTTP/1.1\r\nHost: x\r\nExpect: tea\r\nContent-Length: 2\r\n\r\n{}", 417],
  ];
  for (const [bytes, status] of cases) {
    const answer = await raw(bytes);
    assert.equal(answer.status, status, answer.body);
    const path = bytes.split(" ")[1].split("?")[0];
    check(bytes.split(" ")[0], path, status, answer.type, answer.body);
  }
});
