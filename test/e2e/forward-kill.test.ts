/**
 * Issue 9's "done when", against real `leakwatch serve` child processes and a loopback receiver:
 * the real Netty export reaches a downstream that refuses its first requests, every event by id,
 * across a kill -9 after half the batches were answered 200; and a trace whose first half was
 * answered 200 before a kill -9 still arrives as one event with its whole line count.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LeakEvent } from '../../src/engine/event.js';
import { analyzeOffline, chunk, fluentBitRecord, type JournalEntry } from '../helpers/journal-corpus.js';
import { JOURNAL_JSON, JOURNAL_TEXT, loadManifest } from '../helpers/netty-fixtures.js';
import { deliveredLines, startReceiver, type Receiver } from '../helpers/receiver.js';
import { shippedRulesWith } from '../helpers/rules-dir.js';
import { eventually, startServe, type ServeProcess } from '../helpers/serve-process.js';

async function post(base: string, body: string, contentType: string): Promise<void> {
  const response = await request(`${base}/ingest`, { method: 'POST', body, headers: { 'content-type': contentType } });
  expect(response.statusCode).toBe(200);
  await response.body.dump();
}

/** Deliveries per id, and whether every repeat of an id carried the same event. */
function byId(events: readonly LeakEvent[]): { counts: Map<string, number>; sameBody: boolean } {
  const counts = new Map<string, number>();
  const bodies = new Map<string, string>();
  let sameBody = true;
  for (const event of events) {
    counts.set(event.id, (counts.get(event.id) ?? 0) + 1);
    const body = JSON.stringify(event);
    if (bodies.has(event.id) && bodies.get(event.id) !== body) sameBody = false;
    bodies.set(event.id, body);
  }
  return { counts, sameBody };
}

function outboxRows(dataDir: string): number {
  const db = new Database(join(dataDir, 'leakwatch.db'), { readonly: true });
  try {
    return db.prepare('SELECT COUNT(*) FROM forward_outbox').pluck().get() as number;
  } finally {
    db.close();
  }
}

describe('leakwatch serve --forward-url, killed with -9', () => {
  let work: string;
  let server: ServeProcess | undefined;
  const receivers: Receiver[] = [];
  const rules: Array<ReturnType<typeof shippedRulesWith>> = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'leakwatch-forward-kill-'));
  });

  afterAll(async () => {
    await server?.stop('SIGKILL');
    for (const receiver of receivers) await receiver.close();
    for (const made of rules) made.remove();
    rmSync(work, { recursive: true, force: true });
  });

  it('delivers each event of the Netty export by id to a receiver that refuses its first 3 requests, across a kill -9 after half the batches', async () => {
    const quick = shippedRulesWith({ expire_after: '2s' });
    rules.push(quick);
    const entries = readFileSync(JOURNAL_JSON, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as JournalEntry);
    const expected = await analyzeOffline(entries, quick.dir, work);
    expect(expected).toHaveLength(6);
    const receiver = await startReceiver((_request, index) => (index < 3 ? { status: 503, body: 'not yet' } : { status: 200 }));
    receivers.push(receiver);
    const dataDir = join(work, 'netty');
    const args = ['--data-dir', dataDir, '--rules', quick.dir, '--forward-url', `${receiver.url}/`];
    server = await startServe(args);
    const batches = chunk(entries, 28);
    for (const [index, batch] of batches.entries()) {
      if (index === Math.floor(batches.length / 2)) {
        expect(await server.stop('SIGKILL')).toBeNull();
        server = await startServe(args);
      }
      await post(server.url, JSON.stringify(batch.map(fluentBitRecord)), 'application/json');
    }
    await eventually(async () => (new Set(deliveredLines(receiver).map((event) => event.id)).size >= expected.length ? true : undefined), 30_000);
    await server.stop('SIGTERM');
    server = undefined;

    expect(receiver.requests.slice(0, 3).map((answered) => answered.answered)).toEqual([503, 503, 503]);
    const delivered = deliveredLines<LeakEvent>(receiver);
    const { counts, sameBody } = byId(delivered);
    expect([...counts.keys()].sort()).toEqual(expected.map((event) => event.id).sort());
    expect(sameBody).toBe(true);
    const duplicates = delivered.length - counts.size;
    console.log(`Netty export across a kill -9: ${expected.length} events, ${delivered.length} deliveries, ${duplicates} duplicates (same id and body), ${receiver.requests.length} requests`);
    expect(outboxRows(dataDir)).toBe(0);
  });

  it('forwards a trace killed in its middle (first half answered 200) as one event with its whole line count once the rest arrives', async () => {
    // Nothing closes by waiting in either run: the trace closes when the next record of its stream comes.
    const slow = shippedRulesWith({ expire_after: '10m' });
    rules.push(slow);
    const manifest = loadManifest().hosts['edge-b']!;
    const record = manifest.records.find((candidate) => candidate.category === 'direct-memory-exhausted')!;
    const lines = readFileSync(JOURNAL_TEXT, 'utf8').split('\n').filter((line) => line.includes(' edge-b '));
    const start = lines.findIndex((line) => line.endsWith(record.journal_first_line));
    expect(start).toBeGreaterThan(0);
    const trace = lines.slice(start, start + record.line_count);
    const closer = lines[start + record.line_count]!;
    const half = Math.floor(trace.length / 2);

    const receiver = await startReceiver();
    receivers.push(receiver);
    const dataDir = join(work, 'mid-trace');
    const args = ['--data-dir', dataDir, '--rules', slow.dir, '--forward-url', `${receiver.url}/#max-wait=100ms`];
    server = await startServe(args);
    await post(server.url, `${lines.slice(0, start).join('\n')}\n${trace.slice(0, half).join('\n')}\n`, 'text/plain');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await server.stop('SIGKILL')).toBeNull();
    server = await startServe(args);
    await post(server.url, `${trace.slice(half).join('\n')}\n${closer}\n`, 'text/plain');

    const oodm = await eventually(async () => deliveredLines<LeakEvent>(receiver).find((event) => event.category === 'direct-memory-exhausted'), 20_000);
    await server.stop('SIGTERM');
    server = undefined;
    expect(oodm.line_count).toBe(record.line_count);
    expect(oodm.message).toBe(record.journal_first_line);
    expect(oodm.fields).toMatchObject({ used_bytes: record.used_bytes, max_bytes: record.max_bytes, requested_bytes: record.requested_bytes });
    const offline = await analyzeOffline(`${lines.slice(0, start + record.line_count + 1).join('\n')}\n`, slow.dir, work);
    // Exactly the events of an uninterrupted run of the same lines: no headless half trace.
    expect(deliveredLines<LeakEvent>(receiver).map((event) => `${event.id} ${event.category} ${event.line_count}`).sort()).toEqual(
      offline.map((event) => `${event.id} ${event.category} ${event.line_count}`).sort(),
    );
  });
});
