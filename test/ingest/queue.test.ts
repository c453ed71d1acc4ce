import { describe, expect, it } from 'vitest';
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
