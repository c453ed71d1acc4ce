/**
 * Rows as both stores keep them (SQLite and PostgreSQL share the schema, migrations.ts) and the
 * records the Store interface speaks in.
 */
import type { LeakEvent, Severity } from '../engine/event.js';
import { journalBatchOf, JOURNAL_BATCH_RECORDS } from '../ingest/record.js';
import type { DeadLetter, EvidenceEntry, IncidentRecord, IncidentStatus, JournalCheckpoint, OutboxEntry, OutboxTotals } from './store.js';

export interface IncidentRow {
  id: string;
  key: string;
  rule: string;
  category: string;
  severity: string;
  status: string;
  host: string;
  service: string;
  pids: string;
  first_seen: number;
  last_seen: number;
  count: number;
  summary: string;
  fields: string;
  evidence: string;
  last_event_id: string;
  acked_at: number | null;
  resolved_at: number | null;
  reopened_count: number;
}

export function toRecord(row: IncidentRow): IncidentRecord {
  return {
    id: row.id,
    key: row.key,
    rule: row.rule,
    category: row.category,
    severity: row.severity as Severity,
    status: row.status as IncidentStatus,
    host: row.host,
    service: row.service,
    pids: JSON.parse(row.pids) as string[],
    first_seen: row.first_seen,
    last_seen: row.last_seen,
    count: row.count,
    summary: row.summary,
    fields: JSON.parse(row.fields) as LeakEvent['fields'],
    evidence: JSON.parse(row.evidence) as EvidenceEntry[],
    last_event_id: row.last_event_id,
    acked_at: row.acked_at,
    resolved_at: row.resolved_at,
    reopened_count: row.reopened_count,
  };
}

export function toRow(incident: IncidentRecord): IncidentRow {
  return {
    ...incident,
    pids: JSON.stringify(incident.pids),
    fields: JSON.stringify(incident.fields),
    evidence: JSON.stringify(incident.evidence),
  };
}

export interface OutboxRow {
  id: number;
  target: string;
  lane: number;
  stream: string;
  record_id: string;
  created_at: number;
  bytes: number;
  body: string;
  attempts: number;
  next_at: number;
  last_status: number | null;
  last_error: string | null;
}

export function toOutboxEntry(row: OutboxRow): OutboxEntry {
  return {
    id: row.id,
    target: row.target,
    lane: row.lane,
    stream: row.stream,
    recordId: row.record_id,
    createdAt: row.created_at,
    bytes: row.bytes,
    body: row.body,
    attempts: row.attempts,
    nextAt: row.next_at,
    lastStatus: row.last_status,
    lastError: row.last_error,
  };
}

export interface DeadLetterRow {
  id: number;
  target: string;
  record_id: string;
  created_at: number;
  dead_at: number;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  bytes: number;
}

export function toDeadLetter(row: DeadLetterRow): DeadLetter {
  return {
    id: row.id,
    target: row.target,
    recordId: row.record_id,
    createdAt: row.created_at,
    deadAt: row.dead_at,
    attempts: row.attempts,
    lastStatus: row.last_status,
    lastError: row.last_error,
    bytes: row.bytes,
  };
}

/** One journal batch's pending positions: a bitmap of indexes from `low` (dense), or the indexes (sparse). */
export type BatchPending = [seq: number, low: number, bits: string] | [seq: number, indexes: number[]];

/** A span is kept as a bitmap while that takes at most this many bits per pending index (plus a floor). */
const BITS_PER_INDEX_MAX = 64;

/**
 * Pending positions (in any order, repeats allowed) as one entry per journal batch, batches in
 * order. A flood holds ~200,000 positions of a few recent batches, dense but broken where each
 * stream's reorder window ends: as [first, count] runs they made tens of thousands of pairs, 10-30 ms
 * of the event loop at every checkpoint to build and write; as bitmaps they take two passes and a
 * base64 encoding.
 */
