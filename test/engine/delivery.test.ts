/**
 * Grouping holds under real delivery: shippers send concurrent requests that arrive out of order,
 * pause between flushes, retry late, and leakwatch itself restarts. The records are the real
 * two-host Netty export as `journalctl -o json` wrote it (test/fixtures/netty), read by the
 * production normaliser, with journald's own clock (`__REALTIME_TIMESTAMP`) and sequence number.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createEngine } from '../../src/engine/create-engine.js';
import type { Group } from '../../src/engine/group.js';
import { DEFAULT_GROUPER, type OpenGroupLimits } from '../../src/engine/grouper-config.js';
import { recordFromObject } from '../../src/ingest/normalize.js';
import type { LogRecord } from '../../src/ingest/record.js';
import { JOURNAL_JSON } from '../helpers/netty-fixtures.js';

const READ_AT = Date.UTC(2026, 0, 1);
const WINDOW = DEFAULT_GROUPER.reorderWindowMs;

function exportRecords(): LogRecord[] {
  return readFileSync(JOURNAL_JSON, 'utf8')
    .trim()
    .split('\n')
    .map((line) => recordFromObject(JSON.parse(line) as Record<string, unknown>, READ_AT));
}

/** Fresh copies: the engine keeps references to records it holds. */
function copies(records: readonly LogRecord[]): LogRecord[] {
  return records.map((record) => ({ ...record }));
}

interface Run {
  engine: ReturnType<typeof createEngine>;
  groups: Group[];
}

function run(options: { ordered?: boolean; limits?: OpenGroupLimits } = {}): Run {
  const groups: Group[] = [];
  const engine = createEngine({
    groupers: () => [DEFAULT_GROUPER],
    classifier: () => ({ classify: (group) => (groups.push(group), null) }),
    sink: () => undefined,
    clock: () => arrival.now,
    ...options,
  });
  return { engine, groups };
}

/** Each stream's groups as line lists, in order: what must not depend on delivery. */
function byStream(groups: readonly Group[]): Record<string, string[][]> {
  const out: Record<string, string[][]> = {};
  for (const group of groups) (out[group.stream] ??= []).push(group.lines);
  return out;
}

function offline(records: readonly LogRecord[]): Record<string, string[][]> {
  const { engine, groups } = run({ ordered: true });
  engine.push(copies(records));
  engine.flush();
  return byStream(groups);
}

/** Splits into batches at the given cut points (indexes), keeping each batch's records in order. */
function batchesAt(records: readonly LogRecord[], cuts: readonly number[]): LogRecord[][] {
  const points = [...new Set(cuts.map((cut) => cut % records.length))].sort((a, b) => a - b);
  const batches: LogRecord[][] = [];
  let start = 0;
  for (const point of [...points, records.length]) {
    if (point > start) batches.push(copies(records.slice(start, point)));
    start = point;
  }
  return batches;
}

describe('out-of-order delivery within the reorder window', () => {
  const records = exportRecords();
  const expected = offline(records);

  it('the export has journald clocks and sequence numbers on every record', () => {
    expect(records.every((record) => record.sourceUs !== undefined && record.position !== undefined)).toBe(true);
    expect(Object.values(expected).map((groups) => groups.filter((lines) => lines.length > 1).length)).toEqual([3, 3]);
  });

  it('batches posted in reverse order (two shipper workers racing) give the offline groups', () => {
    const { engine, groups } = run();
    const batches = batchesAt(records, [40, 90, 150, 200]);
    let now = 0;
    for (const batch of batches.reverse()) {
      // Each request lands 100 ms after the previous one: well inside the window.
      engine.sweep(now);
      pushAt(engine, batch, now);
      now += 100;
    }
    engine.sweep(now + WINDOW);
    engine.flush();
    expect(byStream(groups)).toEqual(expected);
    expect(engine.stats().lateRecords).toBe(0);
  });

  it('property: any split into batches, delivered in any order within the window, gives the offline groups', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 12 }), fc.func(fc.integer()), (cuts, rank) => {
        const batches = batchesAt(records, cuts);
        const shuffled = batches.map((batch, index) => ({ batch, key: rank(index) })).sort((a, b) => a.key - b.key);
        const { engine, groups } = run();
        let now = 0;
        for (const { batch } of shuffled) {
          pushAt(engine, batch, now);
          now += Math.floor(WINDOW / (shuffled.length + 1));
        }
        engine.sweep(now + WINDOW);
        engine.flush();
        expect(byStream(groups)).toEqual(expected);
      }),
      { numRuns: 300, seed: 7520 },
    );
  });

  it('property: interleaving the streams any way, line by line, never changes a stream\'s groups', () => {
    const streams = [...new Set(records.map((record) => record.stream))].map((stream) => records.filter((record) => record.stream === stream));
    fc.assert(
      fc.property(fc.array(fc.nat({ max: streams.length - 1 }), { minLength: records.length, maxLength: records.length }), (picks) => {
        const queues = streams.map((list) => [...list]);
        const interleaved: LogRecord[] = [];
        for (const pick of picks) {
          let stream = pick;
          while ((queues[stream] as LogRecord[]).length === 0) stream = (stream + 1) % queues.length;
          interleaved.push((queues[stream] as LogRecord[]).shift() as LogRecord);
        }
        expect(offline(interleaved)).toEqual(expected);
      }),
      { numRuns: 200, seed: 1690 },
    );
  });

  it('a batch arriving after the window is counted as late', () => {
    const { engine } = run();
    const [first, second] = batchesAt(records, [100]);
    pushAt(engine, second as LogRecord[], 0);
    engine.sweep(WINDOW + 1);
    pushAt(engine, first as LogRecord[], WINDOW + 2);
    engine.flush();
    expect(engine.stats().lateRecords).toBeGreaterThan(0);
  });
});

