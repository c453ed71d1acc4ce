/** What a shard's thread hands back for each closed record: small, structured-cloneable items. */
import type { GroupedRecord } from '../engine/grouped-record.js';
import { formatRecord, type FormattedRecord, type OutputFormat } from './format.js';
import type { ShardItem, UnclassifiedExample } from './shard.js';

export type WireItem = { order: number; shape: string; example: UnclassifiedExample } | { order: number; out: FormattedRecord } | { order: number; record: GroupedRecord };

/** Records formatted for the output in the shard's own thread ('records' keeps them as objects, in-thread only). */
export function toWire(items: readonly ShardItem[], format: OutputFormat | 'records'): WireItem[] {
  const wire: WireItem[] = new Array<WireItem>(items.length);
  for (let index = 0; index < items.length; index++) {
    const item = items[index] as ShardItem;
    if (item.shape !== undefined) wire[index] = { order: item.order, shape: item.shape, example: item.example };
    else if (format === 'records') wire[index] = { order: item.order, record: item.record };
    else wire[index] = { order: item.order, out: formatRecord(item.record, format) };
  }
  return wire;
}
