/**
 * What a shard hands back for one chunk: its closed records in close order, formatted as soon as
 * they are classified (nothing of an event is kept once it is written). ndjson goes as UTF-8 into
 * a buffer the main thread reads it from (a shared slot, or a buffer of its own that is
 * transferred, not copied); shapes of unclassified traces, table rows and (in the shard's own
 * thread only) records go as objects.
 */
import type { GroupedRecord } from '../engine/grouped-record.js';
import { formatRecord, type OutputFormat, type TableRow } from './format.js';
import type { UnclassifiedExample } from './shard.js';

/** Item kinds. */
export const EVENT_TEXT = 0;
export const RECORD_TEXT = 1;
export const SHAPE = 2;
export const EVENT_ROW = 3;
export const RECORD_ROW = 4;
export const EVENT_OBJECT = 5;
export const RECORD_OBJECT = 6;

export interface Shape {
  shape: string;
  example: UnclassifiedExample;
}

export type WireObject = Shape | TableRow | GroupedRecord;

export interface RoundOutput {
  /** Per item: the input line number that closed it (see StreamGrouper's GroupCloser). */
  orders: Float64Array;
  kinds: Uint8Array;
  /** Per item: where its text ends in the bytes (the end of the one before, for items without text). */
  ends: Uint32Array;
  /** The texts when they are not in the round's shared slot (the key is always there: one shape for every round). */
  bytes: Uint8Array | undefined;
  /** The objects of the other items, in item order. */
  objects: WireObject[];
}

/** Where a shard puts what closes: written, or kept, as it comes. */
export interface ShardOutput {
  record(order: number, record: GroupedRecord): void;
  shape(order: number, shape: string, example: UnclassifiedExample): void;
}

/** One round's output, built as records close. */
export class RoundWriter implements ShardOutput {
  private orders: number[] = [];
  private kinds: number[] = [];
  private ends: number[] = [];
  private objects: WireObject[] = [];
  private buffer: Buffer = Buffer.alloc(0);
  private used = 0;
  /** The buffer is the round's shared slot (else it is the writer's own). */
  private inSlot = false;

  constructor(private readonly format: OutputFormat | 'records') {}

  /** Starts a round; its texts go to `slot` while they fit. */
  begin(slot: Buffer | undefined): void {
    this.orders = [];
    this.kinds = [];
    this.ends = [];
    this.objects = [];
    this.used = 0;
    this.inSlot = slot !== undefined;
    this.buffer = slot ?? Buffer.allocUnsafeSlow(64 * 1024);
  }

  record(order: number, record: GroupedRecord): void {
    const event = record.category !== null;
    if (this.format === 'records') {
      this.item(order, event ? EVENT_OBJECT : RECORD_OBJECT);
      this.objects.push(record);
      return;
    }
    const formatted = formatRecord(record, this.format);
    if (formatted.text === undefined) {
      this.item(order, event ? EVENT_ROW : RECORD_ROW);
      this.objects.push(formatted.row);
      return;
    }
    const text = formatted.text;
    // A UTF-16 unit is at most 3 bytes of UTF-8: room for that is room for the text.
    if (this.used + text.length * 3 > this.buffer.length) this.grow(this.used + text.length * 3);
    this.used += this.buffer.write(text, this.used, 'utf8');
    this.item(order, event ? EVENT_TEXT : RECORD_TEXT);
  }

  shape(order: number, shape: string, example: UnclassifiedExample): void {
    this.item(order, SHAPE);
    this.objects.push({ shape, example });
  }

  /** The round; `transfer` lists the buffers to move with it to another thread. */
  end(): { output: RoundOutput; transfer: ArrayBuffer[] } {
    const output: RoundOutput = {
      orders: Float64Array.from(this.orders),
      kinds: Uint8Array.from(this.kinds),
      ends: Uint32Array.from(this.ends),
      bytes: undefined,
      objects: this.objects,
    };
    const transfer = [output.orders.buffer, output.kinds.buffer, output.ends.buffer] as ArrayBuffer[];
    if (!this.inSlot && this.used > 0) {
      // A copy of the bytes used: the rest of the buffer is not carried along.
      output.bytes = new Uint8Array(this.buffer.subarray(0, this.used));
      transfer.push(output.bytes.buffer as ArrayBuffer);
    }
    this.objects = [];
    return { output, transfer };
  }

  private item(order: number, kind: number): void {
    this.orders.push(order);
    this.kinds.push(kind);
    this.ends.push(this.used);
  }

  /** Out of the slot (or out of room): the texts so far move to a buffer of the writer's own. */
  private grow(needed: number): void {
    const grown = Buffer.allocUnsafeSlow(Math.max(needed, this.buffer.length * 2, 64 * 1024));
    this.buffer.copy(grown, 0, 0, this.used);
    this.buffer = grown;
    this.inSlot = false;
  }
}
