/**
 * `leakwatch rules test`: runs the `tests:` embedded in the rule files through the production path
 * — each input line read as `leakwatch analyze` reads a text line, then a real engine loaded with
 * the whole rule set of the folder (so tags from other rules are what production would show):
 * - a rule's tests compare the events with `expect` (subset match, numbers with 1e-3 relative tolerance);
 *   a `fallback` rule's tests run with the folder's fallback rules only (what it does when no
 *   specific rule claims the input);
 * - a grouper's tests compare every grouped record, classified or not, with `expect` (first line and
 *   line count of each, in order).
 */
import { parseDocument } from 'yaml';
import { readFile } from 'node:fs/promises';
import type { LeakEvent } from '../engine/event.js';
import { createEngine } from '../engine/create-engine.js';
import type { Group } from '../engine/group.js';
import { recordFromTextLine } from '../ingest/journald-short.js';
import { streamKeyOf, type LogRecord } from '../ingest/record.js';
import { RuleClassifier } from './classifier.js';
import { displayName, listRuleFiles, loadRuleSet, type RuleSet } from './load.js';
import type { RawGrouperTest, RawRuleFile, RawRuleTest } from './model.js';
import { formatProblem } from './problems.js';

export interface RuleTestResult {
  rule: string;
  test: string;
  file: string;
  ok: boolean;
  diff?: string;
}

export interface RuleTestReport {
  passed: number;
  failed: number;
  results: RuleTestResult[];
}

/** Test inputs carry no years: a fixed reading time keeps event times, ids and windows reproducible. */
const TEST_EPOCH_MS = Date.UTC(2024, 0, 1);

/** The input's lines as records, read the way `leakwatch analyze` reads text; `stream:` fills what a line does not say. */
function recordsOf(test: RawRuleTest | RawGrouperTest): LogRecord[] {
  const host = test.stream?.host ?? 'test-host';
  const service = test.stream?.service ?? 'linkerd';
  const pid = String(test.stream?.pid ?? '1');
  const records: LogRecord[] = [];
  for (const line of test.input.replace(/\n$/, '').split('\n')) {
    const record = recordFromTextLine(line, TEST_EPOCH_MS);
    if (record === null) continue;
    if (record.host === '') record.host = host;
    if (record.service === '') record.service = service;
    if (record.pid === '') record.pid = pid;
    record.stream = streamKeyOf(record.host, record.service, record.pid);
    records.push(record);
  }
  return records;
}

function numbersClose(expected: number, actual: number): boolean {
  if (expected === actual) return true;
  return Math.abs(expected - actual) <= 1e-3 * Math.max(Math.abs(expected), Math.abs(actual));
}

