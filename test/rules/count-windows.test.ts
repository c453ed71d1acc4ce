/**
 * Count thresholds across a restart: the windows are filled again from the events a real SQLite
 * store kept, through the production path (loadRuleSet's classifier, IncidentService, the store's
 * query), and an event classified again after a crash (the journal replay) is counted once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LeakEvent } from '../../src/engine/event.js';
import { IncidentService } from '../../src/incidents/service.js';
import { CountWindows, loadRuleSet, restoreCountWindows, type RuleSet } from '../../src/rules/index.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { tempDirs } from '../helpers/temp-dirs.js';
import { DIRECT_MEMORY_TRACE, groupOf, rulesDir } from './helpers.js';

// A rule written for these tests over the linkerd forum thread's trace (see helpers.ts).
const rulesText = (version: number) => `
rules:
  - id: direct-memory
    version: ${version}
    title: Netty direct memory exhausted
    match:
      literals: [OutOfDirectMemoryError]
    classify: { category: direct-memory-exhausted, severity: warning }
    thresholds:
      - if: { count: 3, within: 10m }
        severity: critical
`;

const MINUTE = 60_000;
const T0 = Date.UTC(2017, 10, 1, 17, 0);
const tempDir = tempDirs();

async function ruleSetOf(version: number, windows: CountWindows): Promise<RuleSet> {
  const created = await rulesDir({ 'rules.yaml': rulesText(version) });
  try {
    const result = await loadRuleSet(created.dir, { checkRegexSafety: false, windows });
    expect(result.errors).toEqual([]);
    return result.ruleSet as RuleSet;
  } finally {
    await created.cleanup();
  }
}

function classify(ruleSet: RuleSet, minute: number, host = 'web-1'): LeakEvent {
  const event = ruleSet.classifier.classify(groupOf(DIRECT_MEMORY_TRACE, { host, time: T0 + minute * MINUTE }));
  expect(event).not.toBeNull();
  return event as LeakEvent;
}

describe('CountWindows', () => {
  it('counts a named occurrence once, however often it is recorded', () => {
    const windows = new CountWindows();
    expect(windows.record('k', 1000, 60_000, 3, 'a')).toBe(1);
    expect(windows.record('k', 1000, 60_000, 3, 'a')).toBe(1);
    // Another event of the same millisecond is another occurrence.
    expect(windows.record('k', 1000, 60_000, 3, 'b')).toBe(2);
    // Without a name every record counts (as before names existed).
    expect(windows.record('u', 1000, 60_000, 3)).toBe(1);
    expect(windows.record('u', 1000, 60_000, 3)).toBe(2);
  });

  it('keeps the newest `keep` times in order whatever the arrival order, judged from the latest', () => {
    const windows = new CountWindows();
    expect(windows.record('k', 50_000, 10_000, 3, 'c')).toBe(1);
    expect(windows.record('k', 10_000, 10_000, 3, 'a')).toBe(1); // 40 s before the latest
    expect(windows.record('k', 45_000, 10_000, 3, 'b')).toBe(2);
    expect(windows.record('k', 49_000, 10_000, 3, 'd')).toBe(3);
    // 'a' was pushed out by the fourth; coming again (a replay) it is older than all kept and changes nothing.
    expect(windows.record('k', 10_000, 10_000, 3, 'a')).toBe(3);
    expect(windows.record('k', 49_000, 10_000, 3, 'd')).toBe(3);
  });
});

describe('count thresholds across a restart', () => {
  let store: SqliteStore;
  let dataDir: string;
  let first: RuleSet;

  beforeAll(async () => {
    dataDir = tempDir('count-windows');
    store = new SqliteStore(dataDir);
    first = await ruleSetOf(1, new CountWindows());
    // Before the "crash": two events of web-1 and one of web-2, stored as the server stores them.
    const incidents = new IncidentService(store, { now: () => T0 });
    expect(incidents.ingest([classify(first, 0), classify(first, 4), classify(first, 1, 'web-2')])).toMatchObject({ inserted: 3 });
  });

  afterAll(() => store.close());

  it('the store gives each key its newest events of the rule version, oldest first', () => {
    const events = store.recentEventsOfRule('direct-memory', 1, 3, 100);
    expect(events.map(({ incident_key, time }) => [incident_key, (time - T0) / MINUTE])).toEqual([
      ['direct-memory|web-2|linkerd', 1],
      ['direct-memory|web-1|linkerd', 0],
      ['direct-memory|web-1|linkerd', 4],
    ]);
    expect(events[0]?.id).toBe(classify(first, 1, 'web-2').id);
    expect(store.recentEventsOfRule('direct-memory', 1, 1, 100).map((event) => (event.time - T0) / MINUTE)).toEqual([1, 4]);
    expect(store.recentEventsOfRule('direct-memory', 1, 3, 1)).toHaveLength(2);
    expect(store.recentEventsOfRule('direct-memory', 2, 3, 100)).toEqual([]);
    expect(store.recentEventsOfRule('other-rule', 1, 3, 100)).toEqual([]);
  });

  it('a restart that restores the windows raises the third event; one that does not, does not', async () => {
    const restored = new CountWindows();
    const afterRestart = await ruleSetOf(1, restored);
    expect(restoreCountWindows(restored, afterRestart.countingRules, store)).toBe(3);
    // The replay classifies the minute-4 event again: the same occurrence, not a third one.
    expect(classify(afterRestart, 4).severity).toBe('warning');
    expect(classify(afterRestart, 8).severity).toBe('critical');
    expect(classify(afterRestart, 2, 'web-2').severity).toBe('warning');

    const forgetful = await ruleSetOf(1, new CountWindows());
    expect(classify(forgetful, 8).severity).toBe('warning');
  });

  it('a new rule version starts its windows empty, as a reload does', async () => {
    const windows = new CountWindows();
    const nextVersion = await ruleSetOf(2, windows);
    expect(restoreCountWindows(windows, nextVersion.countingRules, store)).toBe(0);
    expect(classify(nextVersion, 8).severity).toBe('warning');
  });
});
