/**
 * What a shard hands back for one chunk: its closed records in close order, formatted where they
 * were classified. ndjson travels as UTF-8 bytes in a buffer that is transferred, not copied (the
 * output is about half the size of the input); shapes of unclassified traces, table rows and (in
 * this thread only) records travel as objects.
 */
import type { GroupedRecord } from '../engine/grouped-record.js';
import { formatRecord, type OutputFormat, type TableRow } from './format.js';
import type { ShardItem, UnclassifiedExample } from './shard.js';

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
  /** Per item: where its text ends in `bytes` (the end of the one before, for items without text). */
  ends: Uint32Array;
  /** The texts of the text items, one after another, as UTF-8. */
  bytes: Uint8Array;
  /** The objects of the other items, in item order. */
  objects: WireObject[];
}

const encoder = new TextEncoder();

/**
 * `format` 'records' keeps the records as objects (in the thread that runs the shard only). The
 * texts are written into `into` (shared memory the main thread reads them from) when they fit,
 * else into a buffer of their own.
 */
export function toRoundOutput(items: readonly ShardItem[], format: OutputFormat | 'records', into?: Buffer): RoundOutput {
  const count = items.length;
  const orders = new Float64Array(count);
  const kinds = new Uint8Array(count);
  const ends = new Uint32Array(count);
  const objects: WireObject[] = [];
  let text = '';
  let end = 0;
  for (let index = 0; index < count; index++) {
    const item = items[index] as ShardItem;
    orders[index] = item.order;
    if (item.shape !== undefined) {
      kinds[index] = SHAPE;
      objects.push({ shape: item.shape, example: item.example });
    } else {
      const event = item.record.category !== null;
      if (format === 'records') {
        kinds[index] = event ? EVENT_OBJECT : RECORD_OBJECT;
        objects.push(item.record);
      } else {
        const formatted = formatRecord(item.record, format);
        if (formatted.text !== undefined) {
          kinds[index] = event ? EVENT_TEXT : RECORD_TEXT;
          text += formatted.text;
          end += Buffer.byteLength(formatted.text);
        } else {
          kinds[index] = event ? EVENT_ROW : RECORD_ROW;
          objects.push(formatted.row);
        }
      }
    }
    ends[index] = end;
  }
  let bytes: Uint8Array;
  if (text === '') bytes = new Uint8Array(0);
  else if (into !== undefined && end <= into.length) bytes = into.subarray(0, into.write(text, 0, 'utf8'));
  else bytes = encoder.encode(text);
  return { orders, kinds, ends, bytes, objects };
}

/** The buffers of a round to transfer with it (shared ones are not moved). */
export function transferList(round: RoundOutput): ArrayBuffer[] {
  const list = [round.orders.buffer, round.kinds.buffer, round.ends.buffer] as ArrayBuffer[];
  if (!(round.bytes.buffer instanceof SharedArrayBuffer)) list.push(round.bytes.buffer as ArrayBuffer);
  return list;
}
