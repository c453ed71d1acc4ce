/**
 * A forwarding target from one URL, the same grammar on the command line and in the environment:
 * the format is picked from the path when it is unambiguous, and every option goes in the
 * fragment, which an HTTP client never sends (RFC 3986 §3.5):
 *
 *   https://user:secret@es:9200/_bulk#index=leakwatch&records=all&batch=500&max-wait=1s
 *
 * Credentials in the userinfo become Basic auth and never show in a name, a log line, /readyz or
 * a metric label: targets are named by scheme, host and path only (or by `name=`).
 */
import { formatBytes, parseBytes, parseDuration } from '../units.js';

export const FORWARD_FORMATS = ['ndjson', 'loki', 'elasticsearch', 'otlp'] as const;
export type ForwardFormat = (typeof FORWARD_FORMATS)[number];

/** `events`: classified groups only; `all`: every grouped record, unclassified ones with null category. */
export type ForwardRecords = 'events' | 'all';

/** Elasticsearch bulk action: `create` works for indices and data streams alike, and a 409 then means "already there". */
export type BulkAction = 'create' | 'index';

export interface ForwardTarget {
  /** Stable and free of secrets: outbox rows, logs, /readyz and metric labels use it. */
  name: string;
  /** Where requests go: `origin` for the connection pool, `path` with the query string. */
  origin: string;
  path: string;
  format: ForwardFormat;
  records: ForwardRecords;
  /** `Basic ...` from the URL's userinfo; never logged. */
  authorization: string | undefined;
  /** Events per request at most. */
  batchEvents: number;
  /** Bytes of events (before compression) per request at most; one larger event goes alone. */
  batchBytes: number;
  /** Longest an event waits for its batch to fill before it is sent anyway. */
  maxWaitMs: number;
  /** Requests in flight at once; each stream keeps to one lane, so its order is kept. */
  concurrency: number;
  gzip: boolean;
  /** Pending longer than this, an event becomes a dead letter; undefined until resolved against the outbox age. */
  giveUpMs: number | undefined;
  /** Ceiling of the first retry's delay (full jitter), doubled per attempt up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
  /** Longest wait for an answer's headers, and for each pause in its body. */
  timeoutMs: number;
  /** Elasticsearch: the index named in each action when the path has none. */
  index: string | undefined;
  bulkAction: BulkAction;
}

export class TargetSpecError extends Error {
  override readonly name = 'TargetSpecError';
}

export const TARGET_DEFAULTS = {
  records: 'events' as ForwardRecords,
  batchEvents: 500,
  batchBytes: 4 * 1024 * 1024,
  maxWaitMs: 1000,
  concurrency: 2,
  gzip: true,
  giveUpMs: 24 * 3_600_000,
  backoffMs: 500,
  maxBackoffMs: 60_000,
  timeoutMs: 30_000,
  index: 'leakwatch',
  bulkAction: 'create' as BulkAction,
};

/** The fragment's options: what each one takes and where it goes. */
const OPTIONS = ['format', 'name', 'records', 'batch', 'max-bytes', 'max-wait', 'concurrency', 'gzip', 'give-up', 'backoff', 'max-backoff', 'timeout', 'index', 'action'] as const;
type OptionName = (typeof OPTIONS)[number];

/** The format a path names without doubt, else NDJSON (Vector's http_server, Fluent Bit's http input). */
export function formatOfPath(path: string): ForwardFormat {
  if (path.endsWith('/loki/api/v1/push')) return 'loki';
  if (/(^|\/)_bulk$/.test(path)) return 'elasticsearch';
  if (path.endsWith('/v1/logs')) return 'otlp';
  return 'ndjson';
}

