// Forwarding: events/s from a real SQLite outbox to a loopback receiver in another process
// (bench/forward-receiver.js), per target format, with the defaults (batches of 500, 2 in flight,
// gzip). The events are real: the shipped rules over the generated corpus. Two runs per format:
// "backlog" — the outbox holds every event when forwarding starts (a target back after a pause);
// "live" — events are queued in batches of 100, each its own transaction, while forwarding runs.
//
//   npm run bench:forward            every format, as a table
//   (npm run bench runs the NDJSON target as its `forward` section)
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { request } from 'undici';
import { resolveConfig } from '../dist/config.js';
import { createEngine } from '../dist/engine/create-engine.js';
import { Forwarder } from '../dist/forward/forwarder.js';
import { streamKeyOf } from '../dist/ingest/record.js';
import { loadRuleSet } from '../dist/rules/index.js';
import { SqliteStore } from '../dist/store/sqlite-store.js';
import { generateCorpus } from './corpus.js';
import { ROOT, round, sleep, tempDir } from './lib.js';

export const FORMAT_PATHS = { ndjson: '/', loki: '/loki/api/v1/push', elasticsearch: '/_bulk', otlp: '/v1/logs' };

async function realEvents(lines) {
  const { ruleSet } = await loadRuleSet(join(ROOT, 'rules'), { checkRegexSafety: false });
  const events = [];
  const engine = createEngine({ groupers: () => ruleSet.groupers, classifier: () => ruleSet.classifier, sink: (out) => events.push(...out), ordered: true });
  let batch = [];
  for (const entry of generateCorpus({ lines })) {
    batch.push({ time: entry.time, host: entry.host, service: entry.service, pid: entry.pid, stream: streamKeyOf(entry.host, entry.service, entry.pid), message: entry.line.trimEnd() });
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
  const child = spawn(process.execPath, [join(ROOT, 'bench', 'forward-receiver.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve) => child.stdout.once('data', (chunk) => resolve(Number(String(chunk).trim()))));
  return {
    url: `http://127.0.0.1:${port}`,
    received: async () => Number(await (await request(`http://127.0.0.1:${port}/`)).body.text()),
    stop: () => child.kill(),
  };
}

async function run(path, mode, events) {
  const receiver = await startReceiver();
  const work = tempDir('forward');
  const store = new SqliteStore(work.dir);
  const config = resolveConfig({ dataDir: work.dir, forwardTargets: [`${receiver.url}${path}`] }, {});
  const forwarder = new Forwarder(config.forwardTargets, store, { outboxBytes: config.forwardOutboxBytes, outboxAgeMs: config.forwardOutboxAgeMs, log: pino({ level: 'warn' }) });
  let started;
  try {
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
    while ((await receiver.received()) < events.length) await sleep(20);
    return (performance.now() - started) / 1000;
  } finally {
    await forwarder.stop(1000);
    store.close();
    receiver.stop();
    work.remove();
  }
}

/** Events/s per format and run; `formats` picks which (all by default). */
export async function benchForward({ lines, formats = Object.keys(FORMAT_PATHS) }) {
  const events = await realEvents(lines);
  const bytes = events.reduce((sum, event) => sum + Buffer.byteLength(JSON.stringify(event)), 0);
  const rows = [];
  for (const format of formats) {
    for (const mode of ['backlog', 'live']) {
      const seconds = await run(FORMAT_PATHS[format], mode, events);
      rows.push({ format, mode, events: events.length, seconds, perSecond: Math.round(events.length / seconds), mibPerSecond: bytes / 1048576 / seconds });
    }
  }
  return { rows, events: events.length, averageBytes: Math.round(bytes / events.length) };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const at = process.argv.indexOf('--lines');
  const lines = at >= 0 ? Number(process.argv[at + 1]) : 1_000_000;
  const { rows, events, averageBytes } = await benchForward({ lines });
  console.log(`${events} real events (shipped rules over ${lines.toLocaleString('en-US')} generated lines), ${averageBytes} bytes of JSON each on average`);
  console.log('');
  console.log('| format | run | events | s | events/s | MiB/s of events |');
  console.log('|---|---|---:|---:|---:|---:|');
  for (const row of rows) console.log(`| ${row.format} | ${row.mode} | ${row.events} | ${round(row.seconds, 2)} | ${row.perSecond.toLocaleString('en-US')} | ${round(row.mibPerSecond, 1)} |`);
}
