/**
 * Recognises the header of a log record in the layouts linkerd 1.x processes write: linkerd's own
 * JUL layout (linkerd admin/.../TimeZoneLogFormat.scala), log4j through linkerd (its
 * log4j.properties: `%p %d{MMdd HH:mm:ss.SSS z} %t: %m%n`), ISO/logback timestamps, and the lines
 * the JVM and twitter-util print for an uncaught throwable (`Exception in thread "x" ...`,
 * `Exception: java.lang.OutOfMemoryError thrown from the UncaughtExceptionHandler in thread "x"`,
 * `VM error: Java heap space`; https://github.com/linkerd/linkerd/issues/1486). A header starts a
 * record; what may follow it is the grouper's business (engine/grouper.ts).
 *
 * isHeaderLine() runs once per line in the engine, so it rejects with a few charCode tests before
 * any regex is tried.
 */
import { CH_COLON, CH_DASH, CH_SPACE, isDigit } from '../text/char-codes.js';
import { placeYearless } from './yearless-date.js';

export type HeaderLayout = 'linkerd' | 'log4j' | 'iso' | 'uncaught';

export interface LineHeader {
  layout: HeaderLayout;
  /** Upper-case level word: TRACE DEBUG INFO WARN ERROR FATAL, UNKNOWN for linkerd's `U`, '' if the layout has none. */
  level: string;
  /** The timestamp as logged (`1101 14:10:26.714 UTC`, `2024-05-01T12:00:00Z`), '' if none. */
  time: string;
  thread: string;
  /** The message after the header. */
  text: string;
}

// linkerd TimeZoneLogFormat: `<L> MMdd HH:mm:ss.SSS z THREAD<n>[ TraceId:<hex>][ <source>]: <message>`
const LINKERD_HEADER = /^([DIWEU]) (\d{4} \d\d:\d\d:\d\d\.\d{3} \S+) THREAD(\d+)(?: TraceId:[0-9a-f]+)?(?: \S+)?: ([^]*)$/;
// log4j.properties in linkerd: `%p %d{MMdd HH:mm:ss.SSS z} %t: %m%n`
const LOG4J_HEADER = /^(TRACE|DEBUG|INFO|WARN|ERROR|FATAL) (\d{4} \d\d:\d\d:\d\d\.\d{3} \S+) (.+?): ([^]*)$/;
// logback/ISO: date, time with optional fraction and zone, then free text (often `[thread] LEVEL logger - msg`).
const ISO_HEADER = /^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?)(?:\s+([^]*))?$/;
const ISO_LEVEL_AND_THREAD = /^(?:\[([^\]]*)\]\s+)?(TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL|SEVERE)\b\s*(?:\[([^\]]*)\]\s*)?([^]*)$/;
const UNCAUGHT_PREFIX = 'Exception in thread "';
const HANDLER_FAILED_PREFIX = 'Exception: ';
const VM_ERROR_PREFIX = 'VM error: ';
// Prefix-only forms of the same layouts for isHeaderLine: the `(.*)$` tail would only rescan the message.
const LINKERD_HEADER_PREFIX = /^[DIWEU] \d{4} \d\d:\d\d:\d\d\.\d{3} \S+ THREAD\d+(?: TraceId:[0-9a-f]+)?(?: \S+)?: /;
const LOG4J_HEADER_PREFIX = /^(?:TRACE|DEBUG|INFO|WARN|ERROR|FATAL) \d{4} \d\d:\d\d:\d\d\.\d{3} \S+ .+?: /;
const UNCAUGHT_HEADER = /^Exception in thread "([^"]*)" ([^]*)$/;
// java.lang.Thread#dispatchUncaughtException when the handler itself threw (JDK `thread.cpp`).
const HANDLER_FAILED_HEADER = /^Exception: (\S+) thrown from the UncaughtExceptionHandler in thread "([^"]*)"$/;
// twitter-util's fatal-error handler (`VM error: <message>`), then the throwable.
const VM_ERROR_HEADER = /^VM error: ([^]*)$/;

const JUL_LEVELS: Readonly<Record<string, string>> = { D: 'DEBUG', I: 'INFO', W: 'WARN', E: 'ERROR', U: 'UNKNOWN' };

/** journald `short` with an empty host leaves one space before the message (seed: `17:36:55  WARN ...`). */
function leadingSpaces(line: string): number {
  let index = 0;
  while (index < line.length && line.charCodeAt(index) === CH_SPACE) index++;
  return index;
}

