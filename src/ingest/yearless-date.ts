/**
 * Dates logged without a year (journalctl's `short` mode `Apr 10 20:58:15`, linkerd's `MMdd`
 * headers) are placed in the latest year that does not put them after the reference time by more
 * than a day of clock skew: logs describe the past, so a line of April 10 read in December is of
 * this year's April, and a line of December 31 read on January 1 is of the old year. The reference
 * is the best full time the record carries (its shipper's or journal's time), else receipt time.
 */

const DAY_MS = 24 * 60 * 60 * 1000;
/** How far after the reference a placed date may fall: clock skew, and local times read as UTC. */
export const YEARLESS_SKEW_MS = DAY_MS;

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Days from 1970-01-01 to the date (proleptic Gregorian): Date.UTC without its runtime call. */
export function daysSinceEpoch(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146097 + dayOfEra - 719468;
}

export function daysInMonth(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return month === 2 && leap ? 29 : (DAYS_IN_MONTH[month - 1] as number);
}

// Lines of one input nearly always share a reference year: remember its bounds instead of
// building a Date per line.
let cachedYear = Number.NaN;
let cachedYearStart = 0;
let cachedYearEnd = 0;

function utcYearOf(ms: number): number {
  if (!(ms >= cachedYearStart && ms < cachedYearEnd)) {
    cachedYear = new Date(ms).getUTCFullYear();
    cachedYearStart = Date.UTC(cachedYear, 0, 1);
    cachedYearEnd = Date.UTC(cachedYear + 1, 0, 1);
  }
  return cachedYear;
}

/**
 * `month` (1-12), `day` and `msOfDay` (which may be negative or past a day: a zone offset already
 * applied) placed in a year, in ms since the epoch; undefined when the day does not exist in any
 * candidate year (Feb 30) or the reference is not a time.
 */
export function placeYearless(month: number, day: number, msOfDay: number, referenceMs: number): number | undefined {
  if (!Number.isFinite(referenceMs)) return undefined;
  const referenceYear = utcYearOf(referenceMs);
  for (let year = referenceYear + 1; year >= referenceYear - 1; year--) {
    // Date.UTC would roll Feb 29 (or Apr 31) over into the next month; such a year is no candidate.
    if (day > daysInMonth(year, month)) continue;
    const candidate = daysSinceEpoch(year, month, day) * DAY_MS + msOfDay;
    if (candidate <= referenceMs + YEARLESS_SKEW_MS) return candidate;
  }
  return undefined;
}
