/**
 * A checkpoint keeps the journal positions still pending per batch: a bitmap of dense batches, the
 * indexes of sparse ones. Reading them back must give what sorting them would, repeats folded; a
 * checkpoint written as [first, count] runs by an earlier build must still be read.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { journalPosition } from '../../src/ingest/record.js';
import { fromBatchPending, journalCheckpointOf, journalCheckpointText, pendingOf, toBatchPending } from '../../src/store/rows.js';

const sorted = (positions: readonly number[]): number[] => [...new Set(positions)].sort((a, b) => a - b);

describe('pending positions per batch', () => {
  it('give back the sorted positions of any input: dense and sparse batches, repeats, any order', () => {
    const position = fc.tuple(fc.integer({ min: 1, max: 6 }), fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 5_000_000 })));
    fc.assert(
      fc.property(fc.array(position, { maxLength: 400 }), (pairs) => {
        const positions = pairs.map(([seq, index]) => journalPosition(seq, index));
        const pending = toBatchPending(positions);
        expect(pending.map((entry) => entry[0])).toEqual(sorted(pending.map((entry) => entry[0])));
        expect(fromBatchPending(pending)).toEqual(sorted(positions));
        expect(journalCheckpointOf(journalCheckpointText({ pushedThrough: 7, pending: positions }))).toEqual({ pushedThrough: 7, pending: sorted(positions) });
      }),
      { seed: 1201, numRuns: 500 },
    );
  });

  it('a flood held by 8 interleaved streams, each window ending at its own place, is one bitmap per batch', () => {
    const positions: number[] = [];
    for (let stream = 0; stream < 8; stream++) {
      // Each stream holds its records from its own point of batch 10 on: broken runs, dense batches.
      for (let seq = 10; seq <= 12; seq++) for (let index = stream; index < 20_000; index += 8) if (seq > 10 || index > 1000 * stream) positions.push(journalPosition(seq, index));
    }
    const pending = toBatchPending(positions);
    expect(pending.map((entry) => [entry[0], entry.length])).toEqual([[10, 3], [11, 3], [12, 3]]);
    // 20,000 indexes in 2,500 bytes of bitmap per batch, base64.
    expect(JSON.stringify(pending).length).toBeLessThan(3 * 3400 + 100);
    expect(fromBatchPending(pending)).toEqual(sorted(positions));
    expect(toBatchPending([])).toEqual([]);
  });

  it('a few indexes far apart in a batch are kept as indexes, not as a bitmap of the space between', () => {
    const positions = [journalPosition(3, 5), journalPosition(3, 9_000_000), journalPosition(3, 5)];
    expect(toBatchPending(positions)).toEqual([[3, [5, 9_000_000]]]);
  });

  it('reads the [first, count] runs an earlier build wrote', () => {
    // The shape journalCheckpointText had before per-batch entries.
    const earlier = JSON.stringify({ pushedThrough: 12, pending: [[journalPosition(11, 4), 3], [journalPosition(12, 0), 2]] });
    expect(journalCheckpointOf(earlier)).toEqual({ pushedThrough: 12, pending: [journalPosition(11, 4), journalPosition(11, 5), journalPosition(11, 6), journalPosition(12, 0), journalPosition(12, 1)] });
    expect(pendingOf([[journalPosition(2, 0), 1]])).toEqual([journalPosition(2, 0)]);
  });
});