/** `MMdd HH:` at `at`: four digits, a space, two digits, a colon. */
function hasMonthDayHour(line: string, at: number): boolean {
  return (
    isDigit(line.charCodeAt(at)) &&
    isDigit(line.charCodeAt(at + 1)) &&
    isDigit(line.charCodeAt(at + 2)) &&
    isDigit(line.charCodeAt(at + 3)) &&
    line.charCodeAt(at + 4) === CH_SPACE &&
    isDigit(line.charCodeAt(at + 5)) &&
    isDigit(line.charCodeAt(at + 6)) &&
    line.charCodeAt(at + 7) === CH_COLON
  );
}

type Candidate = HeaderLayout | null;

/** Cheap shape test: which layout the line could be. Never a false negative for the confirmed regexes. */
function candidateLayout(line: string, start: number): Candidate {
  const first = line.charCodeAt(start);
  if (Number.isNaN(first)) return null;
  if (isDigit(first)) {
    if (
      line.charCodeAt(start + 4) === CH_DASH &&
      line.charCodeAt(start + 7) === CH_DASH &&
      isDigit(line.charCodeAt(start + 11)) &&
      line.charCodeAt(start + 13) === CH_COLON
    ) {
      return 'iso';
    }
    return null;
  }
  const second = line.charCodeAt(start + 1);
  if (second === CH_SPACE) {
    // D I W E U
    if (first === 68 || first === 73 || first === 87 || first === 69 || first === 85) {
      return hasMonthDayHour(line, start + 2) ? 'linkerd' : null;
    }
    return null;
  }
  if (first === 69 && second === 120) {
    return line.startsWith(UNCAUGHT_PREFIX, start) || line.startsWith(HANDLER_FAILED_PREFIX, start) ? 'uncaught' : null;
  }
  if (first === 86 && second === 77) return line.startsWith(VM_ERROR_PREFIX, start) ? 'uncaught' : null;
  switch (first) {
    case 84: // TRACE
    case 68: // DEBUG
    case 69: // ERROR
    case 70: // FATAL
      return line.charCodeAt(start + 5) === CH_SPACE && hasMonthDayHour(line, start + 6) ? 'log4j' : null;
    case 73: // INFO
      return line.charCodeAt(start + 4) === CH_SPACE && hasMonthDayHour(line, start + 5) ? 'log4j' : null;
    case 87: // WARN
      return line.charCodeAt(start + 4) === CH_SPACE && hasMonthDayHour(line, start + 5) ? 'log4j' : null;
  }
  return null;
}

function confirm(layout: HeaderLayout, text: string): LineHeader | null {
  switch (layout) {
    case 'linkerd': {
      const match = LINKERD_HEADER.exec(text);
      if (!match) return null;
      return {
        layout,
        level: JUL_LEVELS[match[1] as string] ?? '',
        time: match[2] as string,
        thread: `THREAD${match[3] as string}`,
        text: match[4] as string,
      };
    }
    case 'log4j': {
      const match = LOG4J_HEADER.exec(text);
      if (!match) return null;
      return { layout, level: match[1] as string, time: match[2] as string, thread: match[3] as string, text: match[4] as string };
    }
    case 'iso': {
      const match = ISO_HEADER.exec(text);
      if (!match) return null;
      const rest = match[2] ?? '';
      const detail = ISO_LEVEL_AND_THREAD.exec(rest);
      if (!detail) return { layout, level: '', time: match[1] as string, thread: '', text: rest };
      const word = detail[2] as string;
      const level = word === 'WARNING' ? 'WARN' : word === 'SEVERE' ? 'ERROR' : word;
      return { layout, level, time: match[1] as string, thread: detail[1] ?? detail[3] ?? '', text: detail[4] as string };
    }
    case 'uncaught': {
      const match = UNCAUGHT_HEADER.exec(text);
      if (match) return { layout, level: 'ERROR', time: '', thread: match[1] as string, text: match[2] as string };
      const handler = HANDLER_FAILED_HEADER.exec(text);
      if (handler) return { layout, level: 'ERROR', time: '', thread: handler[2] as string, text: handler[1] as string };
      const vmError = VM_ERROR_HEADER.exec(text);
      if (vmError) return { layout, level: 'ERROR', time: '', thread: '', text: vmError[1] as string };
      return null;
    }
  }
}

