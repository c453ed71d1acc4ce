/**
 * The acceptance under real delivery: the real two-host Netty export plus a generated
 * 8-process, 4-host corpus, posted to a real `leakwatch serve` the way Fluent Bit and Vector send
 * journald under load — concurrent requests arriving out of order (fixed seed), a pause longer
 * than the silence, a kill -9 and restart between the halves of the stream — give exactly the
 * events `leakwatch analyze` finds offline, with the same ids.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeOffline, chunk, journalEntries, prng } from '../helpers/journal-corpus.js';
import { shippedRulesWith } from '../helpers/rules-dir.js';
import { eventually, metric, startServe, type ServeProcess } from '../helpers/serve-process.js';
import { fluentBitRecord, vectorRecord, type JournalEntry } from '../helpers/shipper-records.js';

interface Shipper {
  name: string;
  batchRecords: number;
  /** Requests in flight at once (Fluent Bit `workers 2`, Vector's adaptive concurrency). */
  concurrency: number;
  encode(entries: JournalEntry[]): { body: Buffer; headers: Record<string, string> };
}

const SHIPPERS: Shipper[] = [
  {
    name: 'Fluent Bit (systemd → http, json, 2 workers)',
    batchRecords: 150,
    concurrency: 2,
    encode: (entries) => ({ body: Buffer.from(JSON.stringify(entries.map(fluentBitRecord))), headers: { 'content-type': 'application/json' } }),
  },
  {
    name: 'Vector (journald → http, json, gzip, 4 requests in flight)',
    batchRecords: 250,
    concurrency: 4,
    encode: (entries) => ({
      body: gzipSync(JSON.stringify(entries.map(vectorRecord))),
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    }),
  },
];

async function settled(base: string): Promise<void> {
  await eventually(
    async () =>
      (await metric(base, 'leakwatch_queue_records')) === 0 &&
      (await metric(base, 'leakwatch_engine_held_records')) === 0 &&
      (await metric(base, 'leakwatch_engine_open_streams')) === 0
        ? true
        : undefined,
    30_000,
  );
}

function storedEvents(dataDir: string): string[] {
  const db = new Database(join(dataDir, 'leakwatch.db'), { readonly: true });
  try {
    return (db.prepare('SELECT id, category, body FROM events').all() as { id: string; category: string; body: string }[])
      .map((row) => `${row.id} ${row.category} ${(JSON.parse(row.body) as { line_count: number }).line_count}`)
      .sort();
  } finally {
    db.close();
  }
}

describe('real delivery gives exactly the offline result', () => {
  let work: string;
  let rules: ReturnType<typeof shippedRulesWith>;
  let entries: JournalEntry[];
  let offline: string[];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'leakwatch-delivery-'));
    // Production timings but the expiry, which a test cannot wait 30 s for.
    rules = shippedRulesWith({ expire_after: '4s' });
    entries = journalEntries();
    offline = (await analyzeOffline(entries, rules.dir, work)).map((event) => `${event.id} ${event.category} ${event.line_count}`).sort();
  });

  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
    rules.remove();
  });

  it('the offline run finds events of every kind in the corpus', () => {
    const categories = new Set(offline.map((line) => line.split(' ')[1]));
    expect([...categories].sort()).toEqual(['buffer-leak', 'direct-memory-exhausted', 'exception-caught-at-tail']);
    expect(offline.length).toBeGreaterThan(50);
  });

  for (const [shipperIndex, shipper] of SHIPPERS.entries()) {
    it(`${shipper.name}: out-of-order batches, a pause, a kill -9 between halves`, async () => {
      const dataDir = join(work, `data-${shipperIndex}`);
      let server: ServeProcess = await startServe(['--data-dir', dataDir, '--rules', rules.dir]);
      try {
        const random = prng(7520 + shipperIndex);
        const batches = chunk(entries, shipper.batchRecords);
        const rounds = chunk(batches, shipper.concurrency);
        const half = Math.floor(rounds.length / 2);
        for (const [roundIndex, round] of rounds.entries()) {
          if (roundIndex === half) {
            // Everything so far was answered 200; a crash now must lose and double nothing.
            expect(await server.stop('SIGKILL')).toBeNull();
            server = await startServe(['--data-dir', dataDir, '--rules', rules.dir]);
          }
          if (roundIndex === Math.floor(rounds.length / 4)) {
            // A shipper pause longer than the silence (Fluent Bit `Flush 5`, a retry backoff).
            await new Promise((resolve) => setTimeout(resolve, 3000));
          }
          // The round's requests race: they start in a shuffled order and are all in flight at once.
          const order = round.map((batch) => ({ batch, key: random() })).sort((a, b) => a.key - b.key);
          const base = server.url;
          const answers = await Promise.all(
            order.map(async ({ batch }) => {
              const { body, headers } = shipper.encode(batch);
              const response = await request(`${base}/ingest`, { method: 'POST', body, headers });
              const answer = (await response.body.json()) as Record<string, unknown>;
              return [response.statusCode, answer['accepted'], batch.length];
            }),
          );
          for (const [status, accepted, sent] of answers) {
            expect(status).toBe(200);
            expect(accepted).toBe(sent);
          }
        }
        await settled(server.url);
        expect(await metric(server.url, 'leakwatch_engine_late_records_total')).toBe(0);
      } finally {
        await server.stop('SIGTERM');
      }
      expect(storedEvents(dataDir)).toEqual(offline);
    });
  }
});
