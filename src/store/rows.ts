/**
 * Rows as both stores keep them (SQLite and PostgreSQL share the schema, migrations.ts) and the
 * records the Store interface speaks in.
 */
import type { LeakEvent, Severity } from '../engine/event.js';
import { JOURNAL_BATCH_RECORDS } from '../ingest/record.js';
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
  last_event: string;
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
    last_event: JSON.parse(row.last_event) as LeakEvent,
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
    last_event: JSON.stringify(incident.last_event),
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

/** One journal batch's share of the positions given to toRuns. */
interface BatchSpan {
  low: number;
  high: number;
  count: number;
  /** A flag per position of low..high when they are dense enough, else the positions to sort. */
  flags?: Uint8Array;
  sparse?: number[];
}

/**
 * Positions (in any order, repeats allowed) as sorted [first, count] runs: records held for
 * reordering come in long consecutive runs of a few recent batches. Within a batch whose positions
 * are dense, a flag per position puts them in order in one pass; sorting the 200,000 positions a
 * flood holds took 10-50 ms of the event loop at every checkpoint.
 */
export function toRuns(positions: readonly number[]): Array<[number, number]> {
  const spans = new Map<number, BatchSpan>();
  let lastBatch = Number.NaN;
  let last: BatchSpan | undefined;
  const spanOf = (position: number): BatchSpan => {
    const batch = Math.floor(position / JOURNAL_BATCH_RECORDS);
    if (batch === lastBatch && last !== undefined) return last;
    let span = spans.get(batch);
    if (span === undefined) {
      span = { low: position, high: position, count: 0 };
      spans.set(batch, span);
    }
    lastBatch = batch;
    last = span;
    return span;
  };
  for (const position of positions) {
    const span = spanOf(position);
    if (position < span.low) span.low = position;
    if (position > span.high) span.high = position;
    span.count++;
  }
  for (const span of spans.values()) {
    const width = span.high - span.low + 1;
    if (width <= 8 * span.count + 4096) span.flags = new Uint8Array(width);
    else span.sparse = [];
  }
  for (const position of positions) {
    const span = spanOf(position);
    if (span.flags) span.flags[position - span.low] = 1;
    else span.sparse?.push(position);
  }
  const runs: Array<[number, number]> = [];
  for (const batch of [...spans.keys()].sort((a, b) => a - b)) {
    const span = spans.get(batch) as BatchSpan;
    if (span.flags) {
      const flags = span.flags;
      let offset = 0;
      while (offset < flags.length) {
        if (flags[offset] === 0) {
          offset++;
          continue;
        }
        const first = offset;
        while (offset < flags.length && flags[offset] === 1) offset++;
        runs.push([span.low + first, offset - first]);
      }
    } else {
      for (const position of (span.sparse as number[]).sort((a, b) => a - b)) {
        const previous = runs[runs.length - 1];
        if (previous !== undefined && position === previous[0] + previous[1]) previous[1]++;
        else if (previous === undefined || position >= previous[0] + previous[1]) runs.push([position, 1]);
      }
    }
  }
  return runs;
}

export function fromRuns(runs: ReadonlyArray<readonly [number, number]>): number[] {
  const positions: number[] = [];
  for (const [first, count] of runs) for (let offset = 0; offset < count; offset++) positions.push(first + offset);
  return positions;
}

/** The meta key both stores keep the ingest journal's checkpoint under. */
export const JOURNAL_CHECKPOINT_KEY = 'journal_checkpoint';

/** A journal checkpoint as its meta value holds it: the pending positions as runs. */
export function journalCheckpointText(checkpoint: JournalCheckpoint): string {
  return JSON.stringify({ pushedThrough: checkpoint.pushedThrough, pending: toRuns(checkpoint.pending) });
}

export function journalCheckpointOf(text: string): JournalCheckpoint {
  const stored = JSON.parse(text) as { pushedThrough: number; pending: Array<[number, number]> };
  return { pushedThrough: stored.pushedThrough, pending: fromRuns(stored.pending) };
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
