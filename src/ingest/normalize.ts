import { isJournalctlMarker, parseJournalPrefix, type JournalPrefix } from './journald-prefix.js';
import { headerTimeOf } from './line-layout.js';
import { streamKeyOf, type LogRecord } from './record.js';
import { timeValueToUs } from './timestamps.js';

/**
 * Shipper objects and text lines → LogRecord (the ingest contract's field mapping). The key lists
 * include the spellings the shippers' options produce: Fluent Bit systemd `strip_underscores` (one
 * leading `_` removed) and `lowercase`, fluent-plugin-systemd `fields_strip_underscores` (all
 * leading `_`) and `fields_lowercase`, Vector's journald renames (`MESSAGE`→`message`,
 * `_HOSTNAME`→`host`), Fluent Bit's syslog parsers (`ident`, `pid`; RFC 5424 `appname`, `procid`),
 * and GELF (`full_message`/`short_message`, additional fields prefixed with `_`:
 * https://go2docs.graylog.org/current/getting_in_log_data/gelf.html, Fluent Bit's
 * src/flb_pack_gelf.c).
 *
 * Times. A record has up to three, each for its own purpose:
 * - `time`, the event time: the line's own (a journald prefix with a zone, a log header, a journald
 *   prefix without one, journald's `_SOURCE_REALTIME_TIMESTAMP`), else its source's clock, else
 *   receipt. The line's own time comes first so that the same line posted as text or as JSON gets
 *   the same time, hence the same event id; and a shipper's read time never dates an incident.
 * - `sourceUs`, the source's clock on every line alike (journald's `__REALTIME_TIMESTAMP`, Vector's
 *   `timestamp`, Fluent Bit's `date` or msgpack event time, a journald text prefix): source order
 *   and silence between lines.
 * - `position`: journald's sequence number, or a file offset a shipper was told to add (Fluent Bit
 *   tail `Offset_Key offset`, Vector file `offset_key: offset`): ties of `sourceUs`.
 */

const MESSAGE_KEYS = ['message', 'MESSAGE', 'log', 'msg', 'full_message', 'short_message'] as const;
const HOST_KEYS = ['host', '_HOSTNAME', 'HOSTNAME', '_hostname', 'hostname'] as const;
const SERVICE_KEYS = [
  'SYSLOG_IDENTIFIER',
  'syslog_identifier',
  '_SYSTEMD_UNIT',
  'SYSTEMD_UNIT',
  '_systemd_unit',
  'systemd_unit',
  'container_name',
  'ident',
  'appname',
] as const;
const PID_KEYS = ['_PID', 'PID', '_pid', 'pid', 'procid'] as const;

/** Journal and shipper clocks, best first; `true` marks fields that are always µs. */
const SOURCE_CLOCK_KEYS: ReadonlyArray<readonly [string, boolean]> = [
  ['__REALTIME_TIMESTAMP', true],
  ['_REALTIME_TIMESTAMP', true],
  ['REALTIME_TIMESTAMP', true],
  ['__realtime_timestamp', true],
  ['_realtime_timestamp', true],
  ['realtime_timestamp', true],
  ['timestamp', false],
];
/** Times a shipper adds beside its clock fields; they rank after the transport's own event time. */
const LATE_CLOCK_KEYS: ReadonlyArray<readonly [string, boolean]> = [
  ['date', false],
  ['time', false],
  ['@timestamp', false],
];
/** journald's record of when the process itself logged the line (absent for stdout lines). */
const SOURCE_REALTIME_KEYS = ['_SOURCE_REALTIME_TIMESTAMP', 'SOURCE_REALTIME_TIMESTAMP', '_source_realtime_timestamp', 'source_realtime_timestamp'] as const;
const OFFSET_KEYS = ['offset', 'Offset', 'file_offset'] as const;
const FILE_KEYS = ['file', 'path', 'filename'] as const;
const SEQNUM_KEYS = ['__SEQNUM', '_SEQNUM', 'SEQNUM', '__seqnum', 'seqnum'] as const;
/** journald's cursor, whose `i=` part is its sequence number. */
const CURSOR_KEY = '__CURSOR';
/** The Elastic Common Schema's `log.offset`: an object under this key. */
const NESTED_OFFSET_PARENT = 'log';
/** Kubernetes metadata (`pod_name`, `container_name`) as Fluent Bit's and Vector's enrichers nest it. */
const KUBERNETES_KEY = 'kubernetes';