describe('a flood over the held-bytes budget', () => {
  const records = exportRecords();
  const expected = offline(records);
  // About a tenth of the export's held cost (message characters + 200 per record).
  const budget = Math.round(records.reduce((sum, record) => sum + record.message.length + 200, 0) / 10);

  it('groups the records due soonest early, never holds much more than the budget, and keeps the groups', () => {
    const { engine, groups } = run({ limits: { maxStreams: 1000, maxBytes: 1 << 26, maxHeldBytes: budget } });
    let peak = 0;
    // All within one instant: no window passes, only the budget makes room.
    for (const batch of batchesAt(records, Array.from({ length: 30 }, (_, index) => index * 9))) {
      pushAt(engine, batch, 0);
      peak = Math.max(peak, engine.stats().heldBytes);
    }
    expect(peak).toBeLessThanOrEqual(budget);
    expect(engine.stats().earlyReleases).toBeGreaterThan(records.length / 2);
    engine.flush();
    expect(byStream(groups)).toEqual(expected);
  });

  it('still reorders a late batch whose neighbours were held past the early releases', () => {
    const [first, late, rest] = batchesAt(records, [100, 110]) as [LogRecord[], LogRecord[], LogRecord[]];
    const cost = (batch: readonly LogRecord[]): number => batch.reduce((sum, record) => sum + record.message.length + 200, 0);
    // Just under what the first and the last batch hold: the first one (due soonest) makes room.
    const { engine, groups } = run({ limits: { maxStreams: 1000, maxBytes: 1 << 26, maxHeldBytes: cost(first) + cost(rest) - 1 } });
    pushAt(engine, first, 0);
    pushAt(engine, rest, 100);
    expect(engine.stats().earlyReleases).toBeGreaterThan(0);
    // The middle batch lands last, 50 ms later.
    pushAt(engine, late, 150);
    engine.sweep(WINDOW + 200);
    engine.flush();
    expect(byStream(groups)).toEqual(expected);
    expect(engine.stats().lateRecords).toBe(0);
  });
});

describe('time: event-time silence, wall-clock pauses and expiry', () => {
  const records = exportRecords();
  const stream = records.filter((record) => record.host === 'edge-a');
  const oodmStart = stream.findIndex((record) => record.message.includes('Failed to initialize a channel'));
  const oodm = stream.slice(oodmStart, oodmStart + 31);

  it('a shipper pause longer than the silence (Fluent Bit `Flush 5`) does not cut a trace', () => {
    const { engine, groups } = run();
    pushAt(engine, copies(oodm.slice(0, 10)), 0);
    engine.sweep(5_000);
    pushAt(engine, copies(oodm.slice(10)), 5_000);
    engine.sweep(5_000 + WINDOW);
    engine.flush();
    expect(groups.map((group) => group.lines.length)).toEqual([31]);
  });

  it('a retry 9 s later still completes the trace; the record closes only after expire_after without input', () => {
    const { engine, groups } = run();
    pushAt(engine, copies(oodm.slice(0, 10)), 0);
    engine.sweep(9_000);
    expect(groups).toHaveLength(0);
    pushAt(engine, copies(oodm.slice(10)), 9_000);
    engine.sweep(9_000 + DEFAULT_GROUPER.expireAfterMs - 1);
    expect(groups).toHaveLength(0);
    engine.sweep(9_000 + DEFAULT_GROUPER.expireAfterMs);
    expect(groups.map((group) => [group.lines.length, group.closeReason])).toEqual([[31, 'expired']]);
  });

  it('lines more than `silence` apart by their source clock are two records, whatever their shape', () => {
    const { engine, groups } = run({ ordered: true });
    const [header, exception, ...frames] = copies(oodm.slice(0, 6));
    const later = frames.map((record) => ({ ...record, sourceUs: (record.sourceUs as number) + 3_000_000 }));
    engine.push([header as LogRecord, exception as LogRecord, ...later]);
    engine.flush();
    expect(groups.map((group) => [group.lines.length, group.closeReason])).toEqual([
      [2, 'silence'],
      [4, 'end-of-input'],
    ]);
  });
});

