import { describe, expect, it } from 'vitest';
import { createEngine } from '../../src/engine/create-engine.js';
import type { LeakEvent } from '../../src/engine/event.js';
import type { Group } from '../../src/engine/group.js';
import { DEFAULT_GROUPER, type GrouperConfig, type OpenGroupLimits } from '../../src/engine/grouper-config.js';
import { everyGroupClassifier, interleave, linesOf, recordOf } from './helpers.js';
import {
  CHANNEL_INIT_SEED,
  INFO_1971,
  LEAK_1678,
  LEAK_2292,
  OODM_JOURNALD_1690,
  RESET_5936,
  RESET_CANCEL_2247,
  TAIL_RESET_SEED,
  UNKNOWN_CHANNEL_2247,
} from './fixtures.js';

interface Harness {
  engine: ReturnType<typeof createEngine>;
  groups: Group[];
  sinkCalls: LeakEvent[][];
  setNow(ms: number): void;
}

function harness(options: { groupers?: GrouperConfig[]; limits?: OpenGroupLimits } = {}): Harness {
  const groups: Group[] = [];
  const sinkCalls: LeakEvent[][] = [];
  let now = 1_000_000;
  const classifier = everyGroupClassifier(groups);
  const engine = createEngine({
    groupers: () => options.groupers ?? [DEFAULT_GROUPER],
    classifier: () => classifier,
    sink: (events) => sinkCalls.push(events),
    clock: () => now,
    ...(options.limits ? { limits: options.limits } : {}),
  });
  return { engine, groups, sinkCalls, setNow: (ms) => (now = ms) };
}

describe('grouping on one stream', () => {
  it('joins a header, its exception and journald-stripped frames; the next header closes it', () => {
    const h = harness();
    h.engine.push(linesOf('host-1', 'linkerd', '2410', [...OODM_JOURNALD_1690, INFO_1971]));
    expect(h.groups).toHaveLength(1);
    expect(h.groups[0]).toMatchObject({ lines: OODM_JOURNALD_1690, closeReason: 'next-record', truncated: false, host: 'host-1', pid: '2410' });
    h.engine.flush();
    expect(h.groups.map((group) => group.lines)).toEqual([OODM_JOURNALD_1690, [INFO_1971]]);
    expect(h.groups[1]?.closeReason).toBe('end-of-input');
  });

  it('keeps bare texts (Reset.Cancel, Connection reset by peer, cut frames) in the group of a header stream', () => {
    const h = harness();
    h.engine.push(linesOf('h', 'linkerd', '1', [...RESET_CANCEL_2247, ...TAIL_RESET_SEED, ...LEAK_1678, ...UNKNOWN_CHANNEL_2247, ...CHANNEL_INIT_SEED]));
    h.engine.flush();
    expect(h.groups.map((group) => group.lines)).toEqual([RESET_CANCEL_2247, TAIL_RESET_SEED, LEAK_1678, UNKNOWN_CHANNEL_2247, CHANNEL_INIT_SEED]);
  });

  it('groups a LEAK report, a bare exception and its frames on a stream without headers', () => {
    const h = harness();
    const ordinary = 'starting the proxy';
    h.engine.push(linesOf('h', 'app', '7', [ordinary, ...LEAK_2292, ...RESET_5936, 'java.lang.OutOfMemoryError: Java heap space', 'at java.util.Arrays.copyOf(Arrays.java:3332)']));
    h.engine.flush();
    expect(h.groups.map((group) => group.lines)).toEqual([
      [ordinary],
      LEAK_2292,
      RESET_5936,
      ['java.lang.OutOfMemoryError: Java heap space', 'at java.util.Arrays.copyOf(Arrays.java:3332)'],
    ]);
  });

  it('leaves blank lines out without closing the group (JUL prints one after each trace)', () => {
    const h = harness();
    const withBlanks = [OODM_JOURNALD_1690[0], '', OODM_JOURNALD_1690[1], '   ', ...OODM_JOURNALD_1690.slice(2), '\r', ''] as string[];
    h.engine.push(linesOf('h', 'linkerd', '1', withBlanks));
    expect(h.groups).toHaveLength(0);
    h.engine.flush();
    expect(h.groups.map((group) => group.lines)).toEqual([OODM_JOURNALD_1690]);
  });

  it('splits a message that holds several lines (shipper-joined, CRLF too)', () => {
    const h = harness();
    h.engine.push([recordOf('h', 'linkerd', '1', `${UNKNOWN_CHANNEL_2247.join('\r\n')}\n${INFO_1971}`)]);
    h.engine.flush();
    expect(h.groups.map((group) => group.lines)).toEqual([UNKNOWN_CHANNEL_2247, [INFO_1971]]);
    expect(h.engine.stats().linesIn).toBe(UNKNOWN_CHANNEL_2247.length + 1);
  });

  it('uses the extra start/continue regexes of the matching grouper only', () => {
    const custom: GrouperConfig = { ...DEFAULT_GROUPER, name: 'custom', services: ['name*'], headers: [{ name: 'arrows', first: /^>>> /, second: null }], continue: [/^\| /] };
    const h = harness({ groupers: [custom, DEFAULT_GROUPER] });
    const lines = ['>>> request 1', '| detail', '>>> request 2'];
    h.engine.push([...linesOf('h', 'namerd', '1', lines), ...linesOf('h', 'linkerd', '1', lines)]);
    h.engine.flush();
    const byService = (service: string): string[][] => h.groups.filter((group) => group.service === service).map((group) => group.lines);
    expect(byService('namerd')).toEqual([['>>> request 1', '| detail'], ['>>> request 2']]);
    expect(byService('linkerd')).toEqual([['>>> request 1'], ['| detail'], ['>>> request 2']]);
  });
});