/*
 * Which of the key lists above a record has any key of, read in one pass over its keys. A record
 * carries a handful of the ~50 keys looked for, and looking up a key it does not have cost ~50 ns
 * (the lookup goes on to the prototype): the position's ten lookups alone were a tenth of
 * decoding a Vector body. A list whose bit is not set is not looked through.
 */
const HAS_MESSAGE = 1 << 0;
const HAS_HOST = 1 << 1;
const HAS_SERVICE = 1 << 2;
const HAS_PID = 1 << 3;
const HAS_SOURCE_CLOCK = 1 << 4;
const HAS_LATE_CLOCK = 1 << 5;
const HAS_SOURCE_REALTIME = 1 << 6;
const HAS_POSITION = 1 << 7;
const HAS_FILE = 1 << 8;
const HAS_KUBERNETES = 1 << 9;
const HAS_SHORT_MESSAGE = 1 << 10;

const KEY_LISTS: ReadonlyArray<readonly [readonly string[], number]> = [
  [MESSAGE_KEYS, HAS_MESSAGE],
  [HOST_KEYS, HAS_HOST],
  [SERVICE_KEYS, HAS_SERVICE],
  [PID_KEYS, HAS_PID],
  [SOURCE_CLOCK_KEYS.map(([key]) => key), HAS_SOURCE_CLOCK],
  [LATE_CLOCK_KEYS.map(([key]) => key), HAS_LATE_CLOCK],
  [SOURCE_REALTIME_KEYS, HAS_SOURCE_REALTIME],
  [[...SEQNUM_KEYS, CURSOR_KEY, ...OFFSET_KEYS, NESTED_OFFSET_PARENT], HAS_POSITION],
  [FILE_KEYS, HAS_FILE],
  [[KUBERNETES_KEY], HAS_KUBERNETES],
  [['short_message'], HAS_SHORT_MESSAGE],
];

const KEY_LIST_BITS = new Map<string, number>();
for (const [keys, bit] of KEY_LISTS) for (const key of keys) KEY_LIST_BITS.set(key, (KEY_LIST_BITS.get(key) ?? 0) | bit);

/** The bits of the key lists `obj` has a key of (inherited enumerable keys too: a bit too many only costs a lookup). */
function keyListsOf(obj: Record<string, unknown>): number {
  let bits = 0;
  for (const key in obj) bits |= KEY_LIST_BITS.get(key) ?? 0;
  return bits;
}

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

function nested(obj: Record<string, unknown>, parent: string, key: string): unknown {
  const inner = obj[parent];
  if (inner === null || typeof inner !== 'object' || Array.isArray(inner)) return undefined;
  return (inner as Record<string, unknown>)[key];
}

function nestedText(obj: Record<string, unknown>, parent: string, key: string): string {
  return valueAsText(nested(obj, parent, key)) ?? '';
}

function clockFrom(obj: Record<string, unknown>, keys: ReadonlyArray<readonly [string, boolean]>): number | undefined {
  for (const [key, micros] of keys) {
    const value = obj[key];
    if (value === undefined || value === null) continue;
    const us = timeValueToUs(firstValue(value), micros);
    if (us !== undefined) return us;
  }
  return undefined;
}

