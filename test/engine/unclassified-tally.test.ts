import { describe, expect, it } from 'vitest';
import type { Group } from '../../src/engine/group.js';
import { firstLineShape, UnclassifiedTally } from '../../src/engine/unclassified-tally.js';

function group(firstLine: string, time: number, lines = 2): Group {
  return {
    stream: 'h\u001fs\u001f1',
    host: 'h',
    service: 's',
    pid: '1',
    time,
    lines: [firstLine, ...Array.from({ length: lines - 1 }, (_, i) => `\tat a.B.c(B.java:${i})`)],
    truncated: false,
    closeReason: 'next-record',
  };
}

describe('UnclassifiedTally', () => {
  it('counts multi-line records by first-line shape, single lines not at all', () => {
    const tally = new UnclassifiedTally();
    tally.add(group('W 1101 14:10:26.714 UTC THREAD42: request 17 failed on 0xdeadbeef', 1000));
    tally.add(group('W 1101 14:10:27.001 UTC THREAD43: request 18 failed on 0xcafe', 2000));
    tally.add(group('a single line', 3000, 1));
    expect(tally.total).toBe(2);
    expect(tally.shapes(10)).toEqual([
      {
        first_line: firstLineShape('W 1101 14:10:26.714 UTC THREAD42: request 17 failed on 0xdeadbeef'),
        count: 2,
        last_seen: new Date(2000).toISOString(),
        host: 'h',
        service: 's',
        example: ['W 1101 14:10:26.714 UTC THREAD42: request 17 failed on 0xdeadbeef', '\tat a.B.c(B.java:0)'],
      },
    ]);
    expect(tally.shapes(1)[0]!.first_line).toBe('request N failed on 0x…');
  });

  it('is bounded: a new shape replaces the least counted one, the frequent shapes stay', () => {
    const tally = new UnclassifiedTally(3);
    for (let i = 0; i < 5; i++) tally.add(group('frequent: a', i));
    for (let i = 0; i < 3; i++) tally.add(group('frequent: b', i));
    for (let i = 0; i < 100; i++) tally.add(group(`one-off ${String.fromCharCode(97 + (i % 26))}${String.fromCharCode(97 + Math.floor(i / 26))}`, i));
    expect(tally.distinct).toBe(3);
    expect(tally.evicted).toBe(99);
    expect(tally.total).toBe(108);
    expect(tally.commonest(2)).toEqual([
      { firstLine: 'frequent: a', count: 5 },
      { firstLine: 'frequent: b', count: 3 },
    ]);
  });

  it('keeps a bounded example of a long record', () => {
    const tally = new UnclassifiedTally();
    tally.add(group(`x`.repeat(1000), 1, 50));
    const [shape] = tally.shapes(1);
    expect(shape!.example).toHaveLength(12);
    expect(shape!.example[0]).toHaveLength(300);
  });
});

describe("the engine's unclassified hook outside the events' order (the server's tally)", () => {
  it('keeps the events of one push in one sink call, and still hands on every unclassified group', async () => {
    const { createEngine } = await import('../../src/engine/create-engine.js');
    const { everyGroupClassifier, linesOf } = await import('./helpers.js');
    const events = everyGroupClassifier([]);
    // Every other line is a record the classifier declines.
    const classifier = { classify: (group: Group) => (group.lines[0]!.startsWith('W ') ? events.classify(group) : null) };
    const lines = Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? `W 1101 11:59:3${i}.000 UTC THREAD1: warning ${i}` : `I 1101 11:59:3${i}.000 UTC THREAD1: info ${i}`));
    for (const inCloseOrder of [true, false]) {
      const sinkCalls: number[] = [];
      const unclassified: Group[] = [];
      const engine = createEngine({
        groupers: () => [],
        classifier: () => classifier,
        sink: (batch) => sinkCalls.push(batch.length),
        unclassified: (group) => unclassified.push(group),
        unclassifiedInCloseOrder: inCloseOrder,
        ordered: true,
      });
      engine.push(linesOf('h', 's', '1', lines));
      engine.flush();
      expect(unclassified, String(inCloseOrder)).toHaveLength(5);
      // In close order the events are split around each unclassified group; outside it, the push's five events go in one call.
      expect(sinkCalls, String(inCloseOrder)).toEqual(inCloseOrder ? [1, 1, 1, 1, 1] : [5]);
    }
  });
});
