/**
 * The router fills a chunk's line arrays again once a shard gives them back (Router.reuse): what a
 * shard reads of a later chunk must be that chunk's lines only, whatever the arrays held before.
 */
import { describe, expect, it } from 'vitest';
import { LINE_FIELDS, Router, type ShardLines } from '../../src/analyze/router.js';

const RECEIVED_AT = Date.UTC(2025, 10, 1);

function journald(host: string, pid: number, second: number, message: string): string {
  return `Nov 01 11:59:${String(second).padStart(2, '0')} ${host} linkerd[${pid}]: ${message}\n`;
}

/** The lines a shard is given, as numbers it reads: [start, end, line, message offset, parsed] and [time, sourceUs]. */
function readable(lines: ShardLines): Array<{ fields: number[]; times: number[] }> {
  return Array.from({ length: lines.count }, (_, index) => ({
    fields: [...lines.ranges.subarray(index * LINE_FIELDS, (index + 1) * LINE_FIELDS)],
    times: [...lines.times.subarray(index * 2, index * 2 + 2)],
  }));
}

describe('Router.reuse', () => {
  it('gives a later chunk the arrays given back, holding only that chunk’s lines', () => {
    // A long first chunk fills the arrays well past what the short second chunk writes.
    const first = Buffer.from(Array.from({ length: 400 }, (_, i) => journald(`host-${i % 3}`, 100 + (i % 3), i % 60, `I 1101 11:59:00.000 UTC THREAD1: first ${i}`)).join(''));
    const second = Buffer.from(
      journald('host-1', 101, 5, 'E 1101 11:59:05.000 UTC THREAD2: second a') + journald('host-0', 100, 6, 'I 1101 11:59:06.000 UTC THREAD3: second b'),
    );

    const reusing = new Router(2, RECEIVED_AT);
    const fresh = new Router(2, RECEIVED_AT);
    const firstRouted = reusing.route(first, first.length);
    fresh.route(first, first.length);
    const given = firstRouted.shards.map((lines) => ({ ranges: lines.ranges, times: lines.times }));
    for (const { ranges, times } of given) reusing.reuse(ranges, times);

    const again = reusing.route(second, second.length);
    const expected = fresh.route(second, second.length);
    // The arrays went round: no new ones were made for this chunk.
    const givenRanges = new Set(given.map(({ ranges }) => ranges));
    const givenTimes = new Set(given.map(({ times }) => times));
    for (const lines of again.shards) {
      expect(givenRanges.has(lines.ranges)).toBe(true);
      expect(givenTimes.has(lines.times)).toBe(true);
    }
    expect(again.shards.map(readable)).toEqual(expected.shards.map(readable));
    expect(again.shards.reduce((sum, lines) => sum + lines.count, 0)).toBe(2);
  });
});