describe('streams', () => {
  it('keeps two processes interleaved line by line apart', () => {
    const h = harness();
    h.engine.push(interleave(linesOf('host-1', 'linkerd', '2410', OODM_JOURNALD_1690), linesOf('host-2', 'linkerd', '2410', UNKNOWN_CHANNEL_2247), linesOf('host-1', 'namerd', '99', RESET_5936)));
    h.engine.flush();
    const byHostService = new Map(h.groups.map((group) => [`${group.host}/${group.service}`, group.lines]));
    expect(byHostService.get('host-1/linkerd')).toEqual(OODM_JOURNALD_1690);
    expect(byHostService.get('host-2/linkerd')).toEqual(UNKNOWN_CHANNEL_2247);
    expect(byHostService.get('host-1/namerd')).toEqual(RESET_5936);
    expect(h.groups).toHaveLength(3);
  });

  it('closes the old process group at once when the service restarts under a new pid', () => {
    const h = harness();
    // The old process dies mid-trace; its successor's first line must close that group right away.
    h.engine.push(linesOf('h', 'linkerd', '5699', CHANNEL_INIT_SEED.slice(0, 3)));
    h.engine.push([recordOf('h', 'linkerd', '5700', INFO_1971)]);
    expect(h.groups).toHaveLength(1);
    expect(h.groups[0]).toMatchObject({ pid: '5699', closeReason: 'pid-change', lines: CHANNEL_INIT_SEED.slice(0, 3) });
    expect(h.engine.stats().pidChanges).toBe(1);
    h.engine.flush();
    expect(h.groups[1]).toMatchObject({ pid: '5700', lines: [INFO_1971] });
  });

  it('tells restarts apart by host and service when a host runs several services, and forgets a process once its stream is evicted', () => {
    const h = harness({ limits: { maxStreams: 4, maxBytes: 1 << 20 } });
    const closed = (): string[][] => h.groups.map((group) => [group.service, group.pid, group.closeReason]);
    h.engine.push(linesOf('h', 'linkerd', '5699', CHANNEL_INIT_SEED.slice(0, 3)));
    h.engine.push(linesOf('h', 'namerd', '77', CHANNEL_INIT_SEED.slice(0, 2)));
    // linkerd restarts: only its own old process closes, not namerd's.
    h.engine.push([recordOf('h', 'linkerd', '5700', INFO_1971)]);
    expect(closed()).toEqual([['linkerd', '5699', 'pid-change']]);
    // New streams evict the least recently used (four at most): linkerd's 5699, then namerd's 77, closing its group.
    for (const host of ['other-1', 'other-2', 'other-3']) h.engine.push([recordOf(host, 'linkerd', '1', INFO_1971)]);
    expect(closed()).toContainEqual(['namerd', '77', 'evicted']);
    h.engine.push([recordOf('h', 'linkerd', '5700', INFO_1971)]);
    // A new namerd pid finds no process to close: the evicted one is forgotten, not closed again.
    h.engine.push([recordOf('h', 'namerd', '78', INFO_1971)]);
    expect(h.engine.stats().pidChanges).toBe(1);
    // A later linkerd restart on the host still closes linkerd's current process.
    h.engine.push([recordOf('h', 'linkerd', '5701', INFO_1971)]);
    expect(h.engine.stats().pidChanges).toBe(2);
    expect(closed().at(-1)).toEqual(['linkerd', '5700', 'pid-change']);
  });
});

