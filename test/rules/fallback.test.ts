import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRuleSet, runRuleTests, type RuleSet } from '../../src/rules/index.js';
import { TAIL_RESET_TRACE, groupOf, rulesDir } from './helpers.js';

// Issue 11: a new specific rule must win over the catch-all without editing the catch-all's file.
const CATCH_ALL = `
rules:
  - id: any-trace
    version: 1
    title: any stack trace
    fallback: true
    priority: 1000
    match:
      literals: ['at io.netty']
    classify: { category: jvm-exception, severity: warning }
    tests:
      - name: a reset at the tail is just a trace to the catch-all
        input: |
          WARN 1103 17:36:55.421 CDT finagle/netty4-6: An exceptionCaught() event was fired, and it reached at the tail of the pipeline. It usually means the last handler in the pipeline did not handle the exception.
          Connection reset by peer
          at io.netty.buffer.PooledUnsafeDirectByteBuf.setBytes(
        expect: [{ rule: any-trace, category: jvm-exception, tags: [netty-trace] }]
  - id: second-catch-all
    version: 1
    title: a lower catch-all
    fallback: true
    match:
      literals: ['at io.netty.buffer']
    classify: { category: netty-trace, severity: info }
`;

// Added later, in a file of its own, at a lower priority than the catch-all.
const SPECIFIC = `
rules:
  - id: tail-reset
    version: 1
    title: exception at the pipeline tail
    priority: 1
    match:
      literals: [reached at the tail of the pipeline]
    classify: { category: exception-caught-at-tail, severity: warning }
`;

describe('fallback rules', () => {
  let ruleSet: RuleSet;
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ dir, cleanup } = await rulesDir({ 'a-catch-all.yaml': CATCH_ALL, 'z-specific.yaml': SPECIFIC }));
    const loaded = await loadRuleSet(dir, { checkRegexSafety: false });
    expect(loaded.errors).toEqual([]);
    ruleSet = loaded.ruleSet!;
  });
  afterAll(() => cleanup());

  it('a specific rule of any priority wins, and the catch-alls are not its tags', () => {
    expect(ruleSet.classifier.classify(groupOf(TAIL_RESET_TRACE))).toMatchObject({ rule: 'tail-reset', category: 'exception-caught-at-tail', tags: [] });
  });

  it('a record no specific rule matches goes to the catch-alls, by priority, the lower one a tag', () => {
    expect(ruleSet.classifier.classify(groupOf(TAIL_RESET_TRACE.slice(1)))).toMatchObject({
      rule: 'any-trace',
      category: 'jvm-exception',
      tags: ['netty-trace'],
    });
  });

  it('is listed in GET /rules terms', () => {
    expect(ruleSet.rules.map(({ id, fallback }) => [id, fallback])).toEqual([
      ['any-trace', true],
      ['second-catch-all', true],
      ['tail-reset', false],
    ]);
  });

  it("a catch-all's tests keep passing when a specific rule claims their input", async () => {
    const report = await runRuleTests(dir);
    expect(report.results.map((result) => [result.rule, result.ok, result.diff])).toEqual([['any-trace', true, undefined]]);
  });
});
