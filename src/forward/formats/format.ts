/**
 * What a target format does: turn a batch of outbox entries into one request body, and read the
 * answer back into a verdict per entry. The status rule shared by NDJSON, Loki and Elasticsearch
 * (retry network errors, 408, 429 and 5xx; drop to the dead letters on any other 4xx) lives here;
 * a format with its own rule (OTLP) or its own per-item answer (Elasticsearch) says so itself.
 */
import type { GroupedRecord } from '../../engine/grouped-record.js';
import type { AttemptFailure, OutboxEntry } from '../../store/store.js';
import type { ForwardTarget } from '../target.js';

export interface EncodedBatch {
  body: string;
  contentType: string;
}

/** The answer to one request, its body read (up to a bound). */
export interface TargetAnswer {
  status: number;
  body: string;
}

export type Verdict = { kind: 'delivered' } | { kind: 'retry'; failure: AttemptFailure } | { kind: 'dead'; failure: AttemptFailure };

export interface TargetFormat {
  encode(entries: readonly OutboxEntry[], target: ForwardTarget): EncodedBatch;
  /** One verdict per entry, in the order of `entries`. */
  judge(answer: TargetAnswer, entries: readonly OutboxEntry[]): Verdict[];
}

export const DELIVERED: Verdict = { kind: 'delivered' };

/** RFC 9110 §15.5.9 (408), RFC 6585 §4 (429) and every 5xx pass with time; other 4xx do not. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** The first few hundred characters of an answer's body, on one line: enough to say why. */
export function snippet(text: string, max = 300): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/** A failure as an entry keeps it: `503: upstream busy`. */
export function failureOf(answer: TargetAnswer, why?: string): AttemptFailure {
  const detail = why ?? snippet(answer.body);
  return { status: answer.status, error: detail === '' ? `HTTP ${answer.status}` : `HTTP ${answer.status}: ${detail}` };
}

/** The same verdict for the whole batch, by its status alone. */
export function judgeByStatus(answer: TargetAnswer, entries: readonly OutboxEntry[], retryable: (status: number) => boolean = isRetryableStatus): Verdict[] {
  let verdict: Verdict;
  if (answer.status >= 200 && answer.status < 300) verdict = DELIVERED;
  else verdict = { kind: retryable(answer.status) ? 'retry' : 'dead', failure: failureOf(answer) };
  return entries.map(() => verdict);
}

/** An entry's record, as stored when it was queued. */
export function recordOf(entry: OutboxEntry): GroupedRecord {
  return JSON.parse(entry.body) as GroupedRecord;
}

/** Nanoseconds since the epoch as a decimal string (Loki, OTLP): exact, where a double would round. */
export function unixNanos(ms: number): string {
  const whole = Math.max(0, Math.trunc(ms));
  return whole === 0 ? '0' : `${whole}000000`;
}
