/**
 * The prefix `journalctl` prints in its `short` family of output modes (output_short() and
 * output_timestamp_*() in systemd's src/shared/logs-show.c; man journalctl, --output):
 *
 *   short              Nov 01 11:59:32 web-1 linkerd[5699]: msg
 *   short-precise      Nov 01 11:59:32.123456 web-1 linkerd[5699]: msg
 *   short-iso          2017-11-01T11:59:32+0000 web-1 linkerd[5699]: msg   (older systemd: +0000)
 *   short-iso-precise  2017-11-01T11:59:32.123456+00:00 web-1 linkerd[5699]: msg
 *   short-full         Wed 2017-11-01 11:59:32 CDT web-1 linkerd[5699]: msg   (the zone as tm_zone names it, or none)
 *   with-unit          Wed 2017-11-01 11:59:32 CDT web-1 linkerd.service[5699]: msg
 *   short-unix         1509555572.962000 web-1 linkerd[5699]: msg
 *   short-monotonic    [ 1234.567890] web-1 linkerd[5699]: msg   (time since boot: no date at all)
 *   short-delta        [ 1234.567890 <    0.000123>] web-1 linkerd[5699]: msg
 *
 * Pasted or redacted logs often lose the host (`Nov 01 11:59:32 linkerd[5699]: msg`), host and
 * identifier (`Nov 03 17:36:55  WARN ...`), or the time and host (`linkerd[2410]: msg`, as in
 * https://github.com/linkerd/linkerd/issues/1690). This runs once per line on the offline analyze
 * path, so it works on char codes and indexOf, without a regex per line, and reads a line where it
 * stands in a larger text (analyze's decoded chunks) without cutting it out first.
 */
import { zoneOffsetMinutes } from './line-layout.js';
import { placeYearless } from './yearless-date.js';
import { CH_CLOSE_BRACKET, CH_COLON, CH_DASH, CH_DOT, CH_OPEN_BRACKET, CH_PLUS, CH_SPACE, CH_T, CH_Z } from '../text/char-codes.js';
import { detached } from '../text/strings.js';

export interface JournalPrefix {
  /** undefined when the date is valid-looking but cannot be placed (e.g. Feb 30). */
  timeMs: number | undefined;
  /**
   * false for the `short` family: journalctl printed local time without a zone (read as UTC), so a
   * time the message's own header gives with its zone is the better one.
   */
  zoned: boolean;
  /**
   * short-monotonic and short-delta: µs since the host booted. It orders a stream's lines and
   * measures their silences, but dates nothing (timeMs is then undefined).
   */
  bootUs: number | undefined;
  host: string;
  service: string;
  pid: string;
  /** Index in the text where the message starts (after `ident[pid]: `, or after the time's separator). */
  messageStart: number;
  /** The remembered origin the line has (null for one read from the line alone): the same object for every line of it. */
  origin: Origin | null;
}

/** An origin seen before (`host ident[pid]: `): one object for every line that has it. */
export interface Origin {
  readonly host: string;
  readonly service: string;
  readonly pid: string;
}

function digit(line: string, at: number): number {
  const code = line.charCodeAt(at) - 48;
  return code >= 0 && code <= 9 ? code : -1;
}

/** Two digits at `at` as a number, or -1. */
function twoDigits(line: string, at: number): number {
  const high = digit(line, at);
  const low = digit(line, at + 1);
  return high < 0 || low < 0 ? -1 : high * 10 + low;
}

/** `HH:MM:SS` at `at` as ms since midnight, or -1. */
function clock(line: string, at: number): number {
  const hour = twoDigits(line, at);
  const minute = twoDigits(line, at + 3);
  const second = twoDigits(line, at + 6);
  if (hour < 0 || minute < 0 || second < 0 || line.charCodeAt(at + 2) !== CH_COLON || line.charCodeAt(at + 5) !== CH_COLON) return -1;
  if (hour > 23 || minute > 59 || second > 60) return -1;
  return ((hour * 60 + minute) * 60 + second) * 1000;
}

