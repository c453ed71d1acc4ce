/**
 * Elasticsearch / OpenSearch `_bulk` (https://www.elastic.co/guide/en/elasticsearch/reference/current/docs-bulk.html):
 * NDJSON pairs of an action and a document, `_id` = the event id so that a retry lands on the
 * same document. The action is `create` by default: it works for indices and data streams alike
 * (data streams take nothing else), and its 409 for an id already there is what a retry of an
 * indexed batch gets — delivered. `#action=index` overwrites instead (plain indices only).
 *
 * A 200 answer is not a success by itself: with `"errors": true` each item carries its own
 * status. 2xx and 409 are delivered, 429 and 5xx are retried, any other status is a dead letter
 * (a mapping conflict, a document the index refuses).
 */
import type { OutboxEntry } from '../../store/store.js';
import { DELIVERED, failureOf, isRetryableStatus, judgeByStatus, recordOf, snippet, type TargetAnswer, type TargetFormat, type Verdict } from './format.js';

interface BulkItemResult {
  status?: unknown;
  error?: { type?: unknown; reason?: unknown } | unknown;
}

interface BulkAnswer {
  errors?: unknown;
  items?: unknown;
}

function itemVerdict(item: unknown, answer: TargetAnswer): Verdict {
  // Each item is `{ "<action>": { status, error?, ... } }`.
  const result = item !== null && typeof item === 'object' ? (Object.values(item)[0] as BulkItemResult | undefined) : undefined;
  const status = typeof result?.status === 'number' ? result.status : undefined;
  if (status === undefined) return { kind: 'retry', failure: failureOf(answer, 'a bulk item without a status') };
  if ((status >= 200 && status < 300) || status === 409) return DELIVERED;
  const error = result?.error as { type?: unknown; reason?: unknown } | undefined;
  const why = error && typeof error === 'object' ? `${String(error.type ?? 'error')}: ${String(error.reason ?? '')}` : '';
  const failure = { status, error: `bulk item ${status}${why === '' ? '' : `: ${snippet(why)}`}` };
  return { kind: isRetryableStatus(status) ? 'retry' : 'dead', failure };
}

export const elasticsearchFormat: TargetFormat = {
  encode(entries, target) {
    let body = '';
    for (const entry of entries) {
      const record = recordOf(entry);
      const meta: Record<string, string> = target.index === undefined ? { _id: record.id } : { _index: target.index, _id: record.id };
      // `@timestamp` is what data streams require and what Kibana sorts by; the event keeps its own fields.
      body += `${JSON.stringify({ [target.bulkAction]: meta })}\n${JSON.stringify({ '@timestamp': record.timestamp, ...record })}\n`;
    }
    return { body, contentType: 'application/x-ndjson' };
  },

  judge(answer: TargetAnswer, entries: readonly OutboxEntry[]): Verdict[] {
    if (answer.status < 200 || answer.status >= 300) return judgeByStatus(answer, entries);
    let parsed: BulkAnswer;
    try {
      parsed = JSON.parse(answer.body) as BulkAnswer;
    } catch {
      return entries.map(() => ({ kind: 'retry', failure: failureOf(answer, 'the bulk answer is not JSON') }));
    }
    if (parsed.errors === false) return entries.map(() => DELIVERED);
    const items = Array.isArray(parsed.items) ? parsed.items : undefined;
    if (items === undefined || items.length !== entries.length) {
      // Without one item per action the answer cannot say which were taken: send them again (ids make that safe).
      return entries.map(() => ({ kind: 'retry', failure: failureOf(answer, `the bulk answer has ${items?.length ?? 'no'} items for ${entries.length} actions`) }));
    }
    return items.map((item) => itemVerdict(item, answer));
  },
};