/** True when the line starts a new log record. Hot path: most lines are rejected by char tests alone. */
export function isHeaderLine(line: string): boolean {
  const start = line.charCodeAt(0) === CH_SPACE ? leadingSpaces(line) : 0;
  const layout = candidateLayout(line, start);
  if (layout === null) return false;
  const text = start === 0 ? line : line.slice(start);
  switch (layout) {
    case 'linkerd':
      return LINKERD_HEADER_PREFIX.test(text);
    case 'log4j':
      return LOG4J_HEADER_PREFIX.test(text);
    case 'iso':
      return ISO_HEADER.test(text);
    case 'uncaught':
      return UNCAUGHT_HEADER.test(text) || HANDLER_FAILED_HEADER.test(text) || VM_ERROR_HEADER.test(text);
  }
}

/** The parsed header of a line, or null when the line has none of the known layouts. */
export function parseLineHeader(line: string): LineHeader | null {
  const start = line.charCodeAt(0) === CH_SPACE ? leadingSpaces(line) : 0;
  const layout = candidateLayout(line, start);
  if (layout === null) return null;
  return confirm(layout, start === 0 ? line : line.slice(start));
}

const ZONE_OFFSET_MINUTES: Readonly<Record<string, number>> = {
  UTC: 0,
  GMT: 0,
  Z: 0,
  EDT: -4 * 60,
  EST: -5 * 60,
  CDT: -5 * 60,
  CST: -6 * 60,
  MDT: -6 * 60,
  MST: -7 * 60,
  PDT: -7 * 60,
  PST: -8 * 60,
};

// `+0530`, `+05:30`, and `+03` (the C library's name of a zone without an abbreviation, journalctl short-full).
const NUMERIC_OFFSET = /^([+-])(\d\d)(?::?(\d\d))?$/;

/** Minutes east of UTC of a zone as logs and journalctl name it (an abbreviation of the table, or ±hh[[:]mm]); undefined when unknown. */
export function zoneOffsetMinutes(zone: string): number | undefined {
  const named = ZONE_OFFSET_MINUTES[zone] ?? ZONE_OFFSET_MINUTES[zone.toUpperCase()];
  if (named !== undefined) return named;
  const numeric = NUMERIC_OFFSET.exec(zone);
  if (!numeric) return undefined;
  const minutes = Number(numeric[2]) * 60 + Number(numeric[3] ?? 0);
  return numeric[1] === '-' ? -minutes : minutes;
}