function numberFrom(value: unknown): number | undefined {
  const single = firstValue(value);
  const n = typeof single === 'number' ? single : typeof single === 'string' && /^\d+$/.test(single) ? Number(single) : Number.NaN;
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** journald's sequence number (`__SEQNUM`, or the `i=` part of `__CURSOR`), else a file offset. */
function positionOf(obj: Record<string, unknown>): number | undefined {
  for (const key of SEQNUM_KEYS) {
    const n = numberFrom(obj[key]);
    if (n !== undefined) return n;
  }
  const cursor = valueAsText(obj[CURSOR_KEY]);
  if (cursor !== undefined) {
    const match = /(?:^|;)i=([0-9a-f]+)(?:;|$)/.exec(cursor);
    if (match) return Number.parseInt(match[1] as string, 16);
  }
  for (const key of OFFSET_KEYS) {
    const n = numberFrom(obj[key]);
    if (n !== undefined) return n;
  }
  return numberFrom(nested(obj, NESTED_OFFSET_PARENT, 'offset'));
}

/** The message field's text, or undefined when the record has none of the known text fields. */
function messageText(obj: Record<string, unknown>): string | undefined {
  for (const key of MESSAGE_KEYS) {
    const value = obj[key];
    if (value === undefined || value === null) continue;
    const text = valueAsText(value) ?? safeStringify(value);
    return stripTrailingNewline(text);
  }
  return undefined;
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


/**
 * The line's own time: a journald prefix with a zone (`short-iso`), else the log header's (with
 * milliseconds and its zone), else a zone-less journald prefix (`short`, local time read as UTC).
 */
function ownTimeMs(prefix: Pick<JournalPrefix, 'zoned' | 'timeMs'> | null, message: string, referenceMs: number): number | undefined {
  if (prefix === null) return headerTimeOf(message, referenceMs);
  return prefix.zoned && prefix.timeMs !== undefined ? prefix.timeMs : prefixedLineTimeMs(prefix, headerTimeOf(message, referenceMs));
}

/** ownTimeMs of a journald line whose message's header time (read with the prefix's date as reference) is known. */
export function prefixedLineTimeMs(prefix: Pick<JournalPrefix, 'zoned' | 'timeMs'>, headerTimeMs: number | undefined): number | undefined {
  if (prefix.zoned && prefix.timeMs !== undefined) return prefix.timeMs;
  return headerTimeMs ?? prefix.timeMs;
}

/** A journald line's source clock: its prefix's time in µs, or (short-monotonic) µs since boot. */
export function prefixSourceUs(prefix: Pick<JournalPrefix, 'timeMs' | 'bootUs'>): number | undefined {
  return prefix.timeMs !== undefined ? Math.round(prefix.timeMs * 1000) : prefix.bootUs;
}

/**
 * GELF puts every field but its own under a `_` prefix (`_PID` arrives as `__PID`,
 * `SYSLOG_IDENTIFIER` as `_SYSLOG_IDENTIFIER`); nested maps are flattened with `_`. The view
 * removes that prefix so the usual keys find them.
 */
function gelfView(obj: Record<string, unknown>): Record<string, unknown> {
  const view: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [key, value] of Object.entries(obj)) view[key] = value;
  for (const [key, value] of Object.entries(obj)) {
    if (key.charCodeAt(0) !== 95 /* _ */) continue;
    const bare = key.slice(1);
    if (view[bare] === undefined) view[bare] = value;
  }
  const podName = view['kubernetes_pod_name'];
  if (podName !== undefined && view[KUBERNETES_KEY] === undefined) {
    view[KUBERNETES_KEY] = { pod_name: podName, container_name: view['kubernetes_container_name'] };
  }
  return view;
}

function isGelf(obj: Record<string, unknown>): boolean {
  return obj['short_message'] !== undefined && (obj['version'] !== undefined || obj['message'] === undefined);
}

/**
 * A tailed file's name (Vector's `file`, Fluent Bit's `Path_Key path`) names the stream of records
 * that say nothing else about their origin, as `leakwatch analyze` names a raw file's: two log files
 * of one host are two streams, never joined.
 */
function fileNameOf(obj: Record<string, unknown>): string {
  const path = pick(obj, FILE_KEYS);
  const slash = path.lastIndexOf('/');
  return slash < 0 ? path : path.slice(slash + 1);
}

/** A flat map of `a/b/c` keys to numbers: a metrics snapshot (linkerd's /admin/metrics.json), no log line. */
function isMetricsSnapshot(obj: Record<string, unknown>): boolean {
  for (const key in obj) {
    if (key.includes('/') && typeof obj[key] === 'number') return true;
  }
  return false;
}

/**
 * The same map as text, the way Vector's `http_client` source passes a scrape on by default (the
 * whole body in `message`): a JSON object whose keys are `a/b` paths with numbers. Not a log line:
 * the memory tracker reads its numbers, the engine never sees it. Structured JSON log lines do not
 * have path keys.
 */
const METRICS_DOCUMENT = /^\s*\{\s*"[^"/]+\/[^"]*"\s*:\s*-?\d/;

function isMetricsDocument(text: string): boolean {
  return text.charCodeAt(0) === 123 /* { */ && METRICS_DOCUMENT.test(text.slice(0, 512));
}

/**
 * One shipper object → LogRecord. `transportTimeUs` is a time the transport carried beside the
 * record (Fluent Bit/Fluentd msgpack event time); it ranks where Fluent Bit's JSON `date` does. A
 * message that itself starts with a journald `short` prefix gives host/service/pid (the line's own
 * origin beats the collector's idea of it) and is stripped of it.
 */
export function recordFromObject(input: Record<string, unknown>, receivedAtMs: number, transportTimeUs?: number): LogRecord {
  if (hasNoKeys(input)) return emptyRecord(receivedAtMs, transportTimeUs);
  let has = keyListsOf(input);
  let obj = input;
  if ((has & HAS_SHORT_MESSAGE) !== 0 && isGelf(input)) {
    obj = gelfView(input);
    has = keyListsOf(obj);
  }
  const text = (has & HAS_MESSAGE) === 0 ? undefined : messageText(obj);
  const metricsDocument = text !== undefined && isMetricsDocument(text);
  let message = text === undefined || metricsDocument ? '' : text;
  let host = '';
  if ((has & HAS_HOST) !== 0) host = pick(obj, HOST_KEYS) || nestedText(obj, 'host', 'name') || nestedText(obj, 'host', 'hostname');
  if (host === '' && (has & HAS_KUBERNETES) !== 0) host = nestedText(obj, KUBERNETES_KEY, 'pod_name');
  let service = (has & HAS_SERVICE) === 0 ? '' : pick(obj, SERVICE_KEYS);
  if (service === '' && (has & HAS_KUBERNETES) !== 0) service = nestedText(obj, KUBERNETES_KEY, 'container_name');
  if (service === '' && (has & HAS_FILE) !== 0) service = fileNameOf(obj);
  let pid = (has & HAS_PID) === 0 ? '' : pick(obj, PID_KEYS);

  let sourceUs = (has & HAS_SOURCE_CLOCK) === 0 ? undefined : clockFrom(obj, SOURCE_CLOCK_KEYS);
  if (sourceUs === undefined && transportTimeUs !== undefined && Number.isFinite(transportTimeUs)) sourceUs = transportTimeUs;
  if (sourceUs === undefined && (has & HAS_LATE_CLOCK) !== 0) sourceUs = clockFrom(obj, LATE_CLOCK_KEYS);
  const referenceMs = sourceUs === undefined ? receivedAtMs : sourceUs / 1000;

  const prefix = message.length >= 16 ? parseJournalPrefix(message, referenceMs) : null;
  if (prefix !== null) {
    if (prefix.host !== '') host = prefix.host;
    if (prefix.service !== '') service = prefix.service;
    if (prefix.pid !== '') pid = prefix.pid;
    message = message.slice(prefix.messageStart);
    if (sourceUs === undefined && prefix.timeMs !== undefined) sourceUs = Math.round(prefix.timeMs * 1000);
  }
  let time = ownTimeMs(prefix, message, referenceMs);
  if (time === undefined && (has & HAS_SOURCE_REALTIME) !== 0) {
    for (const key of SOURCE_REALTIME_KEYS) {
      const us = timeValueToUs(firstValue(obj[key]), true);
      if (us !== undefined) {
        time = Math.floor(us / 1000);
        break;
      }
    }
  }
  if (time === undefined) time = sourceUs === undefined ? receivedAtMs : Math.floor(sourceUs / 1000);

  const record: LogRecord = { time, host, service, pid, stream: streamKeyOf(host, service, pid), message };
  if (sourceUs !== undefined) record.sourceUs = sourceUs;
  const position = (has & HAS_POSITION) === 0 ? undefined : positionOf(obj);
  if (position !== undefined) record.position = position;
  // A log line's record is all the engine needs; the object is kept only when it is no log line
  // (a metrics snapshot, parsed or as text, or a record without text, whose keys the log shows):
  // two seconds of records wait in the reorder window, and the object would double what each holds.
  if (text === undefined || metricsDocument) {
    record.fields = input;
    if (text === undefined && !isMetricsSnapshot(obj)) record.withoutText = true;
  }
  return record;
}

function hasNoKeys(input: Record<string, unknown>): boolean {
  for (const key in input) if (Object.hasOwn(input, key)) return false;
  return true;
}

/**
 * What the general path makes of `{}`, without its sixty key lookups: a body of empty objects
 * (a few bytes of msgpack each) is the cheapest way to send a server 250,000 records. Nor does it
 * keep the object: it has no keys for the log to show, and carrying 90,000 of them from a decoding
 * thread (a 90 KB body) took the main thread longer than all the rest of their way.
 */
function emptyRecord(receivedAtMs: number, transportTimeUs: number | undefined): LogRecord {
  const sourceUs = transportTimeUs !== undefined && Number.isFinite(transportTimeUs) ? transportTimeUs : undefined;
  const time = sourceUs === undefined ? receivedAtMs : Math.floor(sourceUs / 1000);
  const record: LogRecord = { time, host: '', service: '', pid: '', stream: streamKeyOf('', '', ''), message: '' };
  if (sourceUs !== undefined) record.sourceUs = sourceUs;
  record.withoutText = true;
  return record;
}

/**
 * A text line (journald `short*` or a bare log line) → LogRecord, or null for lines that carry no
 * log data (empty lines, journalctl's `-- Logs begin at ... --` markers).
 */
export function recordFromText(line: string, receivedAtMs: number): LogRecord | null {
  const text = logText(line);
  return text === null ? null : recordFromPrefixedText(text, parseJournalPrefix(text, receivedAtMs), receivedAtMs);
}

/** The line without a trailing CR, or null when it carries no log data (empty, a journalctl marker). */
export function logText(line: string): string | null {
  const text = line.charCodeAt(line.length - 1) === 13 ? line.slice(0, -1) : line;
  if (text.length === 0) return null;
  if (text.charCodeAt(0) === 45 && isJournalctlMarker(text)) return null;
  return text;
}

/**
 * The record of a line whose journald prefix (or its absence) is already known: analyze reads the
 * prefix of every line to find the line's stream, and builds records only for its own streams.
 */
export function recordFromPrefixedText(text: string, prefix: JournalPrefix | null, receivedAtMs: number): LogRecord {
  return recordFromLineAt(text, 0, text.length, prefix, receivedAtMs);
}

/** recordFromPrefixedText for the line at [start, end) of `text`, its prefix read in place (readJournalPrefix). */
export function recordFromLineAt(text: string, start: number, end: number, prefix: JournalPrefix | null, receivedAtMs: number): LogRecord {
  if (prefix === null) {
    const message = start === 0 && end === text.length ? text : text.slice(start, end);
    const time = headerTimeOf(message, receivedAtMs) ?? receivedAtMs;
    return { time, host: '', service: '', pid: '', stream: streamKeyOf('', '', ''), message };
  }
  return recordOfMessage(text.slice(prefix.messageStart, end), prefix, streamKeyOf(prefix.host, prefix.service, prefix.pid), receivedAtMs);
}

/**
 * The record of a journald line's message, its prefix read already (by analyze's router, in
 * another thread: `prefix` carries the origin's parts and the times, `stream` the origin's key).
 */
export function recordOfMessage(message: string, prefix: Pick<JournalPrefix, 'host' | 'service' | 'pid' | 'timeMs' | 'zoned' | 'bootUs'>, stream: string, receivedAtMs: number): LogRecord {
  // A log header without a year is placed by the prefix's date when there is one (short-full and
  // short-iso print the year; short's was placed by the reading time already).
  const time = ownTimeMs(prefix, message, prefix.timeMs ?? receivedAtMs) ?? receivedAtMs;
  const record: LogRecord = { time, host: prefix.host, service: prefix.service, pid: prefix.pid, stream, message };
  const sourceUs = prefixSourceUs(prefix);
  if (sourceUs !== undefined) record.sourceUs = sourceUs;
  return record;
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
