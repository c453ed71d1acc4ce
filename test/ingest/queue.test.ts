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
