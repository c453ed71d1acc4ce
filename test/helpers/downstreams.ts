/**
 * What Loki, Elasticsearch and an OpenTelemetry collector check in a body before they take it,
 * written out for the loopback receivers of the tests. Each check is first run on the project's
 * own example (test/fixtures/forward/README.md says where each comes from), so that a check that
 * refuses the real thing is caught before it judges leakwatch's output.
 */
import { readFileSync } from 'node:fs';

const FIXTURES = new URL('../fixtures/forward/', import.meta.url);

export function fixture(name: string): string {
  return readFileSync(new URL(name, FIXTURES), 'utf8');
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------
// Loki: the JSON push body (grafana/loki pkg/loghttp/push: `streams[].stream` a map of string
// labels, `values[]` pairs of a nanosecond timestamp *as a string* and a line, optionally a third
// element of structured metadata), then the distributor's validation with its default limits
// (pkg/validation: at most 15 labels, names matching [a-zA-Z_][a-zA-Z0-9_]*, values up to 2048
// characters, lines up to 256 KB).
// ---------------------------------------------------------------------------------------------

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export interface LokiEntry {
  labels: Record<string, string>;
  nanos: bigint;
  line: string;
}

export function lokiPush(body: string): { problems: string[]; entries: LokiEntry[] } {
  const problems: string[] = [];
  const entries: LokiEntry[] = [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (error) {
    return { problems: [`not JSON: ${String(error)}`], entries };
  }
  if (!isObject(parsed) || !Array.isArray(parsed['streams'])) return { problems: ['no "streams" array'], entries };
  for (const [index, stream] of (parsed['streams'] as unknown[]).entries()) {
    const where = `streams[${index}]`;
    if (!isObject(stream) || !isObject(stream['stream']) || !Array.isArray(stream['values'])) {
      problems.push(`${where}: needs "stream" (labels) and "values"`);
      continue;
    }
    const labels = stream['stream'];
    const names = Object.keys(labels);
    if (names.length === 0) problems.push(`${where}: no labels`);
    if (names.length > 15) problems.push(`${where}: ${names.length} labels, over max_label_names_per_series (15)`);
    for (const [name, value] of Object.entries(labels)) {
      if (!LABEL_NAME.test(name) || name.startsWith('__')) problems.push(`${where}: invalid label name ${name}`);
      if (typeof value !== 'string' || value === '' || value.length > 2048) problems.push(`${where}: label ${name} must be a non-empty string of at most 2048 characters`);
    }
    for (const [valueIndex, value] of (stream['values'] as unknown[]).entries()) {
      const at = `${where}.values[${valueIndex}]`;
      if (!Array.isArray(value) || value.length < 2 || value.length > 3) {
        problems.push(`${at}: expected [timestamp, line] or [timestamp, line, metadata]`);
        continue;
      }
      const [timestamp, line] = value as unknown[];
      if (typeof timestamp !== 'string' || !/^\d{1,19}$/.test(timestamp)) problems.push(`${at}: the timestamp must be a string of nanoseconds`);
      if (typeof line !== 'string') problems.push(`${at}: the line must be a string`);
      else if (Buffer.byteLength(line) > 256 * 1024) problems.push(`${at}: line over max_line_size`);
      if (typeof timestamp === 'string' && typeof line === 'string' && /^\d+$/.test(timestamp)) entries.push({ labels: labels as Record<string, string>, nanos: BigInt(timestamp), line });
    }
  }
  return { problems, entries };
}

// ---------------------------------------------------------------------------------------------
// Elasticsearch `_bulk` (docs-bulk): NDJSON, one action line per operation; index, create and
// update are followed by a source line, delete is not; the body ends with a newline.
// ---------------------------------------------------------------------------------------------

export interface BulkAction {
  action: 'index' | 'create' | 'update' | 'delete';
  meta: Record<string, unknown>;
  source: Record<string, unknown> | undefined;
}

const BULK_ACTIONS = ['index', 'create', 'update', 'delete'] as const;

export function bulkRequest(body: string): { problems: string[]; actions: BulkAction[] } {
  const problems: string[] = [];
  const actions: BulkAction[] = [];
  if (!body.endsWith('\n')) problems.push('the body must end with a newline');
  const lines = body.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (let index = 0; index < lines.length; index++) {
    let action: unknown;
    try {
      action = JSON.parse(lines[index]!);
    } catch {
      problems.push(`line ${index + 1}: not JSON`);
      continue;
    }
    const keys = isObject(action) ? Object.keys(action) : [];
    const name = keys[0] as BulkAction['action'] | undefined;
    if (keys.length !== 1 || name === undefined || !(BULK_ACTIONS as readonly string[]).includes(name) || !isObject((action as Record<string, unknown>)[name])) {
      problems.push(`line ${index + 1}: expected one of ${BULK_ACTIONS.join(', ')} with its metadata`);
      continue;
    }
    const meta = (action as Record<string, Record<string, unknown>>)[name]!;
    let source: Record<string, unknown> | undefined;
    if (name !== 'delete') {
      index++;
      try {
        const parsed = JSON.parse(lines[index] ?? '');
        if (!isObject(parsed)) throw new Error('not an object');
        source = parsed;
      } catch {
        problems.push(`line ${index + 1}: the ${name} action needs a source object`);
      }
    }
    actions.push({ action: name, meta, source });
  }
  return { problems, actions };
}

/** A bulk answer in the shape of Elasticsearch's own (es-bulk-errors-response.json), one item per action. */
export function bulkAnswer(actions: readonly BulkAction[], statusOf: (action: BulkAction, index: number) => number, indexInPath?: string): string {
  const template = JSON.parse(fixture('es-bulk-errors-response.json')) as { items: Array<Record<string, Record<string, unknown>>> };
  const created = template.items[2]!['create']!;
  const failed = template.items[0]!['update']!;
  const errorOf: Record<number, { type: string; reason: string }> = {
    400: { type: 'mapper_parsing_exception', reason: 'failed to parse field [fields.ratio] of type [long]' },
    409: { type: 'version_conflict_engine_exception', reason: 'document already exists' },
    429: { type: 'es_rejected_execution_exception', reason: 'rejected execution of coordinating operation' },
    503: { type: 'unavailable_shards_exception', reason: 'primary shard is not active' },
  };
  let errors = false;
  const items = actions.map((action, index) => {
    const status = statusOf(action, index);
    const target = { _index: (action.meta['_index'] as string | undefined) ?? indexInPath, _id: action.meta['_id'] };
    if (status >= 200 && status < 300) return { [action.action]: { ...created, ...target, status } };
    errors = true;
    const error = { ...(failed['error'] as Record<string, unknown>), ...(errorOf[status] ?? { type: 'exception', reason: `status ${status}` }), index: target._index };
    return { [action.action]: { ...target, status, error } };
  });
  return JSON.stringify({ took: 3, errors, items });
}

// ---------------------------------------------------------------------------------------------
// OTLP/HTTP JSON (opentelemetry-proto: logs.proto, common.proto, resource.proto; the JSON
// mapping of docs/specification.md — lowerCamelCase names, enums as integers, 64-bit integers as
// decimal strings or numbers, trace and span ids in hex). Field names not in the protos are
// refused here: a collector would ignore them, which would hide a misspelt field.
// ---------------------------------------------------------------------------------------------

const LOG_RECORD_FIELDS = ['timeUnixNano', 'observedTimeUnixNano', 'severityNumber', 'severityText', 'body', 'attributes', 'droppedAttributesCount', 'flags', 'traceId', 'spanId', 'eventName'];

function int64(value: unknown): boolean {
  return (typeof value === 'string' && /^-?\d{1,19}$/.test(value)) || (typeof value === 'number' && Number.isInteger(value));
}

function anyValueProblems(value: unknown, where: string): string[] {
  if (!isObject(value)) return [`${where}: not an AnyValue`];
  const keys = Object.keys(value);
  if (keys.length !== 1) return [`${where}: an AnyValue holds exactly one value, got ${keys.join(', ') || 'none'}`];
  const [key] = keys as [string];
  const inner = value[key];
  switch (key) {
    case 'stringValue':
      return typeof inner === 'string' ? [] : [`${where}: stringValue must be a string`];
    case 'boolValue':
      return typeof inner === 'boolean' ? [] : [`${where}: boolValue must be a boolean`];
    case 'intValue':
      return int64(inner) ? [] : [`${where}: intValue must be a 64-bit integer`];
    case 'doubleValue':
      return typeof inner === 'number' ? [] : [`${where}: doubleValue must be a number`];
    case 'bytesValue':
      return typeof inner === 'string' ? [] : [`${where}: bytesValue must be base64`];
    case 'arrayValue':
      return isObject(inner) && Array.isArray(inner['values']) ? (inner['values'] as unknown[]).flatMap((item, index) => anyValueProblems(item, `${where}.values[${index}]`)) : [`${where}: arrayValue needs values`];
    case 'kvlistValue':
      return isObject(inner) && Array.isArray(inner['values']) ? keyValuesProblems(inner['values'], `${where}.values`) : [`${where}: kvlistValue needs values`];
    default:
      return [`${where}: unknown AnyValue field ${key}`];
  }
}

function keyValuesProblems(list: unknown, where: string): string[] {
  if (!Array.isArray(list)) return [`${where}: not a list of KeyValue`];
  return list.flatMap((item, index) =>
    isObject(item) && typeof item['key'] === 'string' && item['key'] !== '' ? anyValueProblems(item['value'], `${where}[${index}] (${item['key']})`) : [`${where}[${index}]: a KeyValue needs a key`],
  );
}

export function otlpLogsProblems(body: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (error) {
    return [`not JSON: ${String(error)}`];
  }
  if (!isObject(parsed) || !Array.isArray(parsed['resourceLogs'])) return ['no resourceLogs'];
  const problems: string[] = [];
  for (const [r, resourceLogs] of (parsed['resourceLogs'] as unknown[]).entries()) {
    const where = `resourceLogs[${r}]`;
    if (!isObject(resourceLogs) || !Array.isArray(resourceLogs['scopeLogs'])) {
      problems.push(`${where}: needs scopeLogs`);
      continue;
    }
    if (resourceLogs['resource'] !== undefined) problems.push(...keyValuesProblems((resourceLogs['resource'] as Record<string, unknown>)['attributes'] ?? [], `${where}.resource.attributes`));
    for (const [s, scopeLogs] of (resourceLogs['scopeLogs'] as unknown[]).entries()) {
      const at = `${where}.scopeLogs[${s}]`;
      if (!isObject(scopeLogs) || !Array.isArray(scopeLogs['logRecords'])) {
        problems.push(`${at}: needs logRecords`);
        continue;
      }
      for (const [l, record] of (scopeLogs['logRecords'] as unknown[]).entries()) {
        const here = `${at}.logRecords[${l}]`;
        if (!isObject(record)) {
          problems.push(`${here}: not an object`);
          continue;
        }
        for (const key of Object.keys(record)) if (!LOG_RECORD_FIELDS.includes(key)) problems.push(`${here}: no field ${key} in LogRecord`);
        for (const key of ['timeUnixNano', 'observedTimeUnixNano']) if (record[key] !== undefined && !int64(record[key])) problems.push(`${here}.${key}: a 64-bit integer`);
        if (record['severityNumber'] !== undefined && !(Number.isInteger(record['severityNumber']) && (record['severityNumber'] as number) >= 0 && (record['severityNumber'] as number) <= 24)) problems.push(`${here}.severityNumber: an integer 0-24`);
        if (record['body'] !== undefined) problems.push(...anyValueProblems(record['body'], `${here}.body`));
        problems.push(...keyValuesProblems(record['attributes'] ?? [], `${here}.attributes`));
      }
    }
  }
  return problems;
}