describe('journal positions', () => {
  it('names every journaled record of an open group as pending, one-record groups and traces alike, until the group closes', () => {
    const h = harness();
    const journaled = (records: ReturnType<typeof linesOf>, firstPosition: number) => records.map((record, index) => ({ ...record, journalPos: firstPosition + index }));
    // A one-line record on one host; a trace on another, its lines journaled at 100, 101, ...
    h.engine.push(journaled(linesOf('host-a', 'linkerd', '1', [INFO_1971]), 7));
    h.engine.push(journaled(linesOf('host-b', 'linkerd', '1', OODM_JOURNALD_1690), 100));
    const trace = OODM_JOURNALD_1690.map((_, index) => 100 + index);
    expect(trace.length).toBeGreaterThan(2);
    expect([...h.engine.pendingJournalPositions()].sort((a, b) => a - b)).toEqual([7, ...trace]);
    // The next record of the first stream closes its group: only the new record is pending there.
    h.engine.push(journaled(linesOf('host-a', 'linkerd', '1', [INFO_1971]), 8));
    expect([...h.engine.pendingJournalPositions()].sort((a, b) => a - b)).toEqual([8, ...trace]);
    // A record without a journal position opens a group that names none; closed, nothing is pending.
    h.engine.push(linesOf('host-c', 'linkerd', '1', [INFO_1971]));
    expect([...h.engine.pendingJournalPositions()].sort((a, b) => a - b)).toEqual([8, ...trace]);
    h.engine.flush();
    expect([...h.engine.pendingJournalPositions()]).toEqual([]);
  });
});