/** Optional `.ffffff` at `at`: sets `fractionEnd` and returns the millis. */
function fraction(line: string, at: number): number {
  fractionEnd = at;
  if (line.charCodeAt(at) !== CH_DOT) return 0;
  let index = at + 1;
  let millis = 0;
  let digits = 0;
  for (;;) {
    const value = digit(line, index);
    if (value < 0) break;
    if (digits < 3) millis = millis * 10 + value;
    digits++;
    index++;
  }
  if (digits === 0) return 0;
  for (let pad = digits; pad < 3; pad++) millis *= 10;
  fractionEnd = index;
  return millis;
}

let fractionEnd = 0;

/**
 * `YYYY-MM-DD?HH:MM:SS[.ffffff]` at `at` (the caller checked the separators): false when it is not
 * one; else sets `wallTimeMs` (the wall time as if it were UTC, undefined for a day its month
 * lacks) and `fractionEnd`.
 */
function dateAndClock(line: string, at: number): boolean {
  const year = twoDigits(line, at) * 100 + twoDigits(line, at + 2);
  const month = twoDigits(line, at + 5);
  const day = twoDigits(line, at + 8);
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > 31) return false;
  const dayMs = clock(line, at + 11);
  if (dayMs < 0) return false;
  const millis = fraction(line, at + 19);
  const midnight = Date.UTC(year, month - 1, day);
  wallTimeMs = new Date(midnight).getUTCDate() === day ? midnight + dayMs + millis : undefined;
  return true;
}
let wallTimeMs: number | undefined;

/** The month of a `Jan`..`Dec` name at `at` (0-11), or -1. */
function monthAt(line: string, at: number): number {
  const second = line.charCodeAt(at + 1);
  const third = line.charCodeAt(at + 2);
  switch (line.charCodeAt(at)) {
    case 74 /* J */:
      if (second === 97 /* a */) return third === 110 /* n */ ? 0 : -1;
      return second === 117 /* u */ ? (third === 110 /* n */ ? 5 : third === 108 /* l */ ? 6 : -1) : -1;
    case 70 /* F */:
      return second === 101 /* e */ && third === 98 /* b */ ? 1 : -1;
    case 77 /* M */:
      return second === 97 /* a */ ? (third === 114 /* r */ ? 2 : third === 121 /* y */ ? 4 : -1) : -1;
    case 65 /* A */:
      return second === 112 /* p */ && third === 114 /* r */ ? 3 : second === 117 /* u */ && third === 103 /* g */ ? 7 : -1;
    case 83 /* S */:
      return second === 101 /* e */ && third === 112 /* p */ ? 8 : -1;
    case 79 /* O */:
      return second === 99 /* c */ && third === 116 /* t */ ? 9 : -1;
    case 78 /* N */:
      return second === 111 /* o */ && third === 118 /* v */ ? 10 : -1;
    case 68 /* D */:
      return second === 101 /* e */ && third === 99 /* c */ ? 11 : -1;
    default:
      return -1;
  }
}

// Consecutive lines share their day and reference; placing the year is kept for the last pair
// (keyed on everything it depends on except the time of day, which only shifts it).
let cachedMonth = -1;
let cachedDay = -1;
let cachedReferenceHour = Number.NaN;
let cachedMidnight: number | undefined;

/** `short` has no year: placeYearless takes it from the reference. */
function placeYear(month: number, day: number, dayMs: number, referenceMs: number): number | undefined {
  const referenceHour = Math.floor(referenceMs / 3_600_000);
  if (month !== cachedMonth || day !== cachedDay || referenceHour !== cachedReferenceHour) {
    cachedMonth = month;
    cachedDay = day;
    cachedReferenceHour = referenceHour;
    // The day is placed from its first instant against the reference hour, so that every time of
    // that day lands in the same year (a line may then be up to two days ahead of the reference).
    cachedMidnight = placeYearless(month + 1, day, 0, referenceHour * 3_600_000);
  }
  return cachedMidnight === undefined ? undefined : cachedMidnight + dayMs;
}

/** What a time parser found: the time, whether it is absolute, and where the rest of the line starts. */
let parsedTimeMs: number | undefined;
let parsedZoned = false;
let parsedBootUs: number | undefined;
let parsedRestStart = 0;

