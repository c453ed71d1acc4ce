/**
 * `leakwatch rules test`: runs the `tests:` embedded in the rules through a real engine loaded
 * with the whole rule set of the folder (so tags from other rules are what production would show),
 * and compares the events with `expect` (subset match, numbers with 1e-3 relative tolerance).
 */
import { parseDocument } from 'yaml';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { LeakEvent } from '../engine/event.js';
import { createEngine } from '../engine/create-engine.js';
import { parseJournalPrefix } from '../ingest/journald-prefix.js';
import { streamKeyOf, type LogRecord } from '../ingest/record.js';
import { RuleClassifier } from './classifier.js';
import { loadRuleSet, type RuleSet } from './load.js';
import type { RawRuleFile, RawRuleTest } from './model.js';
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

/** Test inputs carry no dates of their own; a fixed clock keeps event ids and windows reproducible. */
const TEST_EPOCH_MS = Date.UTC(2024, 0, 1);

function recordsOf(test: RawRuleTest): LogRecord[] {
  const host = test.stream?.host ?? 'test-host';
  const service = test.stream?.service ?? 'linkerd';
  const pid = String(test.stream?.pid ?? '1');
  const lines = test.input.replace(/\n$/, '').split('\n');
  return lines.map((line, index) => {
    const time = TEST_EPOCH_MS + index;
    const prefix = parseJournalPrefix(line, TEST_EPOCH_MS);
    if (prefix) {
      const recordHost = prefix.host || host;
      const recordService = prefix.service || service;
      const recordPid = prefix.pid || pid;
      return {
        time: prefix.timeMs ?? time,
        host: recordHost,
        service: recordService,
        pid: recordPid,
        stream: streamKeyOf(recordHost, recordService, recordPid),
        message: line.slice(prefix.messageStart),
      };
    }
    return { time, host, service, pid, stream: streamKeyOf(host, service, pid), message: line };
  });
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

function runOne(ruleSet: RuleSet, test: RawRuleTest): LeakEvent[] {
  // A fresh engine and fresh count windows per test: no state leaks from one test into the next.
  const events: LeakEvent[] = [];
  const engine = createEngine({ groupers: () => ruleSet.groupers, classifier: () => ruleSet.classifier, sink: (batch) => events.push(...batch) });
  engine.push(recordsOf(test));
  engine.flush();
  return events;
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
  const files = [...new Set(first.ruleSet.rules.map((rule) => rule.file))];
  for (const file of files) {
    const absolute = path.resolve(file);
    const data = parseDocument(await readFile(absolute, 'utf8')).toJS() as RawRuleFile | null;
    for (const rule of data?.rules ?? []) {
      for (const test of rule.tests ?? []) {
        const classifier = first.ruleSet.classifier instanceof RuleClassifier ? first.ruleSet.classifier.withFreshState() : first.ruleSet.classifier;
        const events = runOne({ ...first.ruleSet, classifier }, test);
        const diff = compare(test.expect, events);
        results.push({ rule: rule.id, test: test.name, file, ok: diff === undefined, ...(diff === undefined ? {} : { diff }) });
      }
    }
  }
  const passed = results.filter((result) => result.ok).length;
  return { passed, failed: results.length - passed, results };
}