/** Where `actual` differs from the subset `expected`: one line per difference. */
export function subsetDifferences(expected: unknown, actual: unknown, at: string): string[] {
  if (typeof expected === 'number' && typeof actual === 'number') {
    return numbersClose(expected, actual) ? [] : [`${at}: expected ${expected}, got ${actual}`];
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return [`${at}: expected a list ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
    if (expected.length !== actual.length) return [`${at}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
    return expected.flatMap((item, index) => subsetDifferences(item, actual[index], `${at}[${index}]`));
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object') return [`${at}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
    return Object.entries(expected).flatMap(([key, value]) => subsetDifferences(value, (actual as Record<string, unknown>)[key], at === '' ? key : `${at}.${key}`));
  }
  // pid may be written as a number in YAML; events carry it as a string.
  if (typeof expected === 'number' && typeof actual === 'string' && String(expected) === actual) return [];
  return expected === actual ? [] : [`${at}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
}

function describeEvent(event: LeakEvent): string {
  return `${event.rule} (${event.category}, ${event.severity}): ${event.message.slice(0, 100)}`;
}

function compare(expected: ReadonlyArray<Record<string, unknown>>, events: readonly LeakEvent[]): string | undefined {
  const lines: string[] = [];
  if (expected.length !== events.length) {
    lines.push(`expected ${expected.length} event(s), got ${events.length}`);
    for (const event of events) lines.push(`  got: ${describeEvent(event)}`);
  }
  expected.forEach((want, index) => {
    const event = events[index];
    if (!event) return;
    for (const difference of subsetDifferences(want, event, '')) lines.push(`event ${index + 1}: ${difference}`);
  });
  return lines.length > 0 ? lines.join('\n') : undefined;
}

function runOne(ruleSet: RuleSet, test: RawRuleTest | RawGrouperTest): { events: LeakEvent[]; groups: Group[] } {
  // A fresh engine and fresh count windows per test: no state leaks from one test into the next.
  const events: LeakEvent[] = [];
  const groups: Group[] = [];
  const engine = createEngine({
    groupers: () => ruleSet.groupers,
    classifier: () => ({
      classify: (group) => {
        groups.push(group);
        return ruleSet.classifier.classify(group);
      },
    }),
    sink: (batch) => events.push(...batch),
    ordered: true,
  });
  engine.push(recordsOf(test));
  engine.flush();
  return { events, groups };
}

function compareGroups(expected: RawGrouperTest['expect'], groups: readonly Group[]): string | undefined {
  const actual = groups.map((group) => ({ first_line: group.lines[0] ?? '', line_count: group.lines.length }));
  const lines: string[] = [];
  if (expected.length !== actual.length) lines.push(`expected ${expected.length} record(s), got ${actual.length}`);
  const longest = Math.max(expected.length, actual.length);
  for (let index = 0; index < longest; index++) {
    const want = expected[index];
    const got = actual[index];
    if (want !== undefined && got !== undefined && want.first_line === got.first_line && want.line_count === got.line_count) continue;
    lines.push(`record ${index + 1}: expected ${describeRecord(want)}, got ${describeRecord(got)}`);
  }
  return lines.length > 0 ? lines.join('\n') : undefined;
}

function describeRecord(record: { first_line: string; line_count: number } | undefined): string {
  return record === undefined ? 'nothing' : `${record.line_count} line(s) from ${JSON.stringify(record.first_line.slice(0, 100))}`;
}

export async function runRuleTests(dir: string): Promise<RuleTestReport> {
  const first = await loadRuleSet(dir, { checkRegexSafety: false });
  if (!first.ruleSet) {
    return {
      passed: 0,
      failed: first.errors.length,
      results: first.errors.map((problem) => ({ rule: '', test: 'load', file: problem.file, ok: false, diff: formatProblem(problem) })),
    };
  }
  const results: RuleTestResult[] = [];
  for (const absolute of await listRuleFiles(dir)) {
    const file = displayName(absolute);
    const data = parseDocument(await readFile(absolute, 'utf8')).toJS() as RawRuleFile | null;
    const fresh = (scope: 'all' | 'fallbacks' = 'all'): RuleSet => {
      const loaded = first.ruleSet!.classifier;
      const classifier = loaded instanceof RuleClassifier ? (scope === 'all' ? loaded.withFreshState() : loaded.fallbacksOnly()) : loaded;
      return { ...first.ruleSet!, classifier };
    };
    for (const grouper of data?.groupers ?? []) {
      for (const test of grouper.tests ?? []) {
        const diff = compareGroups(test.expect, runOne(fresh(), test).groups);
        results.push({ rule: `grouper ${grouper.name}`, test: test.name, file, ok: diff === undefined, ...(diff === undefined ? {} : { diff }) });
      }
    }
    for (const rule of data?.rules ?? []) {
      // A catch-all's tests say what it does with a record no specific rule claims; a specific rule
      // added later for one of those inputs takes precedence there without failing them.
      const scope = rule.fallback === true ? 'fallbacks' : 'all';
      for (const test of rule.tests ?? []) {
        const diff = compare(test.expect, runOne(fresh(scope), test).events);
        results.push({ rule: rule.id, test: test.name, file, ok: diff === undefined, ...(diff === undefined ? {} : { diff }) });
      }
    }
  }
  const passed = results.filter((result) => result.ok).length;
  return { passed, failed: results.length - passed, results };
}