/** Any of the modes' times at `start`, by its first character. */
function readTime(line: string, start: number, end: number, referenceMs: number): boolean {
  parsedZoned = false;
  parsedBootUs = undefined;
  const first = line.charCodeAt(start);
  if (first >= 48 && first <= 57) {
    parsedZoned = true;
    return line.charCodeAt(start + 4) === CH_DASH ? isoTime(line, start, end) : unixTime(line, start, end);
  }
  if (first === CH_OPEN_BRACKET) return bootTime(line, start, end);
  return line.charCodeAt(start + 3) === CH_SPACE && line.charCodeAt(start + 8) === CH_DASH ? fullTime(line, start, end) : shortTime(line, start, end, referenceMs);
}

/** The six digits after `dot` (the µs of short-unix and boot times) as a number; -1 when they are not six digits. */
function sixDigitsAfter(line: string, dot: number): number {
  let micros = 0;
  for (let at = dot + 1; at < dot + 7; at++) {
    const value = digit(line, at);
    if (value < 0) return -1;
    micros = micros * 10 + value;
  }
  return micros;
}

/** `1509555572.962000 ` (short-unix: seconds and µs since the epoch). */
function unixTime(line: string, start: number, end: number): boolean {
  let index = start;
  let seconds = 0;
  for (; index < end && index - start < 12; index++) {
    const value = digit(line, index);
    if (value < 0) break;
    seconds = seconds * 10 + value;
  }
  if (index - start < 9 || line.charCodeAt(index) !== CH_DOT) return false;
  const micros = sixDigitsAfter(line, index);
  if (micros < 0) return false;
  index += 7;
  if (line.charCodeAt(index) !== CH_SPACE && index !== end) return false;
  parsedTimeMs = seconds * 1000 + Math.floor(micros / 1000);
  parsedRestStart = index + 1;
  return true;
}

/** `[ 1234.567890] ` or short-delta's `[ 1234.567890 <    0.000123>] `: µs since boot, no date. */
function bootTime(line: string, start: number, end: number): boolean {
  let index = start + 1;
  while (line.charCodeAt(index) === CH_SPACE) index++;
  const digitsStart = index;
  let seconds = 0;
  for (; index < end; index++) {
    const value = digit(line, index);
    if (value < 0) break;
    seconds = seconds * 10 + value;
  }
  if (index === digitsStart || line.charCodeAt(index) !== CH_DOT) return false;
  const micros = sixDigitsAfter(line, index);
  if (micros < 0) return false;
  index += 7;
  if (line.charCodeAt(index) !== CH_CLOSE_BRACKET) {
    // short-delta: ` <` the time since the previous line `>` (or `*>`), or 16 spaces for the first line.
    const close = line.indexOf(']', index);
    if (line.charCodeAt(index) !== CH_SPACE || close < 0 || close > end || close - index > 18) return false;
    index = close;
  }
  index++;
  if (line.charCodeAt(index) !== CH_SPACE && index !== end) return false;
  parsedTimeMs = undefined;
  parsedBootUs = seconds * 1_000_000 + micros;
  parsedRestStart = index + 1;
  return true;
}

/**
 * `Wed 2017-11-01 11:59:32[.ffffff] CDT ` (short-full, with-unit): the zone as the C library names it
 * (an abbreviation, or `+03` where the zone has none), or no zone when it did not fit. A known zone
 * makes the time absolute; an unknown one is read as UTC, as `short` is.
 */
function fullTime(line: string, start: number, end: number): boolean {
  const dayName = line.charCodeAt(start);
  if (!(dayName >= 65 && dayName <= 90) || !isLowerLetter(line.charCodeAt(start + 1)) || !isLowerLetter(line.charCodeAt(start + 2))) return false;
  const date = start + 4;
  if (line.charCodeAt(date + 7) !== CH_DASH || line.charCodeAt(date + 10) !== CH_SPACE || !dateAndClock(line, date)) return false;
  let index = fractionEnd;
  if (line.charCodeAt(index) !== CH_SPACE) return index === end && finishFullTime(undefined, index);
  const zoneStart = index + 1;
  const zoneEnd = tokenEnd(line, zoneStart, end);
  let offset: number | undefined;
  if (isZoneName(line, zoneStart, zoneEnd)) {
    offset = zoneOffsetMinutes(line.slice(zoneStart, zoneEnd));
    index = zoneEnd;
  }
  return finishFullTime(offset, index);
}

