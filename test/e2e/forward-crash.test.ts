/**
 * At least once, whatever the moment of the crash: a multi-host corpus (the Netty export and 8
 * generated linkerd processes on 4 hosts) is posted in batches that cut through traces to a real
 * `leakwatch serve` that forwards to a loopback receiver, and the process is killed with -9 at 22
 * points chosen by a fixed seed — after a batch was answered 200, a random few hundred ms later,
 * so that deliveries are in flight, answers unrecorded, groups open and checkpoints pending at
 * different kills. After each kill it restarts on the same data folder and the stream goes on.
 *
 * The ids forwarded must be exactly those of a run without crashes (`leakwatch analyze` offline,
 * which serve-delivery.test.ts shows a live run equals); every event arrives at least once, and a
 * repeat carries the same id and the same event.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LeakEvent } from '../../src/engine/event.js';
import type { GroupedRecord } from '../../src/engine/grouped-record.js';
import { analyzeOffline, chunk, fluentBitRecord, journalEntries, prng, type JournalEntry } from '../helpers/journal-corpus.js';
import { deliveredLines, startReceiver, type Receiver } from '../helpers/receiver.js';
import { shippedRulesWith } from '../helpers/rules-dir.js';
import { eventually, startServe, type ServeProcess } from '../helpers/serve-process.js';

const SEED = 0x5eed9;
const KILLS = 22;
const BATCH_RECORDS = 83;
/** 22 restarts take 20-40 s on a loaded 2-core machine; the issue allows about a minute in CI. */
const TIME_LIMIT_MS = 90_000;

/** A journald line that continues a trace (a frame, a cause, a JDK `... n more`). */
function continuesTrace(entry: JournalEntry | undefined): boolean {
  return /^\s*(at |Caused by: |\.\.\. \d+ more)/.test(entry?.['MESSAGE'] ?? '');
}

describe('kill -9 at 22 points while forwarding', () => {
  let work: string;
  let rules: ReturnType<typeof shippedRulesWith>;
  let entries: JournalEntry[];
  let expected: GroupedRecord[];
  let receiver: Receiver;
  let server: ServeProcess | undefined;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'leakwatch-forward-crash-'));
    // A short reorder window: records are grouped (and events sent) between kills, not only at the end.
    rules = shippedRulesWith({ expire_after: '2s', reorder_window: '100ms' });
    entries = journalEntries({ lines: 5000, seed: SEED });
    expected = await analyzeOffline(entries, rules.dir, work);
  });

  afterAll(async () => {
    await server?.stop('SIGKILL');
    await receiver?.close();
    rules.remove();
    rmSync(work, { recursive: true, force: true });
  });

  it('forwards exactly the ids of a run without crashes, each at least once, repeats identical', async () => {
    const random = prng(SEED);
    const batches = chunk(entries, BATCH_RECORDS);
    // Traces do cross batch boundaries: some batches begin inside one.
    expect(batches.filter((batch) => continuesTrace(batch[0])).length).toBeGreaterThan(3);
    const killAfter = new Set<number>();
    while (killAfter.size < KILLS) killAfter.add(1 + Math.floor(random() * (batches.length - 2)));
    // The receiver takes its time (40-160 ms) and is sometimes busy: deliveries are in flight at kills, and some are retried.
    receiver = await startReceiver(async (_request, index) => {
      await new Promise((resolve) => setTimeout(resolve, 40 + ((index * 37) % 120)));
      return index % 13 === 4 ? { status: 503, body: 'busy' } : { status: 200 };
    });
    const dataDir = join(work, 'data');
    const args = ['--data-dir', dataDir, '--rules', rules.dir, '--forward-url', `${receiver.url}/#max-wait=20ms&batch=10&backoff=50ms&max-backoff=400ms`];
    server = await startServe(args);
    let kills = 0;
    for (const [index, batch] of batches.entries()) {
      const response = await request(`${server.url}/ingest`, { method: 'POST', body: JSON.stringify(batch.map(fluentBitRecord)), headers: { 'content-type': 'application/json' } });
      expect(response.statusCode).toBe(200);
      await response.body.dump();
      if (killAfter.has(index)) {
        await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 300)));
        expect(await server.stop('SIGKILL')).toBeNull();
        kills++;
        server = await startServe(args);
      }
    }
    const wanted = new Set(expected.map((event) => event.id));
    await eventually(async () => {
      const got = new Set(deliveredLines(receiver).map((event) => event.id));
      return [...wanted].every((id) => got.has(id)) ? true : undefined;
    }, 40_000);
    await server.stop('SIGTERM');
    server = undefined;

    const delivered = deliveredLines<LeakEvent>(receiver);
    const distinct = new Map<string, string>();
    let differing = 0;
    for (const event of delivered) {
      const body = JSON.stringify({ ...event, incident_id: null });
      if (distinct.has(event.id) && distinct.get(event.id) !== body) differing++;
      distinct.set(event.id, body);
    }
    expect([...distinct.keys()].sort()).toEqual([...wanted].sort());
    expect(differing).toBe(0);
    for (const event of expected) expect(JSON.parse(distinct.get(event.id)!)).toEqual({ ...event, incident_id: null });
    const duplicates = delivered.length - distinct.size;
    console.log(`crash test: ${kills} kills (seed ${SEED}), ${batches.length} batches, ${expected.length} events, ${delivered.length} deliveries, ${duplicates} duplicates, ${receiver.requests.length} requests`);
    expect(kills).toBe(KILLS);

    const db = new Database(join(dataDir, 'leakwatch.db'), { readonly: true });
    try {
      expect(db.prepare('SELECT COUNT(*) FROM forward_outbox').pluck().get()).toBe(0);
      expect(db.prepare('SELECT COUNT(*) FROM events').pluck().get()).toBe(expected.length);
    } finally {
      db.close();
    }
  }, TIME_LIMIT_MS);
});
