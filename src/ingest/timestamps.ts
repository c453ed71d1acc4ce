/** Full timestamps as shippers write them (numbers since the epoch, RFC 3339 text) → µs or ms. */
import { CH_0, CH_DOT, isDigit } from '../text/char-codes.js';

/** Seconds, ms, µs or ns since the epoch, told apart by magnitude (valid for years 1973–5138), in µs. */
export function epochNumberToUs(value: number): number | undefined {
  if (!Number.isFinite(value) || value <= 0) return undefined;
  if (value < 1e11) return Math.round(value * 1e6);
  if (value < 1e14) return Math.round(value * 1000);
  if (value < 1e17) return Math.round(value);
  return Math.round(value / 1000);
}

/**
 * The value of a text of digits, or digits, a point and digits (`^\d+(?:\.\d+)?$`); NaN for any
 * other text. Read by hand: every journald record comes with such a clock (16 digits of µs), and
 * the regular expression and Number() of the text took 2.5 times the digit loop. The sum is exact
 * while it stays a safe integer; larger ones and fractions go to Number().
 */
function decimalTextValue(text: string): number {
  let index = 0;
  let value = 0;
  for (; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (!isDigit(code)) break;
    value = value * 10 + (code - CH_0);
  }
  if (index === 0) return Number.NaN;
  if (index === text.length) return value <= Number.MAX_SAFE_INTEGER ? value : Number(text);
  if (text.charCodeAt(index) !== CH_DOT) return Number.NaN;
  const fractionStart = ++index;
  while (index < text.length && isDigit(text.charCodeAt(index))) index++;
  return index > fractionStart && index === text.length ? Number(text) : Number.NaN;
}
// RFC 3339 and its relatives: `T` or a space, fraction of any length, `Z`, `+hh:mm`, `+hhmm` or none (UTC).
const ISO_TIMESTAMP = /^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?\s*(Z|z|[+-]\d\d:?\d\d)?$/;

/** An RFC 3339-like text in µs since the epoch (a missing zone is UTC); undefined when it is none. */
export function isoTextToUs(text: string): number | undefined {
  const match = ISO_TIMESTAMP.exec(text);
  if (!match) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return undefined;
  const midnight = Date.UTC(year, month - 1, day);
  // Date.UTC rolls Feb 30 into March; such a date is not a real one.
  if (new Date(midnight).getUTCDate() !== day) return undefined;
  const micros = match[7] === undefined ? 0 : Number(match[7].slice(0, 6).padEnd(6, '0'));
  const zone = match[8];
  let offsetMinutes = 0;
  if (zone !== undefined && zone !== 'Z' && zone !== 'z') {
    const hours = Number(zone.slice(1, 3));
    const minutes = Number(zone.slice(zone.length - 2));
    offsetMinutes = (hours * 60 + minutes) * (zone.charCodeAt(0) === 45 ? -1 : 1);
  }
  return (midnight + ((hour * 60 + minute) * 60 + second) * 1000 - offsetMinutes * 60_000) * 1000 + micros;
}

/**
 * A shipper's time field in µs: a number (by magnitude), a numeric string, or RFC 3339 text.
 * `micros` says the number is µs whatever its size (journald's `__REALTIME_TIMESTAMP`).
 */
export function timeValueToUs(value: unknown, micros = false): number | undefined {
  let us: number | undefined;
  if (typeof value === 'number') us = micros ? Math.round(value) : epochNumberToUs(value);
  else if (typeof value === 'bigint') us = micros ? Number(value) : epochNumberToUs(Number(value));
  else if (typeof value === 'string' && value !== '') {
    const decimal = decimalTextValue(value);
    if (decimal === decimal) us = micros ? Math.round(decimal) : epochNumberToUs(decimal);
    else if (!micros) us = isoTextToUs(value) ?? fallbackParse(value);
  }
  return us !== undefined && Number.isFinite(us) && us > 0 ? us : undefined;
}

/** Other date texts Date.parse knows (RFC 2822 and the like), to the millisecond. */
function fallbackParse(text: string): number | undefined {
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? ms * 1000 : undefined;
}
