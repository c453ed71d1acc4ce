/**
 * The forwarding outbox in a real SQLite file: one entry per target and record, totals kept in
 * step with every change, give-up, re-queue, dead letters aged out or dropped for room (and
 * said so), lanes that follow a new concurrency, and — the point of it — an event is in the
 * outbox exactly when it is stored.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { laneOf } from '../../src/forward/forwarder.js';
import { IncidentService } from '../../src/incidents/service.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { OutboxEntryInput } from '../../src/store/store.js';
import { makeEvent } from '../incidents/fixtures.js';

function entry(recordId: string, overrides: Partial<OutboxEntryInput> = {}): OutboxEntryInput {
  return { target: 'http://a/', lane: 0, stream: 'web-1\u001flinkerd\u001f1', recordId, body: JSON.stringify({ id: recordId }), ...overrides };
}

describe('the forwarding outbox', () => {
  let dir: string;
  let store: SqliteStore;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'leakwatch-outbox-'));
    store = new SqliteStore(dir);
  });

  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('holds a record once per target, and counts entries and bytes as they come and go', () => {
    expect(store.enqueueOutbox([entry('a'), entry('b'), entry('a'), entry('a', { target: 'http://b/' })], 1000)).toBe(3);
    expect(store.enqueueOutbox([entry('b')], 2000)).toBe(0);
    const bytes = Buffer.byteLength(JSON.stringify({ id: 'a' }));
    expect(store.outboxTotals()).toEqual([
      { target: 'http://a/', pendingEntries: 2, pendingBytes: 2 * bytes, deadEntries: 0, deadBytes: 0 },
      { target: 'http://b/', pendingEntries: 1, pendingBytes: bytes, deadEntries: 0, deadBytes: 0 },
    ]);
    const [first, second] = store.outboxLane('http://a/', 0, 10);
    expect([first!.recordId, second!.recordId]).toEqual(['a', 'b']);
    expect(first).toMatchObject({ createdAt: 1000, attempts: 0, nextAt: 0, lastStatus: null, lastError: null, bytes });

    store.outboxRetryLater([first!.id], 5000, { status: 503, error: 'HTTP 503: busy' });
    expect(store.outboxLane('http://a/', 0, 1)[0]).toMatchObject({ recordId: 'a', attempts: 1, nextAt: 5000, lastStatus: 503, lastError: 'HTTP 503: busy' });
    store.outboxDeadLetter([second!.id], { status: 400, error: 'HTTP 400: bad' }, 6000);
    store.outboxDelivered([first!.id]);
    expect(store.outboxTotals()).toEqual([
      { target: 'http://a/', pendingEntries: 0, pendingBytes: 0, deadEntries: 1, deadBytes: bytes },
      { target: 'http://b/', pendingEntries: 1, pendingBytes: bytes, deadEntries: 0, deadBytes: 0 },
    ]);
    expect(store.deadLetters({ limit: 10 })).toEqual([
      { id: second!.id, target: 'http://a/', recordId: 'b', createdAt: 1000, deadAt: 6000, attempts: 1, lastStatus: 400, lastError: 'HTTP 400: bad', bytes },
    ]);
    // A dead letter still holds its record: the same id is not queued beside it.
    expect(store.enqueueOutbox([entry('b')], 7000)).toBe(0);
    expect(store.outboxTargets()).toEqual(['http://b/']);
  });

  it('gives up on a lane\'s old entries, re-queues dead letters as new, and pages them by id', () => {
    store.enqueueOutbox([entry('old-1'), entry('old-2')], 1000);
    store.enqueueOutbox([entry('new', { lane: 0 }), entry('other-lane', { lane: 1 })], 9000);
    expect(store.outboxGiveUp('http://a/', 0, 5000, { status: 503, error: 'gave up' }, 10_000)).toBe(2);
    expect(store.outboxLane('http://a/', 0, 10).map((row) => row.recordId)).toEqual(['new']);
    expect(store.outboxLane('http://a/', 1, 10).map((row) => row.recordId)).toEqual(['other-lane']);
    const firstPage = store.deadLetters({ target: 'http://a/', limit: 1 });
    expect(firstPage.map((row) => row.recordId)).toEqual(['old-1']);
    expect(store.deadLetters({ target: 'http://a/', afterId: firstPage[0]!.id, limit: 5 }).map((row) => row.recordId)).toEqual(['old-2']);
    expect(store.deadLetters({ target: 'http://elsewhere/', limit: 5 })).toEqual([]);

    expect(store.requeueDeadLetters('http://a/', 20_000)).toBe(2);
    // Back at the head of their lane (older ids first: the stream's order), with a fresh age.
    expect(store.outboxLane('http://a/', 0, 10).map((row) => [row.recordId, row.createdAt, row.attempts])).toEqual([
      ['old-1', 20_000, 0],
      ['old-2', 20_000, 0],
      ['new', 9000, 0],
    ]);
    expect(store.deadLetters({ limit: 5 })).toEqual([]);
  });

  it('drops dead letters past the age, then the oldest ones while the outbox is over its bytes', () => {
    const body = JSON.stringify({ id: 'x', text: 'y'.repeat(1000) });
    store.enqueueOutbox([entry('d0', { body }), entry('d1', { body }), entry('d2', { body }), entry('d3', { body })], 1000);
    store.enqueueOutbox([entry('pending', { body })], 50_000);
    const ids = store.outboxLane('http://a/', 0, 10).map((row) => row.id);
    store.outboxDeadLetter(ids.slice(0, 4), { status: 400, error: 'bad' }, 2000);
    // Young enough and room enough: nothing goes.
    expect(store.dropDeadLetters(500, 1e9)).toEqual([]);
    const size = Buffer.byteLength(body);
    // Room for the pending entry and two dead letters: the two oldest dead letters go.
    expect(store.dropDeadLetters(500, size * 3)).toEqual([{ target: 'http://a/', reason: 'space', entries: 2 }]);
    expect(store.deadLetters({ limit: 10 }).map((row) => row.recordId)).toEqual(['d2', 'd3']);
    expect(store.dropDeadLetters(1001, 1e9)).toEqual([{ target: 'http://a/', reason: 'age', entries: 2 }]);
    expect(store.deadLetters({ limit: 10 })).toEqual([]);
    // Pending entries are never dropped, whatever the bytes.
    expect(store.dropDeadLetters(Number.MAX_SAFE_INTEGER, 0)).toEqual([]);
    expect(store.outboxLane('http://a/', 0, 10).map((row) => row.recordId)).toEqual(['pending']);
  });

  it('moves each stream whole to the lane of a new concurrency, keeping its order', () => {
    const streams = ['h1\u001fs\u001f1', 'h2\u001fs\u001f2', 'h3\u001fs\u001f3', 'h4\u001fs\u001f4', 'h5\u001fs\u001f5'];
    const queued = streams.flatMap((stream, index) => [0, 1, 2].map((n) => entry(`${index}-${n}`, { stream, lane: laneOf(stream, 4) })));
    store.enqueueOutbox(queued, 1000);
    store.relaneOutbox('http://a/', (stream) => laneOf(stream, 2));
    for (const lane of [2, 3]) expect(store.outboxLane('http://a/', lane, 100)).toEqual([]);
    const byLane = [0, 1].map((lane) => store.outboxLane('http://a/', lane, 100));
    expect(byLane.flat()).toHaveLength(15);
    for (const rows of byLane) {
      for (const row of rows) expect(row.lane).toBe(laneOf(row.stream, 2));
      for (const stream of streams) {
        const order = rows.filter((row) => row.stream === stream).map((row) => row.recordId);
        expect(order).toEqual([...order].sort());
      }
    }
  });

  it('is written in the transaction that stores the event: when it fails, the event is not stored either', () => {
    const incidents = new IncidentService(store);
    const event = makeEvent('oodm', { time: '2024-11-01T11:59:32Z' });
    expect(() =>
      incidents.ingest([event], (stored) => {
        store.enqueueOutbox(stored.map((e) => entry(e.id, { body: JSON.stringify(e) })), 1000);
        throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
      }),
    ).toThrow('disk is full');
    expect(store.hasEvent(event.id, Date.parse(event.timestamp))).toBe(false);
    expect(store.outboxTotals()).toEqual([]);

    // Retried: stored and queued together, and a duplicate by id is neither stored nor queued again.
    const queue = (stored: typeof event[]) => void store.enqueueOutbox(stored.map((e) => entry(e.id, { body: JSON.stringify(e) })), 2000);
    expect(incidents.ingest([event], queue).inserted).toBe(1);
    expect(incidents.ingest([event], queue)).toMatchObject({ inserted: 0, duplicates: 1 });
    expect(store.hasEvent(event.id, Date.parse(event.timestamp))).toBe(true);
    expect(store.outboxLane('http://a/', 0, 10).map((row) => [row.recordId, JSON.parse(row.body).incident_id])).toEqual([[event.id, expect.any(String)]]);
  });
});