/** Sets the parsed time from the wall time dateAndClock() read and the zone's offset (none: UTC). */
function finishFullTime(offsetMinutes: number | undefined, after: number): boolean {
  parsedTimeMs = wallTimeMs === undefined ? undefined : wallTimeMs - (offsetMinutes ?? 0) * 60_000;
  parsedZoned = offsetMinutes !== undefined;
  parsedRestStart = after + 1;
  return true;
}

function isLowerLetter(code: number): boolean {
  return code >= 97 && code <= 122;
}

/** A zone as tm_zone names it: 2 to 5 capital letters, or `+03`, `-0330`, `+05:30`. */
function isZoneName(line: string, start: number, end: number): boolean {
  const length = end - start;
  const first = line.charCodeAt(start);
  if (first === CH_PLUS || first === CH_DASH) {
    if (length !== 3 && length !== 5 && length !== 6) return false;
    for (let index = start + 1; index < end; index++) if (digit(line, index) < 0 && !(length === 6 && index === start + 3 && line.charCodeAt(index) === CH_COLON)) return false;
    return true;
  }
  if (length < 2 || length > 5) return false;
  for (let index = start; index < end; index++) {
    const code = line.charCodeAt(index);
    if (code < 65 || code > 90) return false;
  }
  return true;
}

/** `Nov 01 11:59:32[.ffffff] ` at `start`: sets parsedTimeMs/parsedRestStart. Read as UTC. */
function shortTime(line: string, start: number, end: number, referenceMs: number): boolean {
  if (line.charCodeAt(start + 3) !== CH_SPACE || line.charCodeAt(start + 6) !== CH_SPACE) return false;
  const month = monthAt(line, start);
  if (month < 0) return false;
  // journalctl zero-pads the day (`Nov 01`); syslog-style files pad with a space (`Nov  1`).
  const tens = line.charCodeAt(start + 4) === CH_SPACE ? 0 : digit(line, start + 4);
  const ones = digit(line, start + 5);
  if (tens < 0 || ones < 0) return false;
  const day = tens * 10 + ones;
  const dayMs = clock(line, start + 7);
  if (dayMs < 0 || day < 1 || day > 31) return false;
  const millis = fraction(line, start + 15);
  const after = fractionEnd;
  if (line.charCodeAt(after) !== CH_SPACE && after !== end) return false;
  parsedTimeMs = placeYear(month, day, dayMs + millis, referenceMs);
  parsedRestStart = after + 1;
  return true;
}

/** `2017-11-01T11:59:32[.ffffff](+0000|+00:00|Z) ` at `start`: sets parsedTimeMs/parsedRestStart. */
function isoTime(line: string, start: number, end: number): boolean {
  if (line.charCodeAt(start + 4) !== CH_DASH || line.charCodeAt(start + 7) !== CH_DASH || line.charCodeAt(start + 10) !== CH_T) return false;
  if (!dateAndClock(line, start)) return false;
  let index = fractionEnd;
  let offsetMinutes = 0;
  const sign = line.charCodeAt(index);
  if (sign === CH_PLUS || sign === CH_DASH) {
    const hours = twoDigits(line, index + 1);
    const colon = line.charCodeAt(index + 3) === CH_COLON ? 1 : 0;
    const minutes = twoDigits(line, index + 3 + colon);
    if (hours < 0 || minutes < 0) return false;
    offsetMinutes = (hours * 60 + minutes) * (sign === CH_DASH ? -1 : 1);
    index += 5 + colon;
  } else if (sign === CH_Z) {
    index += 1;
  }
  if (line.charCodeAt(index) !== CH_SPACE && index !== end) return false;
  parsedTimeMs = wallTimeMs === undefined ? undefined : wallTimeMs - offsetMinutes * 60_000;
  parsedRestStart = index + 1;
  return true;
}

