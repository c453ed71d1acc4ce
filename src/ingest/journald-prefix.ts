/**
 * The prefix `journalctl` prints in its `short` family of output modes:
 *
 *   short              Nov 01 11:59:32 web-1 linkerd[5699]: msg
 *   short-precise      Nov 01 11:59:32.123456 web-1 linkerd[5699]: msg
 *   short-iso          2017-11-01T11:59:32+0000 web-1 linkerd[5699]: msg
 *   short-iso-precise  2017-11-01T11:59:32.123456+00:00 web-1 linkerd[5699]: msg
 *
 * Pasted or redacted logs often lose the host (`Nov 01 11:59:32 linkerd[5699]: msg`), host and
 * identifier (`Nov 03 17:36:55  WARN ...`), or the time and host (`linkerd[2410]: msg`, as in
 * https://github.com/linkerd/linkerd/issues/1690). This runs once per line on the offline analyze
 * path, so it works on char codes and indexOf, without a regex per line.
 */
import { placeYearless } from './yearless-date.js';
import { CH_CLOSE_BRACKET, CH_COLON, CH_DASH, CH_DOT, CH_OPEN_BRACKET, CH_PLUS, CH_SPACE, CH_T, CH_Z } from '../text/char-codes.js';

export interface JournalPrefix {
  /** undefined when the date is valid-looking but cannot be placed (e.g. Feb 30). */
  timeMs: number | undefined;
  /**
   * false for the `short` family: journalctl printed local time without a zone (read as UTC), so a
   * time the message's own header gives with its zone is the better one.
   */
  zoned: boolean;
  host: string;
  service: string;
  pid: string;
  /** Index in the line where the message starts (after `ident[pid]: `, or after the time's separator). */
  messageStart: number;
}

const MONTHS: Readonly<Record<string, number>> = {
  Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11,
};

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

/** Optional `.ffffff` at `at`: returns [millis, index after it]. */
function fraction(line: string, at: number): [number, number] {
  if (line.charCodeAt(at) !== CH_DOT) return [0, at];
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
  if (digits === 0) return [0, at];
  for (let pad = digits; pad < 3; pad++) millis *= 10;
  return [millis, index];
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

/** `Nov 01 11:59:32[.ffffff] `: [timeMs, index after the separating space], or null. Read as UTC. */
function shortTime(line: string, referenceMs: number): [number | undefined, number] | null {
  if (line.charCodeAt(3) !== CH_SPACE || line.charCodeAt(6) !== CH_SPACE) return null;
  const month = MONTHS[line.slice(0, 3)];
  if (month === undefined) return null;
  // journalctl zero-pads the day (`Nov 01`); syslog-style files pad with a space (`Nov  1`).
  const tens = line.charCodeAt(4) === CH_SPACE ? 0 : digit(line, 4);
  const ones = digit(line, 5);
  if (tens < 0 || ones < 0) return null;
  const day = tens * 10 + ones;
  const dayMs = clock(line, 7);
  if (dayMs < 0 || day < 1 || day > 31) return null;
  const [millis, end] = fraction(line, 15);
  if (line.charCodeAt(end) !== CH_SPACE && end !== line.length) return null;
  return [placeYear(month, day, dayMs + millis, referenceMs), end + 1];
}

/** `2017-11-01T11:59:32[.ffffff](+0000|+00:00|Z) `: [timeMs, index after the space], or null. */
function isoTime(line: string): [number | undefined, number] | null {
  if (line.charCodeAt(4) !== CH_DASH || line.charCodeAt(7) !== CH_DASH || line.charCodeAt(10) !== CH_T) return null;
  const year = twoDigits(line, 0) * 100 + twoDigits(line, 2);
  const month = twoDigits(line, 5);
  const day = twoDigits(line, 8);
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > 31) return null;
  const dayMs = clock(line, 11);
  if (dayMs < 0) return null;
  const [millis, fractionEnd] = fraction(line, 19);
  let index = fractionEnd;
  let offsetMinutes = 0;
  const sign = line.charCodeAt(index);
  if (sign === CH_PLUS || sign === CH_DASH) {
    const hours = twoDigits(line, index + 1);
    const colon = line.charCodeAt(index + 3) === CH_COLON ? 1 : 0;
    const minutes = twoDigits(line, index + 3 + colon);
    if (hours < 0 || minutes < 0) return null;
    offsetMinutes = (hours * 60 + minutes) * (sign === CH_DASH ? -1 : 1);
    index += 5 + colon;
  } else if (sign === CH_Z) {
    index += 1;
  }
  if (line.charCodeAt(index) !== CH_SPACE && index !== line.length) return null;
  const midnight = Date.UTC(year, month - 1, day);
  const placed = new Date(midnight).getUTCDate() === day ? midnight + dayMs + millis - offsetMinutes * 60_000 : undefined;
  return [placed, index + 1];
}