describe("a stream's one held record (kept without a queue)", () => {
  const stream = exportRecords().filter((record) => record.host === 'edge-a');

  function engineWith(groupers: { current: readonly (typeof DEFAULT_GROUPER)[] }) {
    return createEngine({
      groupers: () => groupers.current,
      classifier: () => ({ classify: () => null }),
      sink: () => undefined,
      clock: () => arrival.now,
    });
  }

  it('is due one window after its own arrival, not after the arrival that joins it', () => {
    const engine = engineWith({ current: [DEFAULT_GROUPER] });
    pushAt(engine, copies(stream.slice(0, 1)), 0);
    pushAt(engine, copies(stream.slice(1, 2)), 500);
    engine.sweep(WINDOW - 1);
    expect(engine.stats().heldRecords).toBe(2);
    engine.sweep(WINDOW);
    expect(engine.stats().heldRecords).toBe(1);
    engine.sweep(500 + WINDOW);
    expect(engine.stats().heldRecords).toBe(0);
  });

  it('keeps the window it was held under when the rules reload with another', () => {
    const groupers = { current: [DEFAULT_GROUPER] as const };
    const engine = engineWith(groupers);
    pushAt(engine, copies(stream.slice(0, 1)), 0);
    groupers.current = [{ ...DEFAULT_GROUPER, reorderWindowMs: 3 * WINDOW }];
    pushAt(engine, copies(stream.slice(1, 2)), 10);
    engine.sweep(WINDOW);
    expect(engine.stats().heldRecords).toBe(1);
    engine.sweep(10 + 3 * WINDOW - 1);
    expect(engine.stats().heldRecords).toBe(1);
    engine.sweep(10 + 3 * WINDOW);
    expect(engine.stats().heldRecords).toBe(0);
  });

  it('applies a reload to the streams that receive nothing after it', () => {
    const edgeB = exportRecords().filter((record) => record.host === 'edge-b');
    const groupers = { current: [DEFAULT_GROUPER] as const };
    const engine = engineWith(groupers);
    pushAt(engine, copies(stream.slice(0, 1)), 0);
    engine.sweep(WINDOW);
    expect(engine.stats().openStreams).toBe(1);
    // Only edge-b's stream is sent anything under the new rules; edge-a's group expires by them.
    groupers.current = [{ ...DEFAULT_GROUPER, expireAfterMs: 2 * WINDOW }];
    pushAt(engine, copies(edgeB.slice(0, 1)), WINDOW);
    engine.sweep(2 * WINDOW + 1);
    expect(engine.stats().openStreams).toBe(1);
    engine.sweep(2 * WINDOW + 1_000);
    expect(engine.stats().openStreams).toBe(1);
    engine.sweep(3 * WINDOW);
    expect(engine.stats().openStreams).toBe(0);
  });

  it('goes back into the journal positions still pending until it is grouped', () => {
    const engine = engineWith({ current: [DEFAULT_GROUPER] });
    pushAt(engine, [{ ...(stream[0] as LogRecord), journalPos: 7 }], 0);
    expect([...engine.pendingJournalPositions()]).toEqual([7]);
    engine.sweep(WINDOW);
    // Grouped: now the open group's, still pending until it closes.
    expect([...engine.pendingJournalPositions()]).toEqual([7]);
    engine.flush();
    expect([...engine.pendingJournalPositions()]).toEqual([]);
  });
});

/** When the next push arrives (the test engines' clock, read once per push). */
const arrival = { now: 0 };

function pushAt(engine: ReturnType<typeof createEngine>, batch: LogRecord[], now: number): void {
  arrival.now = now;
  engine.push(batch);
}
