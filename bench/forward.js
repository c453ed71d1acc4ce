// Forwarding benchmark: events/s from a real SQLite outbox to a loopback receiver (another
// process), per target format, with the defaults (batches of 500, 2 in flight, gzip). The events
// are real: the shipped rules over the generated corpus (bench/corpus.js). Two runs per format:
// "backlog" — the outbox holds every event when forwarding starts (a target back after a pause);
// "live" — events are queued in batches of 100 while forwarding runs, as the engine stores them.
// Run with `npm run bench:forward`.
//
//   node bench/forward.js [--lines 1000000]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { request } from 'undici';
import { resolveConfig } from '../dist/config.js';
import { createEngine } from '../dist/engine/create-engine.js';
import { Forwarder } from '../dist/forward/forwarder.js';
import { streamKeyOf } from '../dist/ingest/record.js';
import { loadRuleSet } from '../dist/rules/index.js';
import { SqliteStore } from '../dist/store/sqlite-store.js';
import { generateCorpus } from './corpus.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const at = args.indexOf('--lines');
const LINES = at >= 0 ? Number(args[at + 1]) : 1_000_000;

async function realEvents() {
  const { ruleSet } = await loadRuleSet(join(here, '..', 'rules'));
  const events = [];
  const engine = createEngine({ groupers: () => ruleSet.groupers, classifier: () => ruleSet.classifier, sink: (out) => events.push(...out), ordered: true });
  let batch = [];
  for (const entry of generateCorpus({ lines: LINES })) {
    batch.push({ time: entry.time, host: entry.host, service: entry.service, pid: entry.pid, stream: streamKeyOf(entry.host, entry.service, entry.pid), message: entry.line });
    if (batch.length === 1000) {
      engine.push(batch);
      batch = [];
    }
  }
  engine.push(batch);
  engine.flush();
  // Stored events carry their incident; the bytes forwarded should too.
  return events.map((event) => ({ ...event, incident_id: `inc-${event.incident_key.length}` }));
}

async function startReceiver() {
  const child = spawn(process.execPath, [join(here, 'forward-receiver.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve) => child.stdout.once('data', (chunk) => resolve(Number(String(chunk).trim()))));
  return {
    url: `http://127.0.0.1:${port}`,
    received: async () => Number(await (await request(`http://127.0.0.1:${port}/`)).body.text()),
    stop: () => child.kill(),
  };
}

async function run(format, path, mode, events) {
  const receiver = await startReceiver();
  const dir = mkdtempSync(join(tmpdir(), 'leakwatch-bench-forward-'));
  const store = new SqliteStore(dir);
  const config = resolveConfig({ dataDir: dir, forwardTargets: [`${receiver.url}${path}`] }, {});
  const forwarder = new Forwarder(config.forwardTargets, store, { outboxBytes: config.forwardOutboxBytes, outboxAgeMs: config.forwardOutboxAgeMs, log: pino({ level: 'warn' }) });
  const bytes = events.reduce((sum, event) => sum + Buffer.byteLength(JSON.stringify(event)), 0);
  let started;
  if (mode === 'backlog') {
    store.transaction(() => forwarder.enqueue(events));
    started = performance.now();
    forwarder.start();
  } else {
    forwarder.start();
    started = performance.now();
    for (let index = 0; index < events.length; index += 100) {
      store.transaction(() => forwarder.enqueue(events.slice(index, index + 100)));
      // Let the lanes run between stored batches, as the pipeline's event-loop turns do.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  while ((await receiver.received()) < events.length) await new Promise((resolve) => setTimeout(resolve, 20));
  const seconds = (performance.now() - started) / 1000;
  await forwarder.stop(1000);
  store.close();
  receiver.stop();
  rmSync(dir, { recursive: true, force: true });
  return { format, mode, events: events.length, seconds, perSecond: Math.round(events.length / seconds), mibPerSecond: bytes / 1048576 / seconds };
}

const events = await realEvents();
console.log(`${events.length} real events (shipped rules over ${LINES.toLocaleString('en-US')} generated lines), ${(events.reduce((s, e) => s + JSON.stringify(e).length, 0) / events.length).toFixed(0)} bytes each on average`);
console.log('');
console.log('| format | run | events | s | events/s | MiB/s of events |');
console.log('|---|---|---:|---:|---:|---:|');
for (const [format, path] of [['ndjson', '/'], ['loki', '/loki/api/v1/push'], ['elasticsearch', '/_bulk'], ['otlp', '/v1/logs']]) {
  for (const mode of ['backlog', 'live']) {
    const result = await run(format, path, mode, events);
    console.log(`| ${result.format} | ${result.mode} | ${result.events} | ${result.seconds.toFixed(2)} | ${result.perSecond.toLocaleString('en-US')} | ${result.mibPerSecond.toFixed(1)} |`);
  }
}
