/**
 * State of the `if: {count, within}` thresholds: recent event times per (rule, version, threshold,
 * incident key). Bounded twice: an LRU over keys and at most `count` times per key (older ones can
 * never matter again). Owned by whoever outlives a reload (RuleSetHolder), so windows survive
 * reloads and reset only when a rule's version changes (its key changes). At a restart, clean or
 * not, the server fills them again from the stored events (restoreCountWindows), so a threshold
 * does not forget the events before it.
 */
import { RecencyMap, type RecencyLinks } from '../engine/recency-map.js';
import type { CompiledRule } from './compile.js';

/**
 * Where the `if: {count, within}` thresholds keep their event times: in this process
 * (CountWindows), or shared by the engine nodes of the scale-out mode (scale/shared-count-windows.ts).
 */
export interface CountWindowState {
  /**
   * Records an event at `time` and says how many recorded events of `key` lie in (latest - withinMs,
   * latest], of the `keep` newest. `occurrence` names the event (its id: the same group classified
   * again after a crash has the same one), so that it is counted once.
   */
  record(key: string, time: number, withinMs: number, keep: number, occurrence?: string): number;
}

/** The window of one count threshold of one rule version for one incident key. */
export function countWindowKey(rule: Pick<CompiledRule, 'id' | 'version'>, thresholdIndex: number, incidentKey: string): string {
  return `${rule.id}@${rule.version}#${thresholdIndex}|${incidentKey}`;
}

/** FNV-1a, 32 bits: a window keeps a number per occurrence beside its time, not its text. */
function markOf(occurrence: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < occurrence.length; i++) hash = Math.imul(hash ^ occurrence.charCodeAt(i), 0x01000193);
  return hash | 0;
}

interface Window extends RecencyLinks<Window> {
  readonly key: string;
  /** Ascending. */
  times: number[];
  /** markOf() of the occurrence at the same index; NaN when the caller named none. */
  marks: number[];
}

export class CountWindows implements CountWindowState {
  private readonly windows: RecencyMap<string, Window>;

  constructor(maxKeys = 50_000) {
    this.windows = new RecencyMap({ max: maxKeys, keyOf: (window) => window.key });
  }

  record(key: string, time: number, withinMs: number, keep: number, occurrence?: string): number {
    let window = this.windows.get(key);
    if (window === undefined) {
      window = { key, times: [], marks: [], lessRecent: undefined, moreRecent: undefined };
      this.windows.set(key, window);
    }
    const { times, marks } = window;
    // Out-of-order arrivals happen (several shippers, retries): the time goes in its place.
    let at = times.length;
    while (at > 0 && (times[at - 1] as number) > time) at--;
    const mark = occurrence === undefined ? Number.NaN : markOf(occurrence);
    // An occurrence already kept is not counted again: the same time and mark (a clash needs both
    // equal within one key's few kept times). Equal times sit just before `at`.
    let seen = false;
    for (let i = at - 1; i >= 0 && times[i] === time && !seen; i--) seen = marks[i] === mark;
    if (!seen) {
      if (at === times.length) {
        times.push(time);
        marks.push(mark);
      } else {
        times.splice(at, 0, time);
        marks.splice(at, 0, mark);
      }
      if (times.length > keep) {
        times.splice(0, times.length - keep);
        marks.splice(0, marks.length - keep);
      }
    }
    // Ascending: the ones in the window are at the end.
    const from = (times[times.length - 1] as number) - withinMs;
    let inWindow = 0;
    for (let i = times.length - 1; i >= 0 && (times[i] as number) > from; i--) inWindow++;
    return inWindow;
  }

  get size(): number {
    return this.windows.size;
  }
}

/** An event stored earlier, as much of it as a count window needs. */
export interface CountedEvent {
  incident_key: string;
  id: string;
  time: number;
}

/** What restoreCountWindows needs of a rule with count thresholds. */
export type CountingRule = Pick<CompiledRule, 'id' | 'version' | 'thresholds' | 'incidentKey'>;

/** Where restoreCountWindows finds the stored events of a rule version (SqliteStore). */
export interface CountedEventSource {
  /** Per incident key, the `perKey` newest events of the rule version, of the `maxKeys` keys seen last; oldest first. */
  recentEventsOfRule(rule: string, version: number, perKey: number, maxKeys: number): CountedEvent[];
}

/**
 * Records the stored events of each rule with a count threshold in `windows`, as the classifier
 * did when it made them. A process killed (or stopped) between two events of a threshold then
 * still counts the first: without it, a restart judged `count: 3 within 1h` on the events after
 * it only. Events that the journal replay classifies again are the same occurrences and are not
 * counted twice. Returns the number of events recorded.
 */
export function restoreCountWindows(windows: CountWindowState, rules: readonly CountingRule[], source: CountedEventSource, maxKeys = 50_000): number {
  let recorded = 0;
  for (const rule of rules) {
    const counts = rule.thresholds.filter((threshold) => threshold.kind === 'count');
    if (counts.length === 0) continue;
    const keep = Math.max(...counts.map((threshold) => threshold.count));
    for (const event of source.recentEventsOfRule(rule.id, rule.version, keep, maxKeys)) {
      for (const threshold of counts) {
        windows.record(countWindowKey(rule, threshold.index, event.incident_key), event.time, threshold.withinMs, threshold.count, event.id);
      }
      recorded++;
    }
  }
  return recorded;
}
