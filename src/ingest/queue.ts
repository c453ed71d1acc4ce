import { PackedBatch, type RecordBatch } from './packed-records.js';
import type { LogRecord } from './record.js';

/** Bytes a record holds in memory, roughly: its strings at two bytes a character, plus per-value overhead. */
export function estimateRecordBytes(record: LogRecord): number {
  return 96 + 2 * (record.message.length + record.stream.length) + estimateFieldsBytes(record.fields);
}

/** A packed batch's records once unpacked, as estimateRecordBytes would count them (messages by their UTF-8 bytes). */
function estimatePackedBytes(batch: PackedBatch): number {
  let bytes = 0;
  for (let index = 0; index < batch.length; index++) bytes += 96 + 2 * batch.messageAndStreamLength(index) + estimateFieldsBytes(batch.fieldsAt(index));
  return bytes;
}

/** The shipper's object a record keeps (metrics snapshots, records without text), roughly. */
function estimateFieldsBytes(fields: Record<string, unknown> | undefined): number {
  if (fields === undefined) return 0;
  let bytes = 0;
  // Iterative: the decoder already bounded the depth, but no walk on input should recurse.
  const stack: unknown[] = [fields];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value === 'string') bytes += 16 + 2 * value.length;
    else if (value instanceof Uint8Array) bytes += 64 + value.byteLength;
    else if (value !== null && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value as object)) {
        bytes += 16 + 2 * key.length;
        stack.push(inner);
      }
    } else bytes += 16;
  }
  return bytes;
}

/**
 * Past this share of either capacity the queue is crowded: ingest holds its answers back until the
 * engine has taken enough (whenUncrowded). A quarter is several bodies' records, enough to keep the
 * engine busy while the next bodies are received and decoded.
 */
const CROWDED_SHARE = 0.25;

/**
 * The engine's bounded input queue, by records and by bytes. Ingest offers whole batches; a batch
 * that does not fit is refused (the route answers 503, which every shipper retries) rather than
 * buffered without bound. Before it is full, a crowded queue slows the senders down instead: the
 * route answers a body once the queue is no longer crowded, so that a shipper faster than the
 * engine waits for its answers rather than filling the queue. Filled to its capacities under a
 * flood, the queue's batches were up to 57 MiB (estimated) of the server's peak RSS, for no more
 * lines per second than a quarter of it keeps the engine busy with.
 */
export class BoundedRecordQueue {
  /** `waiting`: offered, counted against the capacities, but not yet taken (its journal write is in flight). */
  private readonly batches: Array<{ records: RecordBatch; bytes: number; waiting: boolean }> = [];
  private queued = 0;
  private queuedBytes = 0;
  /** Sizes measured by fits(), reused by offer() for the same batch. */
  private readonly measured = new WeakMap<RecordBatch, number>();
  /** Waiting for the queue to be no longer crowded (whenUncrowded). */
  private uncrowdedWaiters: Array<() => void> = [];

  constructor(
    readonly capacity: number,
    readonly capacityBytes: number = Number.POSITIVE_INFINITY,
  ) {}

  /** Whether this batch would be accepted now. */
  fits(batch: RecordBatch): boolean {
    // An empty queue always takes one batch, so a batch larger than a capacity is not refused forever.
    if (batch.length === 0 || this.queued === 0) return true;
    return this.queued + batch.length <= this.capacity && this.queuedBytes + this.bytesOf(batch) <= this.capacityBytes;
  }

  /** Accepts the batch whole, or refuses it whole when it would exceed a capacity. */
  offer(batch: RecordBatch): boolean {
    return this.add(batch, false) !== undefined;
  }

  /**
   * Accepts the batch whole (or refuses it, undefined) with its place in the order, but holds it and
   * every later batch back from take() until `release` says it may go; `cancel` gives its room back.
   */
  offerHeld(batch: RecordBatch): { release: () => void; cancel: () => void } | undefined {
    const entry = this.add(batch, true);
    if (entry === undefined) return undefined;
    return {
      release: () => {
        entry.waiting = false;
      },
      cancel: () => {
        const index = this.batches.indexOf(entry);
        if (index < 0) return;
        this.batches.splice(index, 1);
        this.queued -= entry.records.length;
        this.queuedBytes -= entry.bytes;
        this.wakeIfUncrowded();
      },
    };
  }

  /** Removes and returns the oldest batch, if any and not held back. */
  take(): RecordBatch | undefined {
    const entry = this.batches[0];
    if (entry === undefined || entry.waiting) return undefined;
    this.batches.shift();
    this.queued -= entry.records.length;
    this.queuedBytes -= entry.bytes;
    this.wakeIfUncrowded();
    return entry.records;
  }

  /** Past a quarter of either capacity. */
  get crowded(): boolean {
    return this.queued > this.capacity * CROWDED_SHARE || this.queuedBytes > this.capacityBytes * CROWDED_SHARE;
  }

  /** Resolves once the queue is no longer crowded; undefined when it is not crowded now. */
  whenUncrowded(): Promise<void> | undefined {
    if (!this.crowded) return undefined;
    return new Promise((resolve) => this.uncrowdedWaiters.push(resolve));
  }

  /** Whether take() has a batch to give now. */
  get takeable(): boolean {
    return this.batches.length > 0 && !(this.batches[0] as { waiting: boolean }).waiting;
  }

  get size(): number {
    return this.queued;
  }

  get bytes(): number {
    return this.queuedBytes;
  }

  private add(batch: RecordBatch, waiting: boolean): { records: RecordBatch; bytes: number; waiting: boolean } | undefined {
    if (!this.fits(batch)) return undefined;
    const entry = { records: batch, bytes: batch.length === 0 ? 0 : this.bytesOf(batch), waiting };
    if (batch.length === 0) return entry;
    this.batches.push(entry);
    this.queued += batch.length;
    this.queuedBytes += entry.bytes;
    return entry;
  }

  private wakeIfUncrowded(): void {
    if (this.uncrowdedWaiters.length === 0 || this.crowded) return;
    const waiters = this.uncrowdedWaiters;
    this.uncrowdedWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private bytesOf(batch: RecordBatch): number {
    let bytes = this.measured.get(batch);
    if (bytes === undefined) {
      if (batch instanceof PackedBatch) bytes = estimatePackedBytes(batch);
      else {
        bytes = 0;
        for (let index = 0; index < batch.length; index++) bytes += estimateRecordBytes(batch[index] as LogRecord);
      }
      this.measured.set(batch, bytes);
    }
    return bytes;
  }
}