describe('closing', () => {
  it('closes the open group of a stream that received nothing for expire_after (wall clock), measured from its last record', () => {
    const h = harness();
    h.setNow(10_000);
    h.engine.push(linesOf('h', 'linkerd', '1', OODM_JOURNALD_1690.slice(0, 2)));
    h.setNow(11_500);
    h.engine.push(linesOf('h', 'linkerd', '1', OODM_JOURNALD_1690.slice(2)));
    h.engine.sweep(11_500 + DEFAULT_GROUPER.expireAfterMs - 1);
    expect(h.groups).toHaveLength(0);
    h.engine.sweep(11_500 + DEFAULT_GROUPER.expireAfterMs);
    expect(h.groups).toHaveLength(1);
    expect(h.groups[0]).toMatchObject({ closeReason: 'expired', lines: OODM_JOURNALD_1690 });
    expect(h.sinkCalls).toHaveLength(1);
    expect(h.engine.stats().openStreams).toBe(0);
  });

  it('cuts a group at max lines and swallows the rest of that trace instead of starting bogus groups', () => {
    const small: GrouperConfig = { ...DEFAULT_GROUPER, maxLines: 3 };
    const h = harness({ groupers: [small] });
    h.engine.push(linesOf('h', 'linkerd', '1', [...UNKNOWN_CHANNEL_2247, INFO_1971]));
    h.engine.flush();
    expect(h.groups.map((group) => [group.lines, group.truncated, group.closeReason])).toEqual([
      [UNKNOWN_CHANNEL_2247.slice(0, 3), true, 'max-lines'],
      [[INFO_1971], false, 'end-of-input'],
    ]);
    const stats = h.engine.stats();
    expect(stats.truncatedGroups).toBe(1);
    expect(stats.swallowedLines).toBe(UNKNOWN_CHANNEL_2247.length - 3);
  });

  it('cuts at max bytes; on a headerless stream the swallow ends at the first non-continuation line', () => {
    const small: GrouperConfig = { ...DEFAULT_GROUPER, maxBytes: 100 };
    const h = harness({ groupers: [small] });
    h.engine.push(linesOf('h', 'app', '1', [...RESET_5936, 'next ordinary line']));
    h.engine.flush();
    const [first, second] = h.groups;
    expect(first?.truncated).toBe(true);
    expect(first?.closeReason).toBe('max-bytes');
    expect(first?.lines.join('\n').length).toBeLessThanOrEqual(100);
    expect(second?.lines).toEqual(['next ordinary line']);
    expect(h.groups).toHaveLength(2);
  });

  it('evicts the least recently used open group when the stream limit is hit, and counts it', () => {
    const h = harness({ limits: { maxStreams: 2, maxBytes: 1 << 20 } });
    h.engine.push([
      recordOf('a', 'linkerd', '1', OODM_JOURNALD_1690[0] as string),
      recordOf('b', 'linkerd', '1', OODM_JOURNALD_1690[0] as string),
      recordOf('a', 'linkerd', '1', OODM_JOURNALD_1690[1] as string),
      recordOf('c', 'linkerd', '1', OODM_JOURNALD_1690[0] as string),
    ]);
    expect(h.groups.map((group) => [group.host, group.closeReason, group.lines.length])).toEqual([['b', 'evicted', 1]]);
    expect(h.engine.stats().evictions).toBe(1);
    h.engine.flush();
    expect(h.groups.map((group) => group.host).sort()).toEqual(['a', 'b', 'c']);
  });

  it('evicts older groups when open bytes exceed the shared budget', () => {
    const h = harness({ limits: { maxStreams: 100, maxBytes: 400 } });
    h.engine.push(interleave(linesOf('a', 'l', '1', UNKNOWN_CHANNEL_2247), linesOf('b', 'l', '1', UNKNOWN_CHANNEL_2247)));
    const stats = h.engine.stats();
    expect(stats.evictions).toBeGreaterThan(0);
    expect(stats.openBytes).toBeLessThanOrEqual(400);
    expect(h.groups.every((group) => group.closeReason === 'evicted')).toBe(true);
    h.engine.flush();
    const lineCount = h.groups.reduce((sum, group) => sum + group.lines.length, 0);
    expect(lineCount).toBe(2 * UNKNOWN_CHANNEL_2247.length);
  });
});

describe('classification and delivery', () => {
  it('delivers the events of one push in one sink call', () => {
    const h = harness();
    h.engine.push(linesOf('h', 'linkerd', '1', [INFO_1971, INFO_1971, INFO_1971]));
    expect(h.sinkCalls.map((events) => events.length)).toEqual([2]);
    expect(h.engine.stats()).toMatchObject({ groupsClosed: 2, eventsOut: 2, openStreams: 1 });
  });

  it('counts a classifier that throws and goes on with the batch', () => {
    const errors: unknown[] = [];
    let calls = 0;
    const sink: LeakEvent[][] = [];
    const kept: Group[] = [];
    const passing = everyGroupClassifier(kept);
    const engine = createEngine({
      groupers: () => [DEFAULT_GROUPER],
      classifier: () => ({
        classify(group) {
          calls++;
          if (calls === 1) throw new Error('rule bug');
          return passing.classify(group);
        },
      }),
      sink: (events) => sink.push(events),
      onClassifierError: (error) => errors.push(error),
    });
    engine.push(linesOf('h', 'linkerd', '1', [INFO_1971, INFO_1971, INFO_1971]));
    engine.flush();
    expect(errors).toHaveLength(1);
    expect(engine.stats()).toMatchObject({ classifierErrors: 1, eventsOut: 2, groupsClosed: 3 });
  });

  it('rejects nonsensical limits with a clear error', () => {
    expect(() => harness({ limits: { maxStreams: 0, maxBytes: 10 } })).toThrow(/maxStreams 0/);
  });
});
