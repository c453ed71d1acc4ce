const HOUR_MS = 3_600_000;

export interface TimedValue {
  t: number;
  value: number;
}

/**
 * Least-squares slope of value over time, in units per hour; null with fewer than two distinct
 * times. Times are centred on their mean before multiplying so epoch-sized numbers keep their precision.
 */
export function slopePerHour(points: readonly TimedValue[]): number | null {
  if (points.length < 2) return null;
  const base = points[0]!.t;
  let sumT = 0;
  let sumV = 0;
  for (const p of points) {
    sumT += (p.t - base) / HOUR_MS;
    sumV += p.value;
  }
  const meanT = sumT / points.length;
  const meanV = sumV / points.length;
  let numerator = 0;
  let denominator = 0;
  for (const p of points) {
    const dt = (p.t - base) / HOUR_MS - meanT;
    numerator += dt * (p.value - meanV);
    denominator += dt * dt;
  }
  return denominator === 0 ? null : numerator / denominator;
}

/** When used reaches max at the given rate (per hour), or null when it is not growing or max is unknown. */
export function exhaustionTime(now: number, used: number, max: number | null, slopeBytesPerHour: number | null): number | null {
  if (max === null || slopeBytesPerHour === null || !(slopeBytesPerHour > 0)) return null;
  if (used >= max) return now;
  return now + Math.round(((max - used) / slopeBytesPerHour) * HOUR_MS);
}