/** `ident[pid]:` spanning [start, end) (end = index of the space after it, or line end): [service, pid] or null. */
function identWithPid(line: string, start: number, end: number): [string, string] | null {
  if (end - start < 5 || line.charCodeAt(end - 1) !== CH_COLON || line.charCodeAt(end - 2) !== CH_CLOSE_BRACKET) return null;
  const open = line.lastIndexOf('[', end - 3);
  if (open <= start) return null;
  for (let index = open + 1; index < end - 2; index++) {
    if (digit(line, index) < 0) return null;
  }
  if (open + 1 === end - 2) return null;
  return [line.slice(start, open), line.slice(open + 1, end - 2)];
}

function tokenEnd(line: string, start: number): number {
  const space = line.indexOf(' ', start);
  return space < 0 ? line.length : space;
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
  const prefix = parsePrefix(line, referenceMs);
  // An ISO time alone is the application's own header (Spring Boot 3's `2024-05-25T13:52:55.296+02:00  INFO ...`);
  // journalctl's short-iso always names the identifier after it.
  return prefix !== null && prefix.zoned && prefix.service === '' ? null : prefix;
}

function parsePrefix(line: string, referenceMs: number): JournalPrefix | null {
  if (line.length < 16) return null;
  const first = line.charCodeAt(0);
  const time = first >= 48 && first <= 57 ? isoTime(line) : shortTime(line, referenceMs);
  if (time === null) return identOnly(line);
  const [timeMs, restStart] = time;
  const prefix: JournalPrefix = { timeMs, zoned: first >= 48 && first <= 57, host: '', service: '', pid: '', messageStart: Math.min(restStart, line.length) };
  if (restStart >= line.length || line.charCodeAt(restStart) === CH_SPACE) return prefix;
  if (knownOrigin(line, restStart, prefix)) return prefix;
  parseOrigin(line, restStart, prefix);
  if (prefix.service !== '') rememberOrigin(line, restStart, prefix);
  return prefix;
}

interface KnownOrigin {
  /** `host ident[pid]: ` exactly as it stood in the line, up to the message. */
  text: string;
  host: string;
  service: string;
  pid: string;
}

// A journal's lines come from a handful of processes: their origin text is compared in place and
// its parts reused, instead of slicing host, identifier and pid out of every line.
const KNOWN_ORIGINS = 32;
const knownOrigins: KnownOrigin[] = [];
let nextOrigin = 0;

function knownOrigin(line: string, restStart: number, prefix: JournalPrefix): boolean {
  for (let index = 0; index < knownOrigins.length; index++) {
    const known = knownOrigins[index] as KnownOrigin;
    if (!line.startsWith(known.text, restStart)) continue;
    prefix.host = known.host;
    prefix.service = known.service;
    prefix.pid = known.pid;
    prefix.messageStart = restStart + known.text.length;
    return true;
  }
  return false;
}

function rememberOrigin(line: string, restStart: number, prefix: JournalPrefix): void {
  // Only an origin ending in `: ` ends where its last token does; one ending at the line's end
  // could be the start of a longer token in another line.
  if (line.charCodeAt(prefix.messageStart - 1) !== CH_SPACE) return;
  const known: KnownOrigin = { text: line.slice(restStart, prefix.messageStart), host: prefix.host, service: prefix.service, pid: prefix.pid };
  knownOrigins[nextOrigin] = known;
  nextOrigin = (nextOrigin + 1) % KNOWN_ORIGINS;
}

function parseOrigin(line: string, restStart: number, prefix: JournalPrefix): void {

  const firstEnd = tokenEnd(line, restStart);
  const alone = identWithPid(line, restStart, firstEnd);
  if (alone !== null) {
    // host missing: `Nov 01 11:59:32 linkerd[5699]: msg`
    prefix.service = alone[0];
    prefix.pid = alone[1];
    prefix.messageStart = afterColon(line, firstEnd);
    return;
  }
  if (firstEnd >= line.length || line.charCodeAt(firstEnd - 1) === CH_COLON) return;
  const secondStart = firstEnd + 1;
  const secondEnd = tokenEnd(line, secondStart);
  const ident = identWithPid(line, secondStart, secondEnd);
  if (ident !== null) {
    prefix.host = line.slice(restStart, firstEnd);
    prefix.service = ident[0];
    prefix.pid = ident[1];
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
  return;
}

/** `ident[pid]: msg` with no time before it: an identifier of name characters, a numeric pid. */
function identOnly(line: string): JournalPrefix | null {
  const end = tokenEnd(line, 0);
  const ident = identWithPid(line, 0, end);
  if (ident === null || !isHostLike(ident[0])) return null;
  return { timeMs: undefined, zoned: false, host: '', service: ident[0], pid: ident[1], messageStart: afterColon(line, end) };
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
  return line.startsWith('-- ') && line.endsWith('--') && line.length >= 6;
}
