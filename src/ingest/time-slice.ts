import { setImmediate as nextTurn } from 'node:timers/promises';

/** How long one decoding step may hold the event loop before it lets other requests run. */
export const DEFAULT_SLICE_MS = 8;

/**
 * Cuts a long synchronous job (decoding a 32 MiB body, say) into slices of a few milliseconds, so
 * that /healthz and other requests are answered while it runs. The job calls `due()` in its loop
 * (a clock read, tens of nanoseconds) and `await pause()` when it says so.
 */
export class TimeSlicer {
  private sliceStart = performance.now();
  constructor(private readonly sliceMs: number = DEFAULT_SLICE_MS) {}

  due(): boolean {
    return performance.now() - this.sliceStart >= this.sliceMs;
  }

  async pause(): Promise<void> {
    await nextTurn();
    this.sliceStart = performance.now();
  }

  /** `pause()` when the slice is used up. */
  async yieldIfDue(): Promise<void> {
    if (this.due()) await this.pause();
  }
}
