import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

// The compiled module (npm ci builds dist/), as `leakwatch serve` runs it.
const COMPILED = new URL('../dist/gc-tuning.js', import.meta.url);

/**
 * A fresh process (V8 flags are process-wide) that calls limitHeapGrowth(percent), then keeps
 * ~35 MB live while records pass through a ring of 300,000: each outlives the young generation,
 * so the old one fills with garbage until a full collection. Returns the old space's highest use
 * over what is live at the end.
 */
function oldSpacePeakOverLive(percent: number): number {
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    const { limitHeapGrowth } = await import(${JSON.stringify(COMPILED.href)});
    limitHeapGrowth(${percent});
    const oldUsed = () => getHeapSpaceStatistics().find((space) => space.space_name === 'old_space').space_used_size;
    const live = Array.from({ length: 200_000 }, (_, index) => ({ index, text: ('live ' + index).repeat(8) }));
    const ring = new Array(300_000);
    let peak = 0;
    for (let index = 0; index < 3_000_000; index++) {
      ring[index % ring.length] = { index, text: ('passing ' + index).repeat(4) };
      if (index % 10_000 === 0) peak = Math.max(peak, oldUsed());
    }
    globalThis.gc();
    process.stdout.write(String(peak / oldUsed() + live.length * 0 + ring.length * 0));
  `;
  const run = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' });
  expect(run.status, run.stderr).toBe(0);
  return Number(run.stdout);
}

describe('limitHeapGrowth (the --heap-growth setting)', () => {
  it('keeps the old generation nearer what is live between full collections', () => {
    const v8sOwn = oldSpacePeakOverLive(0);
    const limited = oldSpacePeakOverLive(50);
    // Measured here: 9.4 against 4.1 (V8 grows the heap up to 4x past each collection on its own).
    expect(limited).toBeLessThan(v8sOwn * 0.7);
    expect(limited).toBeLessThan(6);
  }, 60_000);
});

/**
 * A fresh process that makes 3,000,000 objects at one place, each kept while the next 200,000 are
 * made (long enough to outlive a young collection), then says whether one more made there is in
 * the young generation. `stop` calls stopPretenuring() first.
 */
function freshObjectIsYoung(stop: boolean): boolean {
  const script = `
    const { stopPretenuring } = await import(${JSON.stringify(COMPILED.href)});
    if (${stop}) stopPretenuring();
    const make = (index) => ({ index, text: 'event ' + index, fields: { used: index }, lines: [index, index + 1] });
    const ring = new Array(200_000);
    for (let index = 0; index < 3_000_000; index++) ring[index % ring.length] = make(index);
    const fresh = make(-1);
    process.stdout.write(String(%InYoungGeneration(fresh) && %InYoungGeneration(fresh.fields)));
  `;
  const run = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8' });
  expect(run.status, run.stderr).toBe(0);
  return run.stdout === 'true';
}

describe('stopPretenuring (at the start of leakwatch serve)', () => {
  it('keeps making objects young where V8 would have made them old', () => {
    // Without it V8 judges the place long-lived and makes what follows in the old generation.
    expect(freshObjectIsYoung(false)).toBe(false);
    expect(freshObjectIsYoung(true)).toBe(true);
  }, 60_000);
});
