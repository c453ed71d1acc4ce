import type { LogRecord } from './record.js';

/**
 * The engine's bounded input queue. Ingest offers whole batches; a batch that does not fit is
 * refused (the route answers 503, which every shipper retries) rather than buffered without bound.
 */
export class BoundedRecordQueue {
  private readonly batches: LogRecord[][] = [];
  private queued = 0;

  constructor(readonly capacity: number) {}

  /** Whether a batch of this many records would be accepted now. */
  fits(records: number): boolean {
    // An empty queue always takes one batch, so a batch larger than the capacity is not refused forever.
    return records === 0 || this.queued === 0 || this.queued + records <= this.capacity;
  }

  /** Accepts the batch whole, or refuses it whole when it would exceed the capacity. */
  offer(batch: LogRecord[]): boolean {
    if (batch.length === 0) return true;
    if (!this.fits(batch.length)) return false;
    this.batches.push(batch);
    this.queued += batch.length;
    return true;
  }

  /** Removes and returns the oldest batch, if any. */
  take(): LogRecord[] | undefined {
    const batch = this.batches.shift();
    if (batch) this.queued -= batch.length;
    return batch;
  }

  get size(): number {
    return this.queued;
  }
}
