import { LeakwatchError } from '../errors.js';

/**
 * Request bytes held at once across all requests (received and decompressed), with a cap. Each
 * request takes a claim and adds to it as bytes arrive; past the cap the request is refused with
 * 503 + Retry-After (the condition passes as other requests finish). A request that is alone is
 * never refused, so one body under --max-body-bytes always gets through eventually.
 */
export class InflightBytes {
  private held = 0;

  constructor(readonly capacity: number) {}

  get bytes(): number {
    return this.held;
  }

  claim(): InflightClaim {
    return new InflightClaim(this);
  }

  /** @internal used by InflightClaim */
  take(claim: InflightClaim, bytes: number): void {
    const others = this.held - claim.bytes;
    if (others > 0 && this.held + bytes > this.capacity) {
      throw new LeakwatchError('LW_ERR_OVERLOADED', `request bodies in flight are at the cap of ${this.capacity} bytes; retry shortly`, {
        limit: { setting: '--max-inflight-bytes', value: this.capacity },
      });
    }
    this.held += bytes;
  }

  /** @internal used by InflightClaim */
  give(bytes: number): void {
    this.held -= bytes;
  }
}

export class InflightClaim {
  bytes = 0;

  constructor(private readonly budget: InflightBytes) {}

  add(bytes: number): void {
    this.budget.take(this, bytes);
    this.bytes += bytes;
  }

  release(): void {
    this.budget.give(this.bytes);
    this.bytes = 0;
  }
}