/** Index names Elasticsearch accepts: lowercase, none of \ / * ? " < > | space , # :, not starting with - _ +. */
const INDEX_NAME = /^[a-z0-9][^\\/*?"<>| ,#:A-Z]{0,254}$/;

function parseCountOption(name: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) throw new TargetSpecError(`${name}=${text}: expected a whole number from ${min} to ${max}`);
  return Number(text);
}

function parseDurationOption(name: string, text: string, min: number, max: number): number {
  const ms = parseDuration(text);
  if (ms === null || ms < min || ms > max) throw new TargetSpecError(`${name}=${text}: expected a duration such as 500ms, 1s, 24h (from ${min} ms to ${max / 86_400_000} d)`);
  return ms;
}

function parseBooleanOption(name: string, text: string): boolean {
  if (text === 'true' || text === '1') return true;
  if (text === 'false' || text === '0') return false;
  throw new TargetSpecError(`${name}=${text}: expected true or false`);
}

/**
 * Parses one `--forward-url`; throws TargetSpecError naming the part that is wrong. The message
 * never repeats the URL's credentials.
 */
export function parseForwardTarget(text: string): ForwardTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TargetSpecError('not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TargetSpecError(`only http and https URLs are supported, got ${url.protocol}`);
  const options = new Map<OptionName, string>();
  for (const [key, value] of new URLSearchParams(url.hash.replace(/^#/, ''))) {
    if (!(OPTIONS as readonly string[]).includes(key)) throw new TargetSpecError(`unknown option "${key}" in the fragment; known: ${OPTIONS.join(', ')}`);
    if (options.has(key as OptionName)) throw new TargetSpecError(`option "${key}" given twice`);
    options.set(key as OptionName, value);
  }
  const path = url.pathname;
  const formatText = options.get('format');
  if (formatText !== undefined && !(FORWARD_FORMATS as readonly string[]).includes(formatText)) {
    throw new TargetSpecError(`format=${formatText}: expected one of ${FORWARD_FORMATS.join(', ')}`);
  }
  const format = (formatText as ForwardFormat | undefined) ?? formatOfPath(path);
  if (format === 'elasticsearch' && !/(^|\/)_bulk$/.test(path)) throw new TargetSpecError('an Elasticsearch target posts to /_bulk or /<index>/_bulk');

  const records = options.get('records') ?? TARGET_DEFAULTS.records;
  if (records !== 'events' && records !== 'all') throw new TargetSpecError(`records=${records}: expected events or all`);
  const bulkAction = options.get('action') ?? TARGET_DEFAULTS.bulkAction;
  if (bulkAction !== 'create' && bulkAction !== 'index') throw new TargetSpecError(`action=${bulkAction}: expected create or index`);
  if (format !== 'elasticsearch') {
    for (const esOnly of ['index', 'action'] as const) {
      if (options.has(esOnly)) throw new TargetSpecError(`${esOnly}= is an Elasticsearch option; this target's format is ${format}`);
    }
  }
  const indexInPath = format === 'elasticsearch' && path !== '/_bulk';
  const index = options.get('index') ?? (format === 'elasticsearch' && !indexInPath ? TARGET_DEFAULTS.index : undefined);
  if (index !== undefined && indexInPath) throw new TargetSpecError('index= and an index in the path: name the index once');
  if (index !== undefined && !INDEX_NAME.test(index)) throw new TargetSpecError(`index=${index}: not an Elasticsearch index name (lowercase, none of \\ / * ? " < > | , # : or spaces)`);

  const sizeText = options.get('max-bytes');
  let batchBytes = TARGET_DEFAULTS.batchBytes;
  if (sizeText !== undefined) {
    const parsed = parseBytes(sizeText);
    if (parsed === null || parsed < 1024 || parsed > 256 * 1024 * 1024) throw new TargetSpecError(`max-bytes=${sizeText}: expected a size from 1KiB to 256MiB, such as 4MiB`);
    batchBytes = parsed;
  }
  const backoffMs = options.has('backoff') ? parseDurationOption('backoff', options.get('backoff')!, 1, 3_600_000) : TARGET_DEFAULTS.backoffMs;
  const maxBackoffMs = options.has('max-backoff') ? parseDurationOption('max-backoff', options.get('max-backoff')!, 1, 86_400_000) : Math.max(backoffMs, TARGET_DEFAULTS.maxBackoffMs);
  if (maxBackoffMs < backoffMs) throw new TargetSpecError(`max-backoff (${maxBackoffMs} ms) is shorter than backoff (${backoffMs} ms)`);

  const name = options.get('name') ?? `${url.protocol}//${url.host}${path}`;
  if (name === '' || name.length > 200 || /[\u0000-\u001f"\\]/.test(name)) throw new TargetSpecError('name=: 1 to 200 characters, no quotes, backslashes or control characters');

  let authorization: string | undefined;
  if (url.username !== '' || url.password !== '') {
    let credentials: string;
    try {
      credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    } catch {
      throw new TargetSpecError('the user or password is not valid percent-encoding');
    }
    authorization = `Basic ${Buffer.from(credentials).toString('base64')}`;
  }

  return {
    name,
    origin: url.origin,
    path: `${path}${url.search}`,
    format,
    records,
    authorization,
    batchEvents: options.has('batch') ? parseCountOption('batch', options.get('batch')!, 1, 100_000) : TARGET_DEFAULTS.batchEvents,
    batchBytes,
    maxWaitMs: options.has('max-wait') ? parseDurationOption('max-wait', options.get('max-wait')!, 0, 3_600_000) : TARGET_DEFAULTS.maxWaitMs,
    concurrency: options.has('concurrency') ? parseCountOption('concurrency', options.get('concurrency')!, 1, 64) : TARGET_DEFAULTS.concurrency,
    gzip: options.has('gzip') ? parseBooleanOption('gzip', options.get('gzip')!) : TARGET_DEFAULTS.gzip,
    giveUpMs: options.has('give-up') ? parseDurationOption('give-up', options.get('give-up')!, 1000, 365 * 86_400_000) : undefined,
    backoffMs,
    maxBackoffMs,
    timeoutMs: options.has('timeout') ? parseDurationOption('timeout', options.get('timeout')!, 100, 3_600_000) : TARGET_DEFAULTS.timeoutMs,
    index,
    bulkAction,
  };
}

/** One line per target for the start-up log: what it sends where, without secrets. */
export function describeTarget(target: ForwardTarget): string {
  return `${target.name} (${target.format}, ${target.records === 'all' ? 'every grouped record' : 'events'}, batches of ${target.batchEvents} / ${formatBytes(target.batchBytes)}, ${target.concurrency} in flight${target.gzip ? ', gzip' : ''})`;
}
