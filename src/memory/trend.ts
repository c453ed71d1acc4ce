/**
 * The trend of direct memory, robust to the shapes a healthy JVM makes. Netty's pooled allocator
 * grows and shrinks a chunk at a time and traffic and GC make sawtooth curves; a leak shows as a
 * rising floor. So the span of samples is cut into windows, each window's minimum is a point of
 * the floor, and the floor's slope is the Theil–Sen estimate over those points: the median of the
 * slopes between every pair of them, which a few odd windows cannot drag (Sen 1968,
 * https://doi.org/10.1080/01621459.1968.10480934). How sure the floor is rising comes from the
 * Mann–Kendall test over the same points (the test that goes with Sen's slope), and the slope's
 * 95 % interval from Sen's rank method.
 */
const HOUR_MS = 3_600_000;

export interface TimedValue {
  t: number;
  value: number;
}

export interface TrendOptions {
  /** Windows the span is cut into at most; each window's minimum is one point of the floor. Default 12. */
  windows?: number;
  /** Fewest windows holding samples before a trend is told at all. Default 6. */
  minWindows?: number;
  /** Shortest span of samples (ms) before the floor may be called rising: less than one GC cycle looks like a leak. Default 30 min. */
  minSpanMs?: number;
  /** Confidence (Mann–Kendall, one-sided) needed to call the floor rising. Default 0.95. */
  minConfidence?: number;
  /** Quantile of the samples' height above the floor that the process reaches before it fails. Default 0.9. */
  excursionQuantile?: number;
}

export const TREND_DEFAULTS: Required<TrendOptions> = {
  windows: 12,
  minWindows: 6,
  minSpanMs: 30 * 60_000,
  minConfidence: 0.95,
  excursionQuantile: 0.9,
};

export interface FloorTrend {
  /** Theil–Sen slope of the window minimums, per hour. */
  slopePerHour: number;
  /** Sen's 95 % interval of that slope. */
  slopeLowPerHour: number;
  slopeHighPerHour: number;
  /** Probability that the floor is rising, from the one-sided Mann–Kendall test (0.5 for no evidence either way). */
  confidence: number;
  /** Confident enough, long enough, and the whole interval above zero: a leak, not a sawtooth. */
  rising: boolean;
  /** Windows that held samples (the points of the floor). */
  windows: number;
  /** First to last sample, ms. */
  spanMs: number;
  /** The floor line at `referenceTime` (the newest sample's time). */
  floorAtReference: number;
  referenceTime: number;
  /** How far above the floor the samples reach (the chosen quantile): what the peaks add when the crash comes. */
  excursion: number;
}

export interface Exhaustion {
  /** When the floor plus the usual excursion reaches the limit, at the estimated slope. */
  at: number;
  /** At the upper end of the slope's interval. */
  earliest: number;
  /** At the lower end of the slope's interval. */
  latest: number;
}

/** Standard normal CDF (Abramowitz & Stegun 7.1.26, error below 1.5e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-x * x);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  const position = (sorted.length - 1) * q;
  const below = Math.floor(position);
  const above = Math.min(sorted.length - 1, below + 1);
  return (sorted[below] as number) + ((sorted[above] as number) - (sorted[below] as number)) * (position - below);
}

/** The minimum of each of `count` equal windows over the span (windows without samples are skipped). */
export function windowMinimums(points: readonly TimedValue[], count: number): TimedValue[] {
  const first = points[0]!.t;
  const span = points[points.length - 1]!.t - first;
  const minimums: (TimedValue | undefined)[] = new Array<TimedValue | undefined>(count).fill(undefined);
  for (const point of points) {
    const index = span === 0 ? 0 : Math.min(count - 1, Math.floor(((point.t - first) / span) * count));
    const current = minimums[index];
    if (current === undefined || point.value < current.value) minimums[index] = point;
  }
  return minimums.filter((m): m is TimedValue => m !== undefined);
}

interface MannKendall {
  s: number;
  variance: number;
}

