/**
 * Count thresholds (`if: {count: 5, within: 10m}`) for engine nodes: the processes of one host
 * and service may be grouped on different nodes, and a node may be replaced mid-stream, so the
 * times are kept in the shared store, once per event occurrence. While PostgreSQL cannot be
 * reached the node waits for it a little, then counts on its own (the event is never dropped for
 * it) and says so in the log and in leakwatch_scale_count_window_fallbacks_total.
 */
import type { Logger } from 'pino';
import { CountWindows, type CountWindowState } from '../rules/count-windows.js';
import type { PostgresStore } from '../store/postgres-store.js';

/** How long a classification waits for PostgreSQL to come back (a restart) before it counts alone. */
const WAIT_FOR_STORE_MS = 10_000;
const RETRY_EVERY_MS = 250;

export class SharedCountWindows implements CountWindowState {
  fallbacks = 0;
  private readonly local = new CountWindows();
  private readonly pause = new Int32Array(new SharedArrayBuffer(4));

  constructor(
    private readonly store: PostgresStore,
    private readonly isUnavailable: (error: unknown) => boolean,
    private readonly log: Logger,
  ) {}

  record(key: string, time: number, withinMs: number, keep: number, occurrence?: string): number {
    // The local count is kept too, so that a fallback counts what this node has seen.
    const localCount = this.local.record(key, time, withinMs, keep);
    if (occurrence === undefined) return localCount;
    const deadline = Date.now() + WAIT_FOR_STORE_MS;
    for (;;) {
      try {
        const times = this.store.recordOccurrence(key, occurrence, time, keep);
        const latest = times[0] ?? time;
        return times.filter((seen) => seen > latest - withinMs && seen <= latest).length;
      } catch (error) {
        if (!this.isUnavailable(error)) throw error;
        if (Date.now() >= deadline) {
          this.fallbacks++;
          this.log.warn({ err: error, key }, 'engine: PostgreSQL is away; a count threshold is judged on this node\'s own count');
          return localCount;
        }
        // The engine has nothing else to do while its store is away: a short blocking wait, then again.
        Atomics.wait(this.pause, 0, 0, RETRY_EVERY_MS);
      }
    }
  }
}
