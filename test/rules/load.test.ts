import { afterEach, describe, expect, it } from 'vitest';
import { loadRuleSet, formatProblem } from '../../src/rules/index.js';
import { rulesDir } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function load(files: Record<string, string>, checkRegexSafety = false) {
  const { dir, cleanup } = await rulesDir(files);
  cleanups.push(cleanup);
  const result = await loadRuleSet(dir, { checkRegexSafety });
  const relative = (text: string) => text.replace(dir + '/', '');
  return { ...result, dir, errorTexts: result.errors.map((e) => relative(formatProblem({ ...e, file: e.file }))) };
}

const RULE = (id: string, extra = '') => `
  - id: ${id}
    version: 1
    title: ${id}
    match:
      literals: [OutOfDirectMemoryError]
    classify: { category: direct-memory-exhausted, severity: error }${extra}
`;

describe('loadRuleSet', () => {
  it('loads the fixture folder without findings but the no-tests warnings', async () => {
    const result = await loadRuleSet('test/rules/fixtures/valid', { checkRegexSafety: false });
    expect(result.errors).toEqual([]);
    expect(result.ruleSet?.rules.map((r) => r.id)).toEqual(['netty-direct-memory-exhausted', 'channel-init-failed']);
    expect(result.ruleSet?.rules[0]?.file).toBe('test/rules/fixtures/valid/netty.yaml');
    expect(result.ruleSet?.groupers.map((g) => g.name)).toEqual(['jvm']);
    expect(result.ruleSet?.hash).toMatch(/^[0-9a-f]{16}$/);
  });

  it('points a bad enum value at its line and column, in words', async () => {
    const result = await load({
      'netty.yaml': `rules:
  - id: oom
    version: 1
    title: t
    match: { literals: [x] }
    classify:
      category: direct-memory-exhausted
      severity: fatal
`,
    });
    expect(result.ruleSet).toBeNull();
    expect(result.errorTexts).toEqual(['netty.yaml:8:17: rules[0].classify.severity: must be one of info, warning, error, critical (got "fatal")']);
  });

  it('names an unknown key at the key, with a suggestion', async () => {
    const result = await load({ 'a.yaml': `rules:${RULE('oom', '\n    priorty: 5')}` });
    expect(result.errorTexts).toEqual(['a.yaml:8:5: rules[0].priorty: unknown key "priorty"; did you mean "priority"?']);
  });

  it('reports missing keys, bad predicate keys and empty literals', async () => {
    const result = await load({
      'a.yaml': `rules:
  - id: Bad_Id
    version: 1
    title: t
    match:
      literals: []
      all:
        - exception.klass|equals: x
    classify: { category: c }
`,
    });
    expect(result.errorTexts).toEqual([
      'a.yaml:2:9: rules[0].id: must be lower-case letters, digits and single dashes (got "Bad_Id")',
      'a.yaml:6:17: rules[0].match.literals: must have at least 1 item',
      expect.stringMatching(/^a\.yaml:8:11: rules\[0\]\.match\.all\[0\]\["exception\.klass\|equals"\]: key "exception\.klass\|equals" is not allowed here: must be FIELD\|OP/),
      'a.yaml:9:15: rules[0].classify: missing required key "severity"',
    ]);
  });

  it('rejects duplicate YAML keys with their position', async () => {
    const result = await load({ 'a.yaml': 'rules: []\nrules: []\n' });
    expect(result.errorTexts).toEqual(['a.yaml:2:1: duplicate key (each key may appear once in a mapping)']);
  });

  it('rejects a rule id used twice, naming the first place', async () => {
    const result = await load({ 'a.yaml': `rules:${RULE('oom')}`, 'b.yml': `rules:${RULE('oom')}` });
    expect(result.errorTexts).toHaveLength(1);
    expect(result.errorTexts[0]).toMatch(/^b\.yml:2:9: rules\[0\]\.id: rule id "oom" is already used at .*a\.yaml:2$/);
  });

  it('rejects lookbehind, backreferences, bad regexes and types without a group', async () => {
    const result = await load({
      'a.yaml': `rules:${RULE(
        'oom',
        `
    extract:
      - regex: '(?<=used: )(?<used>\\d+)'
      - regex: '(?<a>x)\\1'
      - regex: '(?<b>x'
      - regex: 'used: (?<used_bytes>\\d+)'
        types: { used: bytes }`,
      )}`,
    });
    expect(result.errorTexts).toEqual([
      'a.yaml:9:16: rules[0].extract[0].regex: regex uses lookbehind "(?<="; lookbehind and backreferences are not allowed (they cannot run in linear time)',
      'a.yaml:10:16: rules[0].extract[1].regex: regex uses backreference "\\1"; lookbehind and backreferences are not allowed (they cannot run in linear time)',
      'a.yaml:11:16: rules[0].extract[2].regex: regex does not compile: /(?<b>x/: Unterminated group',
      'a.yaml:13:18: rules[0].extract[3].types.used: "used" is not a named group of the regex (groups: used_bytes)',
    ]);
  });

  it('checks derive expressions, threshold fields, incident keys and templates', async () => {
    const result = await load({
      'a.yaml': `rules:${RULE(
        'oom',
        `
    extract:
      - regex: 'used: (?<used_bytes>\\d+), max: (?<max_bytes>\\d+)'
        types: { used_bytes: bytes, max_bytes: bytes }
    derive:
      ratio: used_bytes / max
      free: max_bytes - * used_bytes
    thresholds:
      - if: { field: rate, gte: 0.9 }
        severity: critical
      - if: { count: 5 }
        severity: critical
    incident: { key: [rule, thread] }
    annotations:
      summary: '{{used_bytes|gigabytes}} of {{max_bytes|bytes}}'`,
      )}`,
    });
    expect(result.errorTexts).toEqual([
      'a.yaml:12:14: rules[0].derive.ratio: unknown field "max" (known here: used_bytes, max_bytes)',
      'a.yaml:13:25: rules[0].derive.free: unexpected "*" in "max_bytes - * used_bytes" at character 13',
      'a.yaml:15:22: rules[0].thresholds[0].if.field: unknown field "rate" (known here: used_bytes, max_bytes, ratio)',
      'a.yaml:17:13: rules[0].thresholds[1].if: a count threshold needs "count" and "within" (a duration such as 10m)',
      'a.yaml:19:29: rules[0].incident.key[1]: unknown key part "thread" (use rule, host, service, pid, category or a field: used_bytes, max_bytes, ratio)',
      'a.yaml:21:17: rules[0].annotations.summary: unknown filter "gigabytes" (known: bytes, percent, default)',
    ]);
  });

  it('rejects a regex that backtracks catastrophically, with an attack string', async () => {
    const result = await load({ 'a.yaml': `rules:${RULE('oom', `\n    match:\n      literals: [a]\n      all:\n        - text|regex: '(a+)+$'`).replace(/\n {4}match:\n {6}literals: \[OutOfDirectMemoryError\]/, '')}` }, true);
    expect(result.errors).toHaveLength(1);
    expect(result.errorTexts[0]).toMatch(/^a\.yaml:9:23: rules\[0\]\.match\.all\[0\]\["text\|regex"\]: regex can backtrack catastrophically \(exponential( \(fuzz\))? backtracking, e\.g\. on "a{8,}/);
  });

  it('accepts a linear extraction regex', async () => {
    const result = await load({
      'a.yaml': `rules:${RULE('oom', `\n    extract:\n      - regex: 'used: (?<used_bytes>\\d+), max: (?<max_bytes>\\d+)'`)}`,
    }, true);
    expect(result.errors).toEqual([]);
    expect(result.warnings.map((w) => w.message)).toEqual(['rules[0].id: rule "oom" has no tests']);
  });

  it('answers a missing folder with a finding, not an exception', async () => {
    const result = await loadRuleSet('/nonexistent/leakwatch-rules');
    expect(result.ruleSet).toBeNull();
    expect(result.errors[0]?.message).toMatch(/cannot read the rules folder: ENOENT/);
  });
});
