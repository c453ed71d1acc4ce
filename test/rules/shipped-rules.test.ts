/**
 * The shipped rule files in rules/: they load cleanly (schema, compilation, regex safety), every
 * embedded test passes, every rule carries tests, and every category the README promises SREs
 * is produced by some rule. The fixtures are the embedded tests themselves: real public traces,
 * each cited in a `# source:` comment above it in the YAML.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadRuleSet, runRuleTests, type LoadResult, type RuleTestReport } from '../../src/rules/index.js';
import type { RawRuleFile } from '../../src/rules/model.js';

const RULES_DIR = 'rules';

/** The stable category names SREs filter on (README, "Rules"). */
const DOCUMENTED_CATEGORIES = [
  'direct-memory-exhausted',
  'exception-caught-at-tail',
  'connection-reset',
  'buffer-leak',
  'channel-init-failed',
  'heap-exhausted',
  'metaspace-exhausted',
  'native-thread-exhausted',
  'gc-overhead',
  'jvm-exception',
];

interface ShippedFile {
  file: string;
  source: string;
  data: RawRuleFile;
}

async function readShippedFiles(): Promise<ShippedFile[]> {
  const names = (await readdir(RULES_DIR)).filter((name) => /\.ya?ml$/.test(name)).sort();
  return Promise.all(
    names.map(async (name) => {
      const file = path.join(RULES_DIR, name);
      const source = await readFile(file, 'utf8');
      return { file, source, data: (parse(source) ?? {}) as RawRuleFile };
    }),
  );
}

describe('shipped rules', () => {
  let loaded: LoadResult;
  let report: RuleTestReport;
  let files: ShippedFile[];

  beforeAll(async () => {
    [loaded, report, files] = await Promise.all([loadRuleSet(RULES_DIR, { checkRegexSafety: true }), runRuleTests(RULES_DIR), readShippedFiles()]);
  }, 120_000);

  it('load without errors, regex safety included', () => {
    // Warnings (e.g. recheck giving no verdict in time on a busy machine) are shown, not failed on.
    for (const warning of loaded.warnings) console.warn(`${warning.file}:${warning.line}:${warning.col}: ${warning.message}`);
    expect(loaded.errors).toEqual([]);
    expect(loaded.ruleSet).not.toBeNull();
  });

  it('pass every embedded test', () => {
    const failures = report.results.filter((result) => !result.ok);
    for (const failure of failures) console.error(`FAIL ${failure.file} ${failure.rule} / ${failure.test}\n${failure.diff ?? ''}`);
    expect(failures.map((failure) => `${failure.rule} / ${failure.test}`)).toEqual([]);
    expect(report.failed).toBe(0);
    expect(report.passed).toBe(report.results.length);
  });

  it('give every rule at least one test, and run them all', () => {
    const rules = files.flatMap((shipped) => shipped.data.rules ?? []);
    expect(rules.length).toBeGreaterThan(0);
    const untested = rules.filter((rule) => (rule.tests ?? []).length === 0).map((rule) => rule.id);
    expect(untested).toEqual([]);
    const groupers = files.flatMap((shipped) => shipped.data.groupers ?? []);
    const declaredTests = [...rules, ...groupers].reduce((sum, item) => sum + (item.tests ?? []).length, 0);
    expect(report.results.length).toBe(declaredTests);
    const testedRules = new Set(report.results.map((result) => result.rule).filter((name) => !name.startsWith('grouper ')));
    expect([...testedRules].sort()).toEqual(rules.map((rule) => rule.id).sort());
  });

  it('test every shipped layout on real output: some embedded test input has a line of that layout', () => {
    const inputLines = files.flatMap((shipped) =>
      [...(shipped.data.rules ?? []), ...(shipped.data.groupers ?? [])].flatMap((item) => (item.tests ?? []).flatMap((test) => test.input.split('\n'))),
    );
    const layouts = files.flatMap((shipped) => (shipped.data.groupers ?? []).flatMap((grouper) => grouper.layouts ?? []));
    expect(layouts.length).toBeGreaterThan(5);
    const untested = layouts.filter((layout) => !inputLines.some((line) => new RegExp(layout.header).test(line))).map((layout) => layout.name);
    expect(untested).toEqual([]);
  });

  it('cite a source above every embedded test', () => {
    const uncited: string[] = [];
    for (const shipped of files) {
      const lines = shipped.source.split('\n');
      for (const item of [...(shipped.data.rules ?? []), ...(shipped.data.groupers ?? [])]) {
        const name = 'id' in item ? item.id : `grouper ${item.name}`;
        for (const test of item.tests ?? []) {
          const at = lines.findIndex((line) => /^\s+- name: /.test(line) && line.includes(test.name));
          const comments: string[] = [];
          for (let above = at - 1; above >= 0 && /^\s*#/.test(lines[above] as string); above--) comments.push(lines[above] as string);
          if (at < 0 || !comments.some((comment) => /# source: \S+/.test(comment))) uncited.push(`${shipped.file}: ${name} / ${test.name}`);
        }
      }
    }
    expect(uncited).toEqual([]);
  });

  it('cover every documented category, with loaded rules and a passing positive test each', () => {
    const loadedCategories = new Set(loaded.ruleSet?.rules.filter((rule) => rule.enabled).map((rule) => rule.category));
    expect(DOCUMENTED_CATEGORIES.filter((category) => !loadedCategories.has(category))).toEqual([]);
    const expectedCategories = new Set(
      files.flatMap((shipped) => (shipped.data.rules ?? []).flatMap((rule) => (rule.tests ?? []).flatMap((test) => test.expect.map((event) => event.category)))),
    );
    expect(DOCUMENTED_CATEGORIES.filter((category) => !expectedCategories.has(category))).toEqual([]);
  });

  it('start every file with the schema modeline for editors', () => {
    for (const shipped of files) {
      expect(shipped.source.split('\n')[0], shipped.file).toBe('# yaml-language-server: $schema=../schema/leakwatch-rules.schema.json');
    }
  });
});
