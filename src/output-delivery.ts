/**
 * The engine's output on its way into the store, for the single process (pipeline.ts) and an
 * engine node (scale/engine-node.ts) alike: handed on in order, and what the store refuses for a
 * while (disk full, busy, PostgreSQL down) is kept and retried, in order, before anything later,
 * so that a stored group never overtakes an earlier one. Whoever owns it says what a refusal
 * means (ingest answers 503, consumption pauses) and when checkpoints may move on (`waiting`).
 */
import type { GroupedRecord } from './engine/grouped-record.js';
import type { LogRecord } from './ingest/record.js';

/**
 * Where the output goes: records (metrics snapshots), and grouped records in the order their
 * groups closed (the events, and the groups no rule classified when those are asked for). Each
 * call stores its part in one transaction, or throws.
 */
export interface StoreOutputs {
  records(records: readonly LogRecord[]): void;
  grouped(records: GroupedRecord[]): void;
}

export type Output = { kind: 'grouped'; grouped: GroupedRecord[] } | { kind: 'records'; records: readonly LogRecord[] };

export interface OutputDeliveryHooks {
  /** Tells a refusal that passes (the output is kept and retried) from a failure that would not. */
  isStoreUnavailable: (error: unknown) => boolean;
  /** The store refused the output; it is kept and retried before anything later. */
  refused: (error: unknown, output: Output) => void;
  /** Storing failed in a way retrying cannot mend (a bug, data the store cannot take): the output is dropped. */
  dropped: (error: unknown, output: Output) => void;
}

export class OutputDelivery {
  private readonly undelivered: Output[] = [];

  constructor(
    private readonly outputs: StoreOutputs,
    private readonly hooks: OutputDeliveryHooks,
  ) {}

  /** Output the store refused is waiting: nothing later is stored, and no checkpoint may count it done. */
  get waiting(): boolean {
    return this.undelivered.length > 0;
  }

  /** Stores the output now, or keeps it behind what is already waiting. */
  deliver(output: Output): void {
    if (this.undelivered.length > 0 || !this.tryDeliver(output)) this.undelivered.push(output);
  }

  /** Retries what is waiting, in order; true when nothing is left. */
  retry(): boolean {
    while (this.undelivered.length > 0) {
      if (!this.tryDeliver(this.undelivered[0] as Output)) return false;
      this.undelivered.shift();
    }
    return true;
  }

  private tryDeliver(output: Output): boolean {
    try {
      if (output.kind === 'grouped') this.outputs.grouped(output.grouped);
      else this.outputs.records(output.records);
      return true;
    } catch (error) {
      if (this.hooks.isStoreUnavailable(error)) {
        this.hooks.refused(error, output);
        return false;
      }
      this.hooks.dropped(error, output);
      return true;
    }
  }
}
