/**
 * A checkpoint keeps the journal positions still pending as [first, count] runs. toRuns must give
 * what sorting them would, for dense batches (flags), sparse ones (sorted) and repeats alike.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { journalPosition } from '../../src/ingest/record.js';
import { fromRuns, toRuns } from '../../src/store/rows.js';

function sortedRuns(positions: readonly number[]): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  for (const position of [...new Set(positions)].sort((a, b) => a - b)) {
    const last = runs[runs.length - 1];
    if (last !== undefined && position === last[0] + last[1]) last[1]++;
    else runs.push([position, 1]);
  }
  return runs;
}

describe('toRuns', () => {
  it('gives the sorted runs of any positions: dense and sparse batches, repeats, any order', () => {
    const position = fc.tuple(fc.integer({ min: 1, max: 6 }), fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 5_000_000 })));
    fc.assert(
      fc.property(fc.array(position, { maxLength: 400 }), (pairs) => {
        const positions = pairs.map(([seq, index]) => journalPosition(seq, index));
        const runs = toRuns(positions);
        expect(runs).toEqual(sortedRuns(positions));
        expect(fromRuns(runs)).toEqual([...new Set(positions)].sort((a, b) => a - b));
      }),
      { seed: 1201, numRuns: 500 },
    );
  });

  it('makes one run per stretch of a flood: 8 interleaved streams held over 3 batches', () => {
    const positions: number[] = [];
    for (let stream = 0; stream < 8; stream++) {
      for (let seq = 10; seq <= 12; seq++) for (let index = stream; index < 20_000; index += 8) positions.push(journalPosition(seq, index));
    }
    expect(toRuns(positions)).toEqual([10, 11, 12].map((seq) => [journalPosition(seq, 0), 20_000]));
    expect(toRuns([])).toEqual([]);
  });
});
