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