/** `ident[pid]:` spanning [start, end) (end = index of the space after it, or line end): sets identName/identPid. */
function identWithPid(line: string, start: number, end: number): boolean {
  if (end - start < 5 || line.charCodeAt(end - 1) !== CH_COLON || line.charCodeAt(end - 2) !== CH_CLOSE_BRACKET) return false;
  const open = line.lastIndexOf('[', end - 3);
  if (open <= start) return false;
  for (let index = open + 1; index < end - 2; index++) {
    if (digit(line, index) < 0) return false;
  }
  if (open + 1 === end - 2) return false;
  identName = line.slice(start, open);
  identPid = line.slice(open + 1, end - 2);
  return true;
}

let identName = '';
let identPid = '';

function tokenEnd(line: string, start: number, end: number): number {
  const space = line.indexOf(' ', start);
  return space < 0 || space > end ? end : space;
}

function afterColon(line: string, tokenEndIndex: number): number {
  return line.charCodeAt(tokenEndIndex) === CH_SPACE ? tokenEndIndex + 1 : tokenEndIndex;
}

/**
 * Parses a journald `short*` prefix, or returns null when the line has none. `referenceMs` supplies
 * the year for `short` (yearless-date.ts); `short` times are read as UTC because journalctl prints
 * local time without a zone.
 */
export function parseJournalPrefix(line: string, referenceMs: number): JournalPrefix | null {
  const prefix: JournalPrefix = { timeMs: undefined, zoned: false, bootUs: undefined, host: '', service: '', pid: '', messageStart: 0, origin: null };
  return readJournalPrefix(line, 0, line.length, referenceMs, prefix) ? prefix : null;
}

/**
 * parseJournalPrefix for the line at [start, end) of `text`, into `prefix` (reused by the caller:
 * nothing is allocated for a line whose origin was seen before). False when the line has none.
 */
export function readJournalPrefix(text: string, start: number, end: number, referenceMs: number, prefix: JournalPrefix): boolean {
  if (!readPrefix(text, start, end, referenceMs, prefix)) return false;
  // An ISO time alone is the application's own header (Spring Boot 3's `2024-05-25T13:52:55.296+02:00  INFO ...`);
  // journalctl's short-iso always names the identifier after it.
  return !(prefix.zoned && prefix.service === '');
}

function readPrefix(line: string, start: number, end: number, referenceMs: number, prefix: JournalPrefix): boolean {
  if (end - start < 16) return false;
  if (!readTime(line, start, end, referenceMs)) return identOnly(line, start, end, prefix);
  const restStart = parsedRestStart;
  prefix.timeMs = parsedTimeMs;
  prefix.zoned = parsedZoned;
  prefix.bootUs = parsedBootUs;
  prefix.origin = null;
  prefix.host = '';
  prefix.service = '';
  prefix.pid = '';
  prefix.messageStart = Math.min(restStart, end);
  if (restStart >= end || line.charCodeAt(restStart) === CH_SPACE) return true;
  if (knownOrigin(line, restStart, prefix)) return true;
  parseOrigin(line, restStart, end, prefix);
  if (prefix.service !== '') rememberOrigin(line, restStart, prefix);
  return true;
}

interface KnownOrigin extends Origin {
  /** `host ident[pid]: ` exactly as it stood in the line, up to the message. */
  text: string;
  /** Its fourth character from the end (the pid's last digit): compared before the whole text. */
  probe: number;
}

// A journal's lines come from a handful of processes: their origin text is compared in place and
// its parts reused, instead of slicing host, identifier and pid out of every line.
const KNOWN_ORIGINS = 32;
const knownOrigins: KnownOrigin[] = [];
let nextOrigin = 0;

function knownOrigin(line: string, restStart: number, prefix: JournalPrefix): boolean {
  for (let index = 0; index < knownOrigins.length; index++) {
    const known = knownOrigins[index] as KnownOrigin;
    const length = known.text.length;
    if (line.charCodeAt(restStart + length - 4) !== known.probe || !line.startsWith(known.text, restStart)) continue;
    prefix.host = known.host;
    prefix.service = known.service;
    prefix.pid = known.pid;
    prefix.messageStart = restStart + length;
    prefix.origin = known;
    return true;
  }
  return false;
}

