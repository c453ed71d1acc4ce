import { describe, expect, it } from 'vitest';
import { Clock, StreamClocks } from '../../src/engine/stream-clocks.js';

describe('StreamClocks', () => {
  it('keeps each stream its own clocks across pages, and starts a reused slot afresh', () => {
    const clocks = new StreamClocks();
    // Past two pages' worth, so that slots on different pages are written and read back.
    const slots = Array.from({ length: 2_500 }, () => clocks.allocate());
    expect(new Set(slots).size).toBe(slots.length);
    for (const slot of slots) {
      clocks.set(slot, Clock.GroupTime, 1_700_000_000_000 + slot);
      clocks.set(slot, Clock.FirstPosition, slot * 2 ** 24 + 7);
      clocks.set(slot, Clock.LastArrival, slot + 0.5);
      clocks.set(slot, Clock.LastSourceUs, 1_700_000_000_000_000 + slot);
    }
    for (const slot of slots) {
      expect(clocks.get(slot, Clock.GroupTime)).toBe(1_700_000_000_000 + slot);
      expect(clocks.get(slot, Clock.FirstPosition)).toBe(slot * 2 ** 24 + 7);
      expect(clocks.get(slot, Clock.LastArrival)).toBe(slot + 0.5);
      expect(clocks.get(slot, Clock.LastSourceUs)).toBe(1_700_000_000_000_000 + slot);
    }
    const freed = slots[1_500] as number;
    clocks.release(freed);
    const reused = clocks.allocate();
    expect(reused).toBe(freed);
    expect(clocks.get(reused, Clock.GroupTime)).toBe(0);
    expect(clocks.get(reused, Clock.FirstPosition)).toBeNaN();
    expect(clocks.get(reused, Clock.LastArrival)).toBe(0);
    expect(clocks.get(reused, Clock.LastSourceUs)).toBeNaN();
    // Its neighbours are untouched by the reuse.
    expect(clocks.get(slots[1_499] as number, Clock.GroupTime)).toBe(1_700_000_000_000 + 1_499);
    expect(clocks.get(slots[1_501] as number, Clock.GroupTime)).toBe(1_700_000_000_000 + 1_501);
    // A fresh slot after the reuse is a new one.
    expect(clocks.allocate()).toBe(slots.length);
  });
});
