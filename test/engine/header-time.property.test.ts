import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { headerTimeOf, headerTimeToEpochMs, parseLineHeader } from '../../src/ingest/line-layout.js';

const OFFSETS: Record<string, number> = { UTC: 0, CDT: -300, PST: -480, '+0530': 330, '-03:00': -180 };

/** The rule in words, with Date: the latest of reference year +1, 0, -1 that is a real date and not more than a day after the reference. */
function expected(month: number, day: number, ms: number, zone: string, referenceMs: number): number | undefined {
  const offset = OFFSETS[zone]!;
  const referenceYear = new Date(referenceMs).getUTCFullYear();
  for (const year of [referenceYear + 1, referenceYear, referenceYear - 1]) {
    const local = Date.UTC(year, month - 1, day) + ms;
    if (new Date(Date.UTC(year, month - 1, day)).getUTCDate() !== day) continue;
    const candidate = local - offset * 60_000;
    if (candidate <= referenceMs + 86_400_000) return candidate;
  }
  return undefined;
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

describe('headerTimeToEpochMs (linkerd `MMdd HH:mm:ss.SSS ZONE`, no year)', () => {
  it('agrees with a Date-based statement of the rule for any date, time, zone and reference', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 31 }),
        fc.integer({ min: 0, max: 86_399_999 }),
        fc.constantFrom(...Object.keys(OFFSETS)),
        fc.integer({ min: Date.UTC(1990, 0, 1), max: Date.UTC(2100, 0, 1) }),
        (month, day, ms, zone, referenceMs) => {
          const clock = `${pad(Math.floor(ms / 3_600_000))}:${pad(Math.floor(ms / 60_000) % 60)}:${pad(Math.floor(ms / 1000) % 60)}.${pad(ms % 1000, 3)}`;
          const header = parseLineHeader(`W ${pad(month)}${pad(day)} ${clock} ${zone} THREAD7: text`);
          expect(header).not.toBeNull();
          expect(headerTimeToEpochMs(header!, referenceMs)).toBe(expected(month, day, ms, zone, referenceMs));
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('headerTimeOf (the fast path on every line) agrees with parsing the whole header, for both layouts and any line', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('W ', 'I ', 'WARN ', 'ERROR ', ' INFO ', 'X ', ''),
        fc.integer({ min: 0, max: 1299 }),
        fc.integer({ min: 0, max: 86_399_999 }),
        fc.constantFrom(...Object.keys(OFFSETS), 'CET', 'BOGUS'),
        fc.constantFrom(' THREAD7: text', ' finagle/netty4-6: text', ' THREAD7 TraceId:ce91690fb56eea4c: x', ': text', ''),
        fc.integer({ min: Date.UTC(1990, 0, 1), max: Date.UTC(2100, 0, 1) }),
        (level, monthDay, ms, zone, rest, referenceMs) => {
          const clock = `${pad(Math.floor(ms / 3_600_000))}:${pad(Math.floor(ms / 60_000) % 60)}:${pad(Math.floor(ms / 1000) % 60)}.${pad(ms % 1000, 3)}`;
          const line = `${level}${pad(monthDay, 4)} ${clock} ${zone}${rest}`;
          const header = parseLineHeader(line);
          expect(headerTimeOf(line, referenceMs)).toBe(header === null ? undefined : headerTimeToEpochMs(header, referenceMs));
        },
      ),
      { numRuns: 5000 },
    );
  });
});