function rememberOrigin(line: string, restStart: number, prefix: JournalPrefix): void {
  // Only an origin ending in `: ` ends where its last token does; one ending at the line's end
  // could be the start of a longer token in another line.
  if (line.charCodeAt(prefix.messageStart - 1) !== CH_SPACE || prefix.messageStart - restStart < 4) return;
  // Copies: the origin outlives the text it was read from (and so does every stream it names).
  const known: KnownOrigin = {
    text: detached(line.slice(restStart, prefix.messageStart)),
    probe: line.charCodeAt(prefix.messageStart - 4),
    host: detached(prefix.host),
    service: detached(prefix.service),
    pid: detached(prefix.pid),
  };
  prefix.host = known.host;
  prefix.service = known.service;
  prefix.pid = known.pid;
  prefix.origin = known;
  knownOrigins[nextOrigin] = known;
  nextOrigin = (nextOrigin + 1) % KNOWN_ORIGINS;
}

function parseOrigin(line: string, restStart: number, end: number, prefix: JournalPrefix): void {
  const firstEnd = tokenEnd(line, restStart, end);
  if (identWithPid(line, restStart, firstEnd)) {
    // host missing: `Nov 01 11:59:32 linkerd[5699]: msg`
    prefix.service = identName;
    prefix.pid = identPid;
    prefix.messageStart = afterColon(line, firstEnd);
    return;
  }
  if (firstEnd >= end || line.charCodeAt(firstEnd - 1) === CH_COLON) return;
  const secondStart = firstEnd + 1;
  const secondEnd = tokenEnd(line, secondStart, end);
  if (identWithPid(line, secondStart, secondEnd)) {
    prefix.host = line.slice(restStart, firstEnd);
    prefix.service = identName;
    prefix.pid = identPid;
    prefix.messageStart = afterColon(line, secondEnd);
    return;
  }
  // `host ident: msg` (no _PID). `Caused by: ...` has the same shape but is a trace line.
  if (secondEnd - secondStart >= 2 && line.charCodeAt(secondEnd - 1) === CH_COLON && line.charCodeAt(secondStart) !== CH_OPEN_BRACKET) {
    const host = line.slice(restStart, firstEnd);
    const service = line.slice(secondStart, secondEnd - 1);
    if (!(host === 'Caused' && service === 'by') && isHostLike(host)) {
      prefix.host = host;
      prefix.service = service;
      prefix.messageStart = afterColon(line, secondEnd);
    }
  }
}

/** `ident[pid]: msg` with no time before it: an identifier of name characters, a numeric pid. */
function identOnly(line: string, start: number, end: number, prefix: JournalPrefix): boolean {
  const identEnd = tokenEnd(line, start, end);
  if (!identWithPid(line, start, identEnd) || !isHostLike(identName)) return false;
  prefix.timeMs = undefined;
  prefix.zoned = false;
  prefix.bootUs = undefined;
  prefix.origin = null;
  prefix.host = '';
  prefix.service = identName;
  prefix.pid = identPid;
  prefix.messageStart = afterColon(line, identEnd);
  return true;
}

/** Host names are letters, digits, `-`, `.` and `_`; anything else is message text. */
function isHostLike(token: string): boolean {
  for (let index = 0; index < token.length; index++) {
    const code = token.charCodeAt(index);
    const ok =
      (code >= 97 && code <= 122) || (code >= 65 && code <= 90) || (code >= 48 && code <= 57) || code === CH_DASH || code === CH_DOT || code === 95;
    if (!ok) return false;
  }
  return token.length > 0;
}

/** `-- Logs begin at ... --`, `-- No entries --`, `-- Reboot --`, `-- Boot <id> --`: journalctl's own lines. */
export function isJournalctlMarker(line: string): boolean {
  return isJournalctlMarkerAt(line, 0, line.length);
}

/** isJournalctlMarker for the line at [start, end) of `text`. */
export function isJournalctlMarkerAt(text: string, start: number, end: number): boolean {
  return end - start >= 6 && text.startsWith('-- ', start) && text.endsWith('--', end);
}
