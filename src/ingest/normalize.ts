import { isJournalctlMarker, parseJournalPrefix } from './journald-prefix.js';
import { headerTimeToEpochMs, parseLineHeader } from './line-layout.js';
import { streamKeyOf, type LogRecord } from './record.js';

/**
 * Shipper objects → LogRecord (DESIGN "Ingest contract", field mapping). The key lists include the
 * spellings the shippers' options produce: Fluent Bit systemd `strip_underscores` (one leading `_`
 * removed) and `lowercase`, fluent-plugin-systemd `fields_strip_underscores` (all leading `_`) and
 * `fields_lowercase`, Vector's journald renames (`MESSAGE`→`message`, `_HOSTNAME`→`host`).
 */

const MESSAGE_KEYS = ['message', 'MESSAGE', 'log', 'msg'] as const;
const HOST_KEYS = ['host', '_HOSTNAME', 'HOSTNAME', '_hostname', 'hostname'] as const;
const SERVICE_KEYS = [
  'SYSLOG_IDENTIFIER',
  'syslog_identifier',
  '_SYSTEMD_UNIT',
  'SYSTEMD_UNIT',
  '_systemd_unit',
  'systemd_unit',
  'container_name',
] as const;
const PID_KEYS = ['_PID', 'PID', '_pid', 'pid'] as const;

type TimeKind = 'auto' | 'micros';
/** In DESIGN's order of preference; `date` is where a msgpack event time ranks too. */
const TIME_KEYS: ReadonlyArray<readonly [string, TimeKind]> = [
  ['timestamp', 'auto'],
  ['_SOURCE_REALTIME_TIMESTAMP', 'micros'],
  ['SOURCE_REALTIME_TIMESTAMP', 'micros'],
  ['_source_realtime_timestamp', 'micros'],
  ['source_realtime_timestamp', 'micros'],
  ['__REALTIME_TIMESTAMP', 'micros'],
  ['_REALTIME_TIMESTAMP', 'micros'],
  ['REALTIME_TIMESTAMP', 'micros'],
  ['__realtime_timestamp', 'micros'],
  ['_realtime_timestamp', 'micros'],
  ['realtime_timestamp', 'micros'],
];
const LATE_TIME_KEYS: ReadonlyArray<readonly [string, TimeKind]> = [
  ['time', 'auto'],
  ['@timestamp', 'auto'],
];

/** A journald field that repeats within an entry arrives as an array; the first value stands. */
function firstValue(value: unknown): unknown {
  if (Array.isArray(value) && value.length > 0 && !isByteArray(value)) return value[0];
  return value;
}

/** `journalctl -o json` writes a non-UTF-8 field as an array of byte values. */
function isByteArray(value: unknown[]): value is number[] {
  if (value.length === 0) return false;
  for (const item of value) {
    if (typeof item !== 'number' || !Number.isInteger(item) || item < 0 || item > 255) return false;
  }
  return true;
}

/** Any field value as text: strings as is, byte arrays / binaries decoded as UTF-8 (lossy). */
export function valueAsText(value: unknown): string | undefined {
  const single = firstValue(value);
  if (typeof single === 'string') return single;
  if (typeof single === 'number' || typeof single === 'boolean' || typeof single === 'bigint') return String(single);
  if (single instanceof Uint8Array) return Buffer.from(single.buffer, single.byteOffset, single.byteLength).toString('utf8');
  if (Array.isArray(single) && isByteArray(single)) return Buffer.from(single).toString('utf8');
  return undefined;
}

function pick(obj: Record<string, unknown>, keys: readonly string[]): string {
  for (const key of keys) {
    const value = obj[key];
    if (value === undefined || value === null) continue;
    const text = valueAsText(value);
    if (text !== undefined && text !== '') return text;
  }
  return '';
}

function nested(obj: Record<string, unknown>, parent: string, key: string): string {
  const inner = obj[parent];
  if (inner === null || typeof inner !== 'object' || Array.isArray(inner)) return '';
  return valueAsText((inner as Record<string, unknown>)[key]) ?? '';
}

/** Seconds, ms, µs or ns since the epoch, told apart by magnitude (valid for years 1973–5138). */
export function epochNumberToMs(value: number): number | undefined {
  if (!Number.isFinite(value) || value <= 0) return undefined;
  if (value < 1e11) return value * 1000;
  if (value < 1e14) return value;
  if (value < 1e17) return value / 1000;
  return value / 1e6;
}

const NUMERIC = /^\d+(?:\.\d+)?$/;

function timeValueToMs(value: unknown, kind: TimeKind): number | undefined {
  const single = firstValue(value);
  let ms: number | undefined;
  if (typeof single === 'number') {
    ms = kind === 'micros' ? single / 1000 : epochNumberToMs(single);
  } else if (typeof single === 'bigint') {
    ms = kind === 'micros' ? Number(single / 1000n) : epochNumberToMs(Number(single));
  } else if (typeof single === 'string' && single !== '') {
    if (NUMERIC.test(single)) ms = kind === 'micros' ? Number(single) / 1000 : epochNumberToMs(Number(single));
    else if (kind === 'auto') ms = Date.parse(single);
  }
  return ms !== undefined && Number.isFinite(ms) && ms > 0 ? Math.floor(ms) : undefined;
}