export function toBatchPending(positions: readonly number[] | Float64Array): BatchPending[] {
  /** One batch's positions: their range, then a bitmap of it (dense) or the indexes (sparse). */
  interface Span {
    low: number;
    high: number;
    count: number;
    bits?: Uint8Array;
    indexes?: Set<number>;
  }
  const spans = new Map<number, Span>();
  let lastSeq = Number.NaN;
  let last: Span | undefined;
  // Indexed loops: this runs once a second, too seldom to be optimised, and an unoptimised for-of
  // makes an iterator result per element (200,000 positions: 6 MB a checkpoint).
  for (let at = 0; at < positions.length; at++) {
    const position = positions[at] as number;
    const seq = journalBatchOf(position);
    const index = position - seq * JOURNAL_BATCH_RECORDS;
    if (seq !== lastSeq || last === undefined) {
      lastSeq = seq;
      last = spans.get(seq);
      if (last === undefined) spans.set(seq, (last = { low: index, high: index, count: 0 }));
    }
    if (index < last.low) last.low = index;
    if (index > last.high) last.high = index;
    last.count++;
  }
  for (const span of spans.values()) {
    const width = span.high - span.low + 1;
    if (width <= BITS_PER_INDEX_MAX * span.count + 4096) span.bits = new Uint8Array((width + 7) >> 3);
    else span.indexes = new Set();
  }
  lastSeq = Number.NaN;
  for (let at = 0; at < positions.length; at++) {
    const position = positions[at] as number;
    const seq = journalBatchOf(position);
    const index = position - seq * JOURNAL_BATCH_RECORDS;
    if (seq !== lastSeq) {
      lastSeq = seq;
      last = spans.get(seq) as Span;
    }
    const span = last as Span;
    if (span.bits !== undefined) {
      const offset = index - span.low;
      span.bits[offset >> 3] = (span.bits[offset >> 3] as number) | (1 << (offset & 7));
    } else {
      span.indexes?.add(index);
    }
  }
  const pending: BatchPending[] = [];
  for (const seq of [...spans.keys()].sort((a, b) => a - b)) {
    const { low, bits, indexes } = spans.get(seq) as Span;
    if (bits !== undefined) pending.push([seq, low, Buffer.from(bits.buffer, bits.byteOffset, bits.byteLength).toString('base64')]);
    else pending.push([seq, [...(indexes as Set<number>)].sort((a, b) => a - b)]);
  }
  return pending;
}

/** The positions of toBatchPending's entries, in order. */
export function fromBatchPending(pending: readonly BatchPending[]): number[] {
  const positions: number[] = [];
  for (const entry of pending) {
    const base = entry[0] * JOURNAL_BATCH_RECORDS;
    if (entry.length === 2) {
      for (const index of entry[1]) positions.push(base + index);
      continue;
    }
    const bits = Buffer.from(entry[2], 'base64');
    for (let byte = 0; byte < bits.length; byte++) {
      const value = bits[byte] as number;
      if (value === 0) continue;
      for (let bit = 0; bit < 8; bit++) if ((value & (1 << bit)) !== 0) positions.push(base + entry[1] + byte * 8 + bit);
    }
  }
  return positions;
}

/** Positions as [first, count] runs: how earlier builds kept a checkpoint's pending positions. */
function fromRuns(runs: ReadonlyArray<readonly [number, number]>): number[] {
  const positions: number[] = [];
  for (const [first, count] of runs) for (let offset = 0; offset < count; offset++) positions.push(first + offset);
  return positions;
}

/** Pending positions as a checkpoint keeps them (JSON): `{ batches }` (toBatchPending). */
export function pendingText(positions: readonly number[] | Float64Array): string {
  return JSON.stringify({ batches: toBatchPending(positions) });
}

/** The positions of pendingText(), or of the [first, count] runs earlier builds wrote. */
export function pendingOf(stored: unknown): number[] {
  if (Array.isArray(stored)) return fromRuns(stored as Array<[number, number]>);
  return fromBatchPending((stored as { batches: BatchPending[] }).batches);
}

/** The meta key both stores keep the ingest journal's checkpoint under. */
export const JOURNAL_CHECKPOINT_KEY = 'journal_checkpoint';

/** A journal checkpoint as its meta value holds it: the pending positions per batch (pendingText). */
export function journalCheckpointText(checkpoint: JournalCheckpoint): string {
  return `{"pushedThrough":${JSON.stringify(checkpoint.pushedThrough)},"pending":${pendingText(checkpoint.pending)}}`;
}

export function journalCheckpointOf(text: string): JournalCheckpoint {
  const stored = JSON.parse(text) as { pushedThrough: number; pending: unknown };
  return { pushedThrough: stored.pushedThrough, pending: pendingOf(stored.pending) };
}

/** A row of the forward_outbox_totals view: one target's pending (dead = 0) or dead entries. */
export interface OutboxTotalsRow {
  target: string;
  dead: number;
  entries: number;
  bytes: number;
}

/** The view's rows, pending and dead side by side per target, in the rows' order. */
export function toOutboxTotals(rows: Iterable<OutboxTotalsRow>): OutboxTotals[] {
  const byTarget = new Map<string, OutboxTotals>();
  for (const row of rows) {
    let totals = byTarget.get(row.target);
    if (!totals) byTarget.set(row.target, (totals = { target: row.target, pendingEntries: 0, pendingBytes: 0, deadEntries: 0, deadBytes: 0 }));
    if (row.dead === 1) {
      totals.deadEntries = row.entries;
      totals.deadBytes = row.bytes;
    } else {
      totals.pendingEntries = row.entries;
      totals.pendingBytes = row.bytes;
    }
  }
  return [...byTarget.values()];
}
