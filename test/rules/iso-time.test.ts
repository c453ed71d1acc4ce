import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isoTimeOf } from '../../src/engine/grouped-record.js';

describe('isoTimeOf (event timestamps with a per-second cache)', () => {
  it('writes exactly what Date#toISOString writes, whatever the order of times', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: -1e13, max: 4e12, noNaN: true }), { maxLength: 50 }), (times) => {
        for (const time of times) expect(isoTimeOf(time)).toBe(new Date(time).toISOString());
      }),
    );
  });

  it('falls back to the epoch for times Date cannot represent', () => {
    expect(isoTimeOf(1e17)).toBe('1970-01-01T00:00:00.000Z');
  });
});
