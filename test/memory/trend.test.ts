import { describe, expect, it } from 'vitest';
import { prng as random } from '../../bench/corpus.js';
import { exhaustionOf, floorTrend, normalCdf, windowMinimums, type TimedValue } from '../../src/memory/trend.js';

const MiB = 1024 * 1024;
const MINUTE = 60_000;
const HOUR = 3_600_000;
const T0 = Date.parse('2024-11-01T00:00:00.000Z');
const SCRAPE = 15_000;

/** Normal noise (Box–Muller) of standard deviation `sigma`. */
function gaussian(seed: number, sigma: number): () => number {
  const next = random(seed);
  return () => sigma * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

function series(hours: number, value: (elapsedMs: number) => number, step = SCRAPE): TimedValue[] {
  const points: TimedValue[] = [];
  for (let elapsed = 0; elapsed <= hours * HOUR; elapsed += step) points.push({ t: T0 + elapsed, value: value(elapsed) });
  return points;
}

/** Error of a predicted exhaustion against the known one, relative to the time that was left. */
function relativeError(predicted: number, known: number, now: number): number {
  return Math.abs(predicted - known) / (known - now);
}

describe('floor trend on synthetic series with known answers', () => {
  it('a flat GC sawtooth (400 MiB floor, +200 MiB every 10 min, noise) has no rising floor and no exhaustion time', () => {
    const noise = gaussian(1, 4 * MiB);
    const points = series(6, (elapsed) => 400 * MiB + ((elapsed % (10 * MINUTE)) / (10 * MINUTE)) * 200 * MiB + noise());
    const trend = floorTrend(points)!;
    expect(trend.rising).toBe(false);
    expect(Math.abs(trend.slopePerHour)).toBeLessThan(2 * MiB);
    expect(exhaustionOf(trend, 1024 * MiB)).toBeNull();
  });

  it("a flat Netty pool (chunks taken and given back by bursts of traffic) has no exhaustion time", () => {
    const next = random(2);
    // 64 MiB held, up to 24 one-MiB chunks more while a burst lasts, back to the floor after it.
    const points = series(6, () => 64 * MiB + Math.floor(next() < 0.3 ? next() * 24 : 0) * MiB);
    const trend = floorTrend(points)!;
    expect(trend.rising).toBe(false);
    expect(exhaustionOf(trend, 256 * MiB)).toBeNull();
  });

  it('a linear leak under noise (50 MiB/h from 200 MiB, σ 8 MiB) gives the exhaustion time within 10 %', () => {
    const noise = gaussian(3, 8 * MiB);
    const slope = 50 * MiB;
    const max = 1024 * MiB;
    const points = series(6, (elapsed) => 200 * MiB + (slope * elapsed) / HOUR + noise());
    const known = T0 + ((max - 200 * MiB) / slope) * HOUR;
    const trend = floorTrend(points)!;
    expect(trend.rising).toBe(true);
    expect(trend.confidence).toBeGreaterThan(0.999);
    expect(trend.slopeLowPerHour).toBeLessThanOrEqual(slope);
    expect(trend.slopeHighPerHour).toBeGreaterThanOrEqual(slope);
    const exhaustion = exhaustionOf(trend, max)!;
    const now = points.at(-1)!.t;
    expect(relativeError(exhaustion.at, known, now)).toBeLessThan(0.1);
    expect(exhaustion.earliest).toBeLessThanOrEqual(exhaustion.at);
    expect(exhaustion.latest).toBeGreaterThanOrEqual(exhaustion.at);
  });

  it('a leak under a sawtooth (floor +30 MiB/h, peaks 150 MiB above it) fails when the peaks reach the limit, within 10 %', () => {
    const noise = gaussian(4, 3 * MiB);
    const max = 1024 * MiB;
    const floorAt = (elapsed: number): number => 300 * MiB + (30 * MiB * elapsed) / HOUR;
    const points = series(6, (elapsed) => floorAt(elapsed) + ((elapsed % (7 * MINUTE)) / (7 * MINUTE)) * 150 * MiB + noise());
    // The peaks (floor + 150 MiB) reach the limit when the floor is at 874 MiB: 574 MiB / 30 MiB/h after T0.
    const known = T0 + ((max - 150 * MiB - 300 * MiB) / (30 * MiB)) * HOUR;
    const trend = floorTrend(points)!;
    expect(trend.rising).toBe(true);
    const exhaustion = exhaustionOf(trend, max)!;
    expect(relativeError(exhaustion.at, known, points.at(-1)!.t)).toBeLessThan(0.1);
  });

  it('the first half-hour of a sawtooth, one rising edge long, is not called a leak however steep', () => {
    const points = series(0.4, (elapsed) => 100 * MiB + (elapsed / HOUR) * 500 * MiB, 10_000);
    const trend = floorTrend(points)!;
    expect(trend.confidence).toBeGreaterThan(0.99);
    expect(trend.rising).toBe(false);
  });

  it('needs enough windows with samples', () => {
    expect(floorTrend(series(1, () => MiB, 20 * MINUTE))).toBeNull();
    expect(windowMinimums([{ t: 0, value: 5 }, { t: 10, value: 3 }, { t: 20, value: 4 }, { t: 30, value: 1 }], 2)).toEqual([
      { t: 10, value: 3 },
      { t: 30, value: 1 },
    ]);
  });

  it('normalCdf matches the table', () => {
    expect(normalCdf(0)).toBeCloseTo(0.5, 7);
    expect(normalCdf(1.959964)).toBeCloseTo(0.975, 6);
    expect(normalCdf(-1.644854)).toBeCloseTo(0.05, 6);
  });
});
