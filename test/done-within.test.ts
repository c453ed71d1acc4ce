import { describe, expect, it } from 'vitest';
import { doneWithin } from '../src/done-within.js';

describe('doneWithin', () => {
  it('is true for a promise that settles in time, false for one that does not, and passes a rejection on', async () => {
    expect(await doneWithin(new Promise((resolve) => setTimeout(resolve, 5)), 1000)).toBe(true);
    const started = performance.now();
    expect(await doneWithin(new Promise(() => undefined), 30)).toBe(false);
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
    await expect(doneWithin(Promise.reject(new Error('boom')), 1000)).rejects.toThrow('boom');
  });
});
