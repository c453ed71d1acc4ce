import { LeakwatchError } from '../errors.js';

/**
 * Request bytes held at once across all requests (received and decompressed), with a cap. Each
 * request takes a claim and adds to it as bytes arrive; past the cap the request is refused with
 * 503 + Retry-After (the condition passes as other requests finish). A request that is alone is
 * never refused, so one body under --max-body-bytes always gets through eventually.
 *
 * The count lives in shared memory, so that decoding threads claim what they decompress against
 * the same cap as the thread that reads the requests (see `shared` and `fromShared`).
 */
export class InflightBytes {
  private readonly cell: BigInt64Array;

  constructor(
    readonly capacity: number,
    readonly shared: SharedArrayBuffer = new SharedArrayBuffer(8),
  ) {
    this.cell = new BigInt64Array(shared);
  }

  /** The same count, in another thread. */
  static fromShared(shared: SharedArrayBuffer, capacity: number): InflightBytes {
    return new InflightBytes(capacity, shared);
  }

  get bytes(): number {
    return Number(Atomics.load(this.cell, 0));
  }

  /**
   * A new claim; `alreadyClaimed` is what the same request holds through other claims (not
   * "others"). `share`, when given, counts this thread's claims too, so that what a thread that
   * died still held can be given back (`giveBackShare`).
   */
  claim(alreadyClaimed = 0, share?: BigInt64Array): InflightClaim {
    return new InflightClaim(this, alreadyClaimed, share);
  }

  /** Gives back what a dead thread's claims held (its `share`), and zeroes the share. */
  giveBackShare(share: BigInt64Array): void {
    this.give(Number(Atomics.exchange(share, 0, 0n)));
  }

  /** @internal used by InflightClaim: `own` is what the request already holds. */
  take(own: number, bytes: number): void {
    for (;;) {
      const held = Atomics.load(this.cell, 0);
      const heldBytes = Number(held);
      if (heldBytes - own > 0 && heldBytes + bytes > this.capacity) {
        throw new LeakwatchError('LW_ERR_OVERLOADED', `request bodies in flight are at the cap of ${this.capacity} bytes; retry shortly`, {
          limit: { setting: '--max-inflight-bytes', value: this.capacity },
        });
      }
      if (Atomics.compareExchange(this.cell, 0, held, held + BigInt(bytes)) === held) return;
    }
  }

  /** @internal used by InflightClaim */
  give(bytes: number): void {
    Atomics.sub(this.cell, 0, BigInt(bytes));
  }
}

export class InflightClaim {
  bytes = 0;

  constructor(
    private readonly budget: InflightBytes,
    private readonly elsewhere = 0,
    private readonly share?: BigInt64Array,
  ) {}

  add(bytes: number): void {
    this.budget.take(this.elsewhere + this.bytes, bytes);
    this.bytes += bytes;
    if (this.share) Atomics.add(this.share, 0, BigInt(bytes));
  }

  release(): void {
    if (this.share) Atomics.sub(this.share, 0, BigInt(this.bytes));
    this.budget.give(this.bytes);
    this.bytes = 0;
  }
}