function timeFrom(obj: Record<string, unknown>, keys: ReadonlyArray<readonly [string, TimeKind]>): number | undefined {
  for (const [key, kind] of keys) {
    const value = obj[key];
    if (value === undefined || value === null) continue;
    const ms = timeValueToMs(value, kind);
    if (ms !== undefined) return ms;
  }
  return undefined;
}

function messageText(obj: Record<string, unknown>): string {
  for (const key of MESSAGE_KEYS) {
    const value = obj[key];
    if (value === undefined || value === null) continue;
    const text = valueAsText(value) ?? safeStringify(value);
    return stripTrailingNewline(text);
  }
  return '';
}

export function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value, (_key, inner: unknown) => (typeof inner === 'bigint' ? inner.toString() : inner)) ?? String(value);
  } catch {
    // Too deep to print (stack overflow) or a hostile toString: say so rather than crash.
    try {
      return String(value);
    } catch {
      return '[unprintable value]';
    }
  }
}

/** Docker's `log` keeps the line's own `\n`. */
function stripTrailingNewline(text: string): string {
  let end = text.length;
  if (text.charCodeAt(end - 1) === 10) end--;
  if (text.charCodeAt(end - 1) === 13) end--;
  return end === text.length ? text : text.slice(0, end);
}

/** A linkerd header's own time, for lines that carry nothing else. */
export function lineHeaderTimeMs(line: string, referenceMs: number): number | undefined {
  const header = parseLineHeader(line);
  return header === null ? undefined : headerTimeToEpochMs(header, referenceMs);
}

/**
 * One shipper object → LogRecord. `eventTimeMs` is a time the transport carried beside the record
 * (Fluent Bit/Fluentd msgpack event time); it ranks where Fluent Bit's JSON `date` does. A message
 * that itself starts with a journald `short` prefix gives host/service/pid (the line's own origin
 * beats the collector's idea of it) and is stripped of it.
 */
export function recordFromObject(obj: Record<string, unknown>, receivedAtMs: number, eventTimeMs?: number): LogRecord {
  let message = messageText(obj);
  let host = pick(obj, HOST_KEYS) || nestedObjectHost(obj) || nested(obj, 'kubernetes', 'pod_name');
  let service = pick(obj, SERVICE_KEYS) || nested(obj, 'kubernetes', 'container_name');
  let pid = pick(obj, PID_KEYS);
  let time = timeFrom(obj, TIME_KEYS);
  if (time === undefined) time = eventTimeMs !== undefined && Number.isFinite(eventTimeMs) ? eventTimeMs : timeValueToMs(obj['date'], 'auto');
  if (time === undefined) time = timeFrom(obj, LATE_TIME_KEYS);

  const prefix = message.length >= 16 ? parseJournalPrefix(message, receivedAtMs) : null;
  if (prefix !== null) {
    if (prefix.host !== '') host = prefix.host;
    if (prefix.service !== '') service = prefix.service;
    if (prefix.pid !== '') pid = prefix.pid;
    message = message.slice(prefix.messageStart);
    if (time === undefined) time = prefix.timeMs;
  }
  if (time === undefined) time = lineHeaderTimeMs(message, receivedAtMs) ?? receivedAtMs;
  return { time, host, service, pid, stream: streamKeyOf(host, service, pid), message, fields: obj };
}

/** ECS-style `host: {name: ...}` (Elastic agents, Vector's `host` remapped). */
function nestedObjectHost(obj: Record<string, unknown>): string {
  return nested(obj, 'host', 'name') || nested(obj, 'host', 'hostname');
}

/**
 * A text line (journald `short*` or a bare linkerd line) → LogRecord, or null for lines that carry
 * no log data (empty lines, journalctl's `-- Logs begin at ... --` markers).
 */
export function recordFromText(line: string, receivedAtMs: number, yearHint?: number): LogRecord | null {
  const text = line.charCodeAt(line.length - 1) === 13 ? line.slice(0, -1) : line;
  if (text.length === 0) return null;
  if (text.charCodeAt(0) === 45 && isJournalctlMarker(text)) return null;
  const prefix = parseJournalPrefix(text, receivedAtMs, yearHint);
  if (prefix === null) {
    const time = lineHeaderTimeMs(text, receivedAtMs) ?? receivedAtMs;
    return { time, host: '', service: '', pid: '', stream: streamKeyOf('', '', ''), message: text };
  }
  const message = text.slice(prefix.messageStart);
  // A linkerd header carries milliseconds and its zone; journalctl's `short` time has neither.
  const time = prefix.zoned
    ? (prefix.timeMs ?? lineHeaderTimeMs(message, receivedAtMs) ?? receivedAtMs)
    : (lineHeaderTimeMs(message, prefix.timeMs ?? receivedAtMs) ?? prefix.timeMs ?? receivedAtMs);
  return { time, host: prefix.host, service: prefix.service, pid: prefix.pid, stream: streamKeyOf(prefix.host, prefix.service, prefix.pid), message };
}

/**
 * Input that could not be decoded as its batch's format, kept as text so nothing is lost (a bad
 * NDJSON line, a broken object in a json_stream, an array element that is no record).
 */
export function malformedRecord(text: string, receivedAtMs: number): LogRecord {
  const record = recordFromText(text, receivedAtMs) ?? {
    time: receivedAtMs,
    host: '',
    service: '',
    pid: '',
    stream: streamKeyOf('', '', ''),
    message: text,
  };
  record.malformed = true;
  return record;
}
