// Emits `count` lines with pino and pino-loki to `url` (a Loki push
// endpoint), with the labels given, then lets pino flush on exit, as an
// application does. Run by loki_clients.test.mjs in a process of its own.
// Usage: node pino_loki_emit.mjs URL JOB COUNT
import pino from "pino";

const [url, job, count] = process.argv.slice(2);
const transport = pino.transport({
  target: "pino-loki",
  options: { host: url, labels: { job, host: "pino-host" }, batching: { interval: 1 } },
});
const logger = pino(transport);
for (let i = 0; i < Number(count); i++) logger.info({ seq: i }, `pino line ${i}`);
// Falling off the end: pino's exit hook ends the worker, which sends what
// pino-loki holds and waits for the answer.