function mannKendall(points: readonly TimedValue[]): MannKendall {
  let s = 0;
  for (let i = 0; i < points.length; i++) {
    for (let j = i + 1; j < points.length; j++) s += Math.sign(points[j]!.value - points[i]!.value);
  }
  const n = points.length;
  const tieGroups = new Map<number, number>();
  for (const point of points) tieGroups.set(point.value, (tieGroups.get(point.value) ?? 0) + 1);
  let tieTerm = 0;
  for (const size of tieGroups.values()) tieTerm += size * (size - 1) * (2 * size + 5);
  return { s, variance: (n * (n - 1) * (2 * n + 5) - tieTerm) / 18 };
}

/**
 * The floor's trend over `points` (oldest first, one series: one process, one source), or null when
 * there are too few windows with samples to tell anything.
 */
export function floorTrend(points: readonly TimedValue[], options: TrendOptions = {}): FloorTrend | null {
  const settings = { ...TREND_DEFAULTS, ...options };
  if (points.length < settings.minWindows) return null;
  const windowCount = Math.max(settings.minWindows, Math.min(settings.windows, Math.floor(points.length / 2)));
  const floor = windowMinimums(points, windowCount);
  if (floor.length < settings.minWindows) return null;

  const slopes: number[] = [];
  for (let i = 0; i < floor.length; i++) {
    for (let j = i + 1; j < floor.length; j++) {
      const dt = floor[j]!.t - floor[i]!.t;
      if (dt > 0) slopes.push(((floor[j]!.value - floor[i]!.value) / dt) * HOUR_MS);
    }
  }
  if (slopes.length === 0) return null;
  slopes.sort((a, b) => a - b);
  const slopePerHour = quantile(slopes, 0.5);

  const { s, variance } = mannKendall(floor);
  const z = variance > 0 ? (s > 0 ? (s - 1) / Math.sqrt(variance) : s < 0 ? (s + 1) / Math.sqrt(variance) : 0) : 0;
  const confidence = normalCdf(z);
  // Sen's interval: ranks (N ± 1.96·√Var S)/2 of the sorted pairwise slopes.
  const reach = 1.959964 * Math.sqrt(Math.max(variance, 0));
  const lowRank = Math.max(0, Math.min(slopes.length - 1, Math.floor((slopes.length - reach) / 2)));
  const highRank = Math.max(0, Math.min(slopes.length - 1, Math.ceil((slopes.length + reach) / 2)));
  const slopeLowPerHour = slopes[lowRank]!;
  const slopeHighPerHour = slopes[highRank]!;

  const referenceTime = points[points.length - 1]!.t;
  // The line through the floor points with that slope: the median of their intercepts.
  const intercepts = floor.map((p) => p.value - (slopePerHour * (p.t - referenceTime)) / HOUR_MS).sort((a, b) => a - b);
  const floorAtReference = quantile(intercepts, 0.5);
  const heights = points.map((p) => p.value - (floorAtReference + (slopePerHour * (p.t - referenceTime)) / HOUR_MS)).sort((a, b) => a - b);
  const excursion = Math.max(0, quantile(heights, settings.excursionQuantile));
  const spanMs = referenceTime - points[0]!.t;

  return {
    slopePerHour,
    slopeLowPerHour,
    slopeHighPerHour,
    confidence,
    rising: confidence >= settings.minConfidence && slopeLowPerHour > 0 && spanMs >= settings.minSpanMs,
    windows: floor.length,
    spanMs,
    floorAtReference,
    referenceTime,
    excursion,
  };
}

function timeToReach(trend: FloorTrend, max: number, slopePerHour: number): number {
  const headroom = max - trend.excursion - trend.floorAtReference;
  if (headroom <= 0) return trend.referenceTime;
  return trend.referenceTime + Math.round((headroom / slopePerHour) * HOUR_MS);
}

/** When a rising floor (plus its usual excursion) reaches `max`; null when the floor is not rising or no limit is known. */
export function exhaustionOf(trend: FloorTrend | null, max: number | null): Exhaustion | null {
  if (trend === null || max === null || !trend.rising) return null;
  return {
    at: timeToReach(trend, max, trend.slopePerHour),
    earliest: timeToReach(trend, max, trend.slopeHighPerHour),
    latest: timeToReach(trend, max, trend.slopeLowPerHour),
  };
}
