import { describe, expect, it } from 'vitest';
import { allRecords, type RecordBatch } from '../../src/ingest/packed-records.js';
import { BoundedRecordQueue } from '../../src/ingest/queue.js';
import type { LogRecord } from '../../src/ingest/record.js';

// Issue 8, defect 8: the engine queue counted records only (16 KB lines: 189k queued records,
// 3 GiB RSS, no 503); it counts bytes too.
const MiB = 1024 * 1024;

describe('the engine queue counts bytes as well as records', () => {
  function batchOfLines(lines: number, lineBytes: number): LogRecord[] {
    return Array.from({ length: lines }, () => ({ time: 0, host: 'h', service: 's', pid: '1', stream: 'h\u001fs\u001f1', message: 'x'.repeat(lineBytes) }));
  }

  it('16 KB lines: refused by bytes long before the record count is reached', () => {
    const queue = new BoundedRecordQueue(500_000, 64 * MiB);
    let accepted = 0;
    while (queue.offer(batchOfLines(100, 16 * 1024))) accepted++;
    expect(queue.size).toBeLessThan(500_000 / 100);
    expect(queue.bytes).toBeLessThanOrEqual(64 * MiB);
    expect(queue.bytes).toBeGreaterThan(60 * MiB);
    expect(accepted).toBeGreaterThan(0);
    queue.take();
    expect(queue.offer(batchOfLines(100, 16 * 1024))).toBe(true);
  });

  it('an empty queue takes one batch larger than the cap, so that no batch is refused forever', () => {
    const queue = new BoundedRecordQueue(10, 1024);
    expect(queue.offer(batchOfLines(5, 4096))).toBe(true);
    expect(queue.offer(batchOfLines(1, 10))).toBe(false);
  });
});

describe('a batch held back while its journal write is in flight', () => {
  const batch = (message: string, lines = 2): LogRecord[] => Array.from({ length: lines }, () => ({ time: 0, host: 'h', service: 's', pid: '1', stream: 'h\u001fs\u001f1', message }));

  it('keeps its place: neither it nor a later batch is taken until it is released', () => {
    const queue = new BoundedRecordQueue(100);
    const first = batch('first');
    const place = queue.offerHeld(first);
    expect(place).toBeDefined();
    expect(queue.offer(batch('second'))).toBe(true);
    expect(queue.size).toBe(4);
    expect(queue.takeable).toBe(false);
    expect(queue.take()).toBeUndefined();
    place?.release();
    expect(queue.takeable).toBe(true);
    expect(queue.take()).toBe(first);
    expect(firstMessage(queue.take())).toBe('second');
    expect(queue.size).toBe(0);
  });

  it('counts against the capacity while held, and gives its room back when cancelled', () => {
    const queue = new BoundedRecordQueue(5);
    queue.offer(batch('taken now', 1));
    const place = queue.offerHeld(batch('held', 3));
    expect(queue.fits(batch('one too many', 2))).toBe(false);
    place?.cancel();
    expect(queue.size).toBe(1);
    expect(firstMessage(queue.take())).toBe('taken now');
    expect(queue.takeable).toBe(false);
    expect(queue.offerHeld(batch('fits again', 4))).toBeDefined();
  });
});

function firstMessage(taken: RecordBatch | undefined): string | undefined {
  return taken === undefined ? undefined : allRecords(taken)[0]?.message;
}

describe('a crowded queue: past a quarter of a capacity, ingest answers once the engine has taken enough', () => {
  const batch = (lines: number, message = 'x'): LogRecord[] => Array.from({ length: lines }, () => ({ time: 0, host: 'h', service: 's', pid: '1', stream: 'h\u001fs\u001f1', message }));

  it('by records: crowded past a quarter, and the waiters are told once take() brings it back', async () => {
    const queue = new BoundedRecordQueue(100);
    expect(queue.offer(batch(20))).toBe(true);
    expect(queue.crowded).toBe(false);
    expect(queue.whenUncrowded()).toBeUndefined();
    expect(queue.offer(batch(10))).toBe(true);
    expect(queue.crowded).toBe(true);
    const told: string[] = [];
    const first = queue.whenUncrowded()?.then(() => told.push('first'));
    const second = queue.whenUncrowded()?.then(() => told.push('second'));
    expect(first).toBeDefined();
    queue.take();
    await Promise.all([first, second]);
    expect(told).toEqual(['first', 'second']);
    expect(queue.crowded).toBe(false);
  });

  it('by bytes, and a cancelled held batch gives its room back to the waiters too', async () => {
    const queue = new BoundedRecordQueue(1_000_000, 64 * 1024);
    const place = queue.offerHeld(batch(10, 'y'.repeat(2000)));
    expect(place).toBeDefined();
    expect(queue.crowded).toBe(true);
    let told = false;
    const waiting = queue.whenUncrowded()?.then(() => (told = true));
    await Promise.resolve();
    expect(told).toBe(false);
    place?.cancel();
    await waiting;
    expect(told).toBe(true);
  });

  it('a take() that leaves it still crowded tells no one', async () => {
    const queue = new BoundedRecordQueue(100);
    for (let index = 0; index < 6; index++) expect(queue.offer(batch(10))).toBe(true);
    let told = false;
    void queue.whenUncrowded()?.then(() => (told = true));
    queue.take();
    await new Promise((resolve) => setImmediate(resolve));
    expect(queue.size).toBe(50);
    expect(told).toBe(false);
    queue.take();
    queue.take();
    await new Promise((resolve) => setImmediate(resolve));
    expect(queue.size).toBe(30);
    expect(told).toBe(false);
    queue.take();
    await new Promise((resolve) => setImmediate(resolve));
    expect(told).toBe(true);
  });
});
