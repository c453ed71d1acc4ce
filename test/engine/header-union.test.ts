import { describe, expect, it } from 'vitest';
import { headerPrefilter } from '../../src/engine/header-union.js';

describe('headerPrefilter (one regex to reject non-header lines)', () => {
  const lines = ['10:45:40.985 [main] WARN x - y', 'INFO  [main] 2019-01-16 17:36:18,318 A.java:1 - z', '\tat a.b.C.d(C.java:1)', 'plain prose', 'xx foo'];

  it('matches exactly the lines one of its anchored patterns matches', () => {
    const patterns = [/^\d\d:\d\d:\d\d\.\d{3} \[[^\]]*\] +(?:TRACE|DEBUG|INFO|WARN|ERROR) /, /^(?:TRACE|DEBUG|INFO|WARN|ERROR) +\[[^\]]*\] \d{4}-/, /^(?:SEVERE|WARNING): (?!\d+ leak records)/];
    const { union, alone } = headerPrefilter(patterns);
    expect(union).not.toBeNull();
    expect(alone).toEqual([]);
    for (const line of lines) expect(union!.test(line), line).toBe(patterns.some((pattern) => pattern.test(line)));
  });

  it('leaves out patterns that are not anchored as a whole, or have flags, and tests them alone', () => {
    const unanchored = /foo/;
    const alternation = /^a|foo/;
    const flagged = /^xx/i;
    const { union, alone } = headerPrefilter([/^\d\d:/, /^INFO /, unanchored, alternation, flagged]);
    expect(union?.test('xx foo')).toBe(false);
    expect(alone).toEqual([unanchored, alternation, flagged]);
  });

  it('gives up on a union whose patterns name a group alike', () => {
    const patterns = [/^(?<level>INFO) /, /^\[(?<level>WARN)\]/];
    expect(headerPrefilter(patterns)).toEqual({ union: null, alone: patterns });
  });
});
