// Shared by the Node client tests: where ingest is, a per-run suffix for
// topics and ids, polling with a deadline, and reading events back.
import assert from "node:assert/strict";

export const base = process.env.INGEST_URL;
assert.ok(base, "INGEST_URL must name the ingest under test (the CTest driver sets it)");

/** A suffix no other run of these tests uses (topics are shared by the stack). */
export const run = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

/** Polls `probe` every 100 ms until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor(probe, timeoutMs = 30000, what = "condition") {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) return last;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`${what} not reached within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}

/** POST /publish with `body` (string or Buffer) and `headers`; the answer and its JSON. */
export async function publish(body, headers) {
  const response = await fetch(`${base}/publish`, { method: "POST", body, headers });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: JSON.parse(text) };
}

/** The events of `topic` (GET /events), in the format asked for. */
export async function events(topic, format = "json") {
  const response = await fetch(`${base}/events?topic=${topic}&limit=1000&format=${format}`);
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()).events;
}

/** Waits until `topic` holds exactly `count` events, and returns them. */
export async function stored(topic, count, format = "json") {
  let last = [];
  await waitFor(async () => {
    last = await events(topic, format);
    return last.length >= count;
  }, 30000, `${count} events in ${topic}`);
  assert.equal(last.length, count, `events in ${topic}: ${JSON.stringify(last)}`);
  return last;
}

/**
 * Waits until /stats counts at least `count` more duplicates than `before`
 * (a broker duplicate is counted once the processor has the request's count
 * marker, a moment after the answer); returns the /stats read then.
 */
export async function duplicatesSince(before, count) {
  return waitFor(async () => {
    const now = await stats();
    return now.duplicate_dropped - before.duplicate_dropped >= count ? now : null;
  }, 30000, `${count} duplicates counted`);
}

/** GET /stats. */
export async function stats() {
  const response = await fetch(`${base}/stats`);
  assert.equal(response.status, 200);
  return response.json();
}

/**
 * A recording proxy in front of ingest, as a client's network path: each
 * request is forwarded as it came (method, path, headers, body) and kept in
 * `requests` ({method, path, headers, body}). With `failFirst` = N, the first
 * N requests are forwarded but answered `failStatus` (the answer lost, as a
 * timeout or a proxy error would), so that the client sends them again the
 * way it retries.
 */
export async function recorder({ failFirst = 0, failStatus = 503, retryAfter = "1" } = {}) {
  const http = await import("node:http");
  const requests = [];
  let failing = failFirst;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", async () => {
      const body = Buffer.concat(chunks);
      const headers = { ...req.headers };
      delete headers.host;
      delete headers["content-length"];
      delete headers["transfer-encoding"];
      delete headers.connection;
      requests.push({ method: req.method, path: req.url, headers, body });
      const upstream = await fetch(`${base}${req.url}`, {
        method: req.method,
        headers,
        body: req.method === "GET" || req.method === "HEAD" ? undefined : body,
      });
      const answer = Buffer.from(await upstream.arrayBuffer());
      if (failing > 0) {
        failing -= 1;
        res.writeHead(failStatus, { "content-type": "text/plain", "retry-after": retryAfter });
        res.end("answer lost on purpose (the test's proxy)\n");
        return;
      }
      const out = {};
      upstream.headers.forEach((value, name) => {
        if (name !== "content-length" && name !== "transfer-encoding") out[name] = value;
      });
      res.writeHead(upstream.status, out);
      res.end(answer);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Sends a recorded request to ingest again, byte for byte; the status. */
export async function replay(request) {
  const response = await fetch(`${base}${request.path}`, {
    method: request.method,
    headers: request.headers,
    body: request.body,
  });
  await response.arrayBuffer();
  return response.status;
}