const ISO_PARTS = /^(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(Z|[+-]\d\d:?\d\d)?$/;
/** The digit at `at`, or -1000 (so that any sum using it is negative, i.e. invalid). */
function digitAt(text: string, at: number): number {
  const code = text.charCodeAt(at);
  return isDigit(code) ? code - 48 : -1000;
}

function twoDigitsAt(text: string, at: number): number {
  return digitAt(text, at) * 10 + digitAt(text, at + 1);
}

function validParts(month: number, day: number, hour: number, minute: number, second: number): boolean {
  return month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour <= 23 && minute <= 59 && second <= 60;
}

/**
 * The header's time in ms since the epoch. linkerd's layouts carry no year: placeYearless takes it
 * from `referenceMs`. ISO times without a zone are read as UTC. Undefined when the header has no
 * time or an unknown zone.
 */
export function headerTimeToEpochMs(header: LineHeader, referenceMs: number): number | undefined {
  if (header.time === '') return undefined;
  if (header.layout === 'iso') {
    const parts = ISO_PARTS.exec(header.time);
    if (!parts) return undefined;
    const [year, month, day, hour, minute, second] = parts.slice(1, 7).map(Number) as [number, number, number, number, number, number];
    if (!validParts(month, day, hour, minute, second)) return undefined;
    const millis = parts[7] === undefined ? 0 : Number(parts[7].slice(0, 3).padEnd(3, '0'));
    const offset = parts[8] === undefined ? 0 : zoneOffsetMinutes(parts[8]);
    if (offset === undefined) return undefined;
    return Date.UTC(year, month - 1, day, hour, minute, second, millis) - offset * 60_000;
  }
  return linkerdTimeAt(header.time, 0, referenceMs);
}

let lastZone = '';
let lastZoneOffset: number | undefined;

/**
 * `MMdd HH:mm:ss.SSS ZONE` at `at` in `text`, read at fixed positions (this runs for every header
 * line a text body or file holds), the year placed by the reference.
 */
function linkerdTimeAt(text: string, at: number, referenceMs: number): number | undefined {
  if (text.length < at + 19 || text.charCodeAt(at + 4) !== CH_SPACE || text.charCodeAt(at + 17) !== CH_SPACE) return undefined;
  const month = twoDigitsAt(text, at);
  const day = twoDigitsAt(text, at + 2);
  const hour = twoDigitsAt(text, at + 5);
  const minute = twoDigitsAt(text, at + 8);
  const second = twoDigitsAt(text, at + 11);
  const millis = twoDigitsAt(text, at + 14) * 10 + digitAt(text, at + 16);
  if (text.charCodeAt(at + 7) !== CH_COLON || text.charCodeAt(at + 10) !== CH_COLON || text.charCodeAt(at + 13) !== 46 || millis < 0) return undefined;
  if (!validParts(month, day, hour, minute, second)) return undefined;
  const zoneStart = at + 18;
  let zoneEnd = text.indexOf(' ', zoneStart);
  if (zoneEnd < 0) zoneEnd = text.length;
  // Lines of one process share their zone: compare in place before slicing it out.
  let offset: number | undefined;
  if (zoneEnd - zoneStart === lastZone.length && text.startsWith(lastZone, zoneStart)) {
    offset = lastZoneOffset;
  } else {
    lastZone = text.slice(zoneStart, zoneEnd);
    offset = lastZoneOffset = zoneOffsetMinutes(lastZone);
  }
  if (offset === undefined) return undefined;
  const timeOfDayMs = ((hour * 60 + minute) * 60 + second) * 1000 + millis - offset * 60_000;
  return placeYearless(month, day, timeOfDayMs, referenceMs);
}

// The prefix forms, sticky: tested where a line starts inside a larger text. Neither can run past
// the line's end (`\S` and `.` never match a line break).
const LINKERD_HEADER_AT = new RegExp(LINKERD_HEADER_PREFIX.source.slice(1), 'y');
const LOG4J_HEADER_AT = new RegExp(LOG4J_HEADER_PREFIX.source.slice(1), 'y');

/** The time readHeaderAt() found (undefined when the header has none, or the line is none). */
export let headerTimeRead: number | undefined;

/**
 * isHeaderLine() and headerTimeOf() at once, for the line at [start, end) of `text`, read in place
 * (analyze's router reads every line this way, and the engine is then told: LogRecord.header).
 * Returns whether the line is a header; its time is left in headerTimeRead.
 */
export function readHeaderAt(text: string, start: number, end: number, referenceMs: number): boolean {
  headerTimeRead = undefined;
  let from = start;
  while (from < end && text.charCodeAt(from) === CH_SPACE) from++;
  if (from >= end) return false;
  const layout = candidateLayout(text, from);
  if (layout === null) return false;
  if (layout === 'linkerd' || layout === 'log4j') {
    const pattern = layout === 'linkerd' ? LINKERD_HEADER_AT : LOG4J_HEADER_AT;
    pattern.lastIndex = from;
    if (!pattern.test(text)) return false;
    headerTimeRead = linkerdTimeAt(text, layout === 'linkerd' ? from + 2 : text.indexOf(' ', from) + 1, referenceMs);
    return true;
  }
  const header = confirm(layout, text.slice(from, end));
  if (header === null) return false;
  headerTimeRead = headerTimeToEpochMs(header, referenceMs);
  return true;
}

/**
 * The time of a header line, or undefined when it has none or it cannot be read: what
 * headerTimeToEpochMs(parseLineHeader(line)) gives, without building the parsed header for
 * linkerd's two layouts.
 */
export function headerTimeOf(line: string, referenceMs: number): number | undefined {
  const start = line.charCodeAt(0) === CH_SPACE ? leadingSpaces(line) : 0;
  const layout = candidateLayout(line, start);
  if (layout === null) return undefined;
  const text = start === 0 ? line : line.slice(start);
  if (layout === 'linkerd') return LINKERD_HEADER_PREFIX.test(text) ? linkerdTimeAt(text, 2, referenceMs) : undefined;
  if (layout === 'log4j') return LOG4J_HEADER_PREFIX.test(text) ? linkerdTimeAt(text, text.indexOf(' ') + 1, referenceMs) : undefined;
  const header = confirm(layout, text);
  return header === null ? undefined : headerTimeToEpochMs(header, referenceMs);
}
