/**
 * The compiled checker (the one `leakwatch serve` runs) asks recheck on a thread of its own and lets
 * that thread go when idle; the TypeScript sources check in process. Both must give the same verdicts.
 */
import { describe, expect, it } from 'vitest';
import { checkRegexSafety as checkInProcess } from '../../src/rules/regex-safety.js';

const COMPILED = new URL('../../dist/rules/regex-safety.js', import.meta.url).href;

describe('regex safety on the checking thread', () => {
  it('gives the in-process verdicts: exponential for (a+)+$, safe for a linear extraction', async () => {
    const { checkRegexSafety: checkOnThread } = (await import(COMPILED)) as typeof import('../../src/rules/regex-safety.js');
    const patterns = ['(a+)+$', 'used: (?<used_bytes>\\d+), max: (?<max_bytes>\\d+)'];
    // Not the verdicts shipped for the shipped rules' patterns: recheck's, on each side.
    const onThread = await Promise.all(patterns.map((pattern) => checkOnThread(pattern, undefined, undefined, false)));
    const inProcess = await Promise.all(patterns.map((pattern) => checkInProcess(pattern, undefined, undefined, false)));
    expect(onThread.map((verdict) => verdict.status)).toEqual(['vulnerable', 'safe']);
    expect(inProcess.map((verdict) => verdict.status)).toEqual(['vulnerable', 'safe']);
    expect(onThread[0]?.detail).toMatch(/^exponential/);
  });
});
