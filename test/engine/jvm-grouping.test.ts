/**
 * One logged record = one group, on real public JVM output of many layouts, through the production
 * path: lines read as `leakwatch analyze` reads text, grouped with the shipped groupers. The
 * fixtures (test/fixtures/jvm/) cite their public sources.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeFiles } from '../../src/analyze/analyze.js';
import type { GroupedRecord } from '../../src/engine/grouped-record.js';
import { recordFromTextLine } from '../../src/ingest/journald-short.js';
import { loadRuleSet, type RuleSet } from '../../src/rules/index.js';
import { DETECT_EXCEPTIONS_SAMPLES, JAVA_EXC_PART2, JAVA_EXC_PART2_AFTER_RESET_SAMPLE } from '../fixtures/jvm/detect-exceptions.js';
import {
  EDGE_CASE_SAMPLES,
  LINKERD_FAILURE_FLAGS_REMOTE_INFO,
  LINKERD_RESET_CANCEL_AMONG_DEBUG_LINES,
  MIXED_LOG4J2_WITH_PRINTLN_LINE,
  MIXED_WARN_LINES_PLAIN_LINE_THEN_HEADERLESS_TRACE,
} from '../fixtures/jvm/edge-cases.js';
import { LAYOUT_SAMPLES, LINKERD_LOG4J_NAMERD_OOM_VIA_LOG_VIEWER } from '../fixtures/jvm/layouts.js';
import type { LogSample } from '../fixtures/jvm/sample.js';

const BIN = fileURLToPath(new URL('../../bin/leakwatch.js', import.meta.url));
const READ_AT = Date.UTC(2024, 0, 1);

/** Samples whose text is not what a program wrote, with why; each is covered by a sample that is. */
const NOT_LOG_OUTPUT = new Map<LogSample, string>([
  [LINKERD_LOG4J_NAMERD_OOM_VIA_LOG_VIEWER, 'each line carries a log viewer column ("16:05:30\\t\\t") before the journald prefix'],
  [LINKERD_FAILURE_FLAGS_REMOTE_INFO, 'a terminal pager wrapped the lines ("$" and a lost character at each wrap)'],
]);

/** A record as the fixtures state it: its first line as the engine sees it (journald prefix removed) and its line count. */
function expected(sample: LogSample): Array<[number, string]> {
  return sample.records.map((record) => [record.lineCount, recordFromTextLine(record.firstLine, READ_AT)?.message ?? record.firstLine]);
}

async function analyzeLines(ruleSet: RuleSet, lines: readonly string[]): Promise<GroupedRecord[]> {
  const out: GroupedRecord[] = [];
  await analyzeFiles(['-'], ruleSet, (records) => void out.push(...records), { stdin: Readable.from([lines.join('\n') + '\n']), all: true });
  return out;
}

let ruleSet: RuleSet;
beforeAll(async () => {
  const loaded = await loadRuleSet('rules', { checkRegexSafety: false });
  if (!loaded.ruleSet) throw new Error('shipped rules do not load');
  ruleSet = loaded.ruleSet;
});

describe('every logged record is one group (analyze --all over public JVM output)', () => {
  const samples = [...LAYOUT_SAMPLES, ...EDGE_CASE_SAMPLES, ...DETECT_EXCEPTIONS_SAMPLES].filter(
    (sample) => !NOT_LOG_OUTPUT.has(sample) && sample !== JAVA_EXC_PART2_AFTER_RESET_SAMPLE,
  );
  it.each(samples.map((sample) => [sample.name, sample] as const))('%s', async (_name, sample) => {
    const records = await analyzeLines(ruleSet, sample.lines);
    expect(records.map((record) => [record.line_count, record.message])).toEqual(expected(sample));
  });

  it('the excluded samples are pasted renderings, not log output', () => {
    for (const [sample, why] of NOT_LOG_OUTPUT) expect(sample.lines.length, why).toBeGreaterThan(0);
  });

  it('frames without their exception line stay one record (detect-exceptions emits them one by one after a reset)', async () => {
    // A trace tail whose head was lost (a size cut upstream, a shipper that dropped a batch) is still one trace to an SRE.
    const records = await analyzeLines(ruleSet, JAVA_EXC_PART2);
    expect(records.map((record) => record.line_count)).toEqual([JAVA_EXC_PART2.length]);
  });
});

describe('the issue cases, each on public output', () => {
  it('println output between headered records is a record of its own, never swallowed (pulsar#11413)', async () => {
    const records = await analyzeLines(ruleSet, MIXED_LOG4J2_WITH_PRINTLN_LINE.lines);
    expect(records.map((record) => record.line_count)).toEqual([1, 1, 1, 1, 1, 1]);
  });

  it('a plain line then a printStackTrace after an ERROR line: three records (apereo/cas#2111)', async () => {
    const records = await analyzeLines(ruleSet, MIXED_WARN_LINES_PLAIN_LINE_THEN_HEADERLESS_TRACE.lines);
    expect(records.slice(-3).map((record) => [record.line_count, record.exception?.class ?? null])).toEqual([
      [1, null],
      [1, null],
      [6, 'org.hyperic.sigar.SigarException'],
    ]);
  });

  it("linkerd's frameless Reset.Cancel after a DEBUG line joins it (linkerd#2247)", async () => {
    const records = await analyzeLines(ruleSet, LINKERD_RESET_CANCEL_AMONG_DEBUG_LINES.lines);
    const withCancel = records.find((record) => record.text.includes('\nReset.Cancel'));
    expect(withCancel?.line_count).toBe(2);
  });
});

describe('the Java cases of fluent-plugin-detect-exceptions through the real CLI', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'leakwatch-detect-exceptions-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('`leakwatch analyze --all --format ndjson` groups each as that project expects (one file per case, one stream each)', async () => {
    const files = DETECT_EXCEPTIONS_SAMPLES.filter((sample) => sample !== JAVA_EXC_PART2_AFTER_RESET_SAMPLE).map((sample, index) => {
      const file = join(dir, `case-${String(index).padStart(2, '0')}.log`);
      writeFileSync(file, sample.lines.join('\n') + '\n');
      return { file, sample };
    });
    const { stdout } = await promisify(execFile)(process.execPath, [BIN, 'analyze', '--all', '--format', 'ndjson', ...files.map((f) => f.file)], {
      maxBuffer: 64 * 1024 * 1024,
    });
    const records = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as GroupedRecord);
    for (const { file, sample } of files) {
      const mine = records.filter((record) => record.service === file.slice(dir.length + 1));
      expect(mine.map((record) => [record.line_count, record.message]), sample.name).toEqual(expected(sample));
    }
  });
});
