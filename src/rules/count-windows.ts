/**
 * State of the `if: {count, within}` thresholds: recent event times per (rule, version, incident
 * key). Bounded twice: an LRU over keys and at most `count` times per key (older ones can never
 * matter again). Owned by whoever outlives a reload (RuleSetHolder), so windows survive reloads and
 * reset only when a rule's version changes (its key changes).
 */
import { RecencyMap } from '../engine/recency-map.js';

/**
 * Where the `if: {count, within}` thresholds keep their event times: in this process
 * (CountWindows), or shared by the engine nodes of the scale-out mode (scale/shared-count-windows.ts).
 */
export interface CountWindowState {
  /**
   * Records an event at `time` and says how many recorded events of `key` lie in (latest - withinMs,
   * latest], of the `keep` newest. `occurrence` names the event (the same group seen again after a
   * replay has the same one), so that a shared state counts it once.
   */
  record(key: string, time: number, withinMs: number, keep: number, occurrence?: string): number;
}

export class CountWindows implements CountWindowState {
  private readonly times: RecencyMap<string, number[]>;

  constructor(maxKeys = 50_000) {
    this.times = new RecencyMap({ max: maxKeys });
  }

  /** Records an event at `time` and says how many recorded events of `key` lie in (time - withinMs, time]. */
  record(key: string, time: number, withinMs: number, keep: number): number {
    let times = this.times.get(key);
    if (times === undefined) {
      times = [];
      this.times.set(key, times);
    }
    times.push(time);
    // Out-of-order arrivals happen (several shippers, retries); keep the list sorted.
    if (times.length > 1 && (times[times.length - 2] as number) > time) times.sort((a, b) => a - b);
    while (times.length > keep) times.shift();
    const latest = times[times.length - 1] as number;
    let inWindow = 0;
    for (const seen of times) if (seen > latest - withinMs && seen <= latest) inWindow += 1;
    return inWindow;
  }

  get size(): number {
    return this.times.size;
  }
}
