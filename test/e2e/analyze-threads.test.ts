/**
 * analyze on several threads gives exactly the output of one engine over all lines: the same
 * records, byte for byte, in the same order (ndjson, --all, the table), on the real fixtures and on
 * generated corpora (bench/corpus.js) with process restarts, raw files and JSON lines mixed in.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCorpus, journalEntry, journaldLine } from '../../bench/corpus.js';
import { createEngine } from '../../src/engine/create-engine.js';
import { unclassifiedRecord } from '../../src/engine/grouped-record.js';
import { recordFromTextLine } from '../../src/ingest/journald-short.js';
import type { LogRecord } from '../../src/ingest/record.js';
import { loadRuleSet } from '../../src/rules/load.js';
import { JOURNAL_JSON, JOURNAL_TEXT, NETTY_DIR } from '../helpers/netty-fixtures.js';
import { SHIPPED_RULES } from '../helpers/rules-dir.js';

const BIN = fileURLToPath(new URL('../../bin/leakwatch.js', import.meta.url));
const JOURNALD = new URL('../fixtures/journald/', import.meta.url);

function analyze(args: string[]): string {
  const result = spawnSync(process.execPath, [BIN, 'analyze', ...args], { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024, timeout: 120_000 });
  expect(result.status, result.stderr).toBe(0);
  return result.stdout;
}

let dir: string;
let corpus: string;
let restarts: string;
let mixed: string[];
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'leakwatch-threads-'));
  // 8 linkerd processes on 4 hosts interleaved line by line (bench/corpus.js).
  corpus = join(dir, 'corpus.log');
  writeFileSync(corpus, [...generateCorpus({ lines: 60_000, seed: 1690 })].map(journaldLine).join('\n') + '\n');
  // The same hosts, then every process restarted under a new pid part way (its open record closes then).
  restarts = join(dir, 'restarts.log');
  const lines: string[] = [];
  for (const entry of generateCorpus({ lines: 30_000, processes: 12, hosts: 3, seed: 2132 })) lines.push(journaldLine(entry));
  for (const entry of generateCorpus({ lines: 30_000, processes: 12, hosts: 3, seed: 2292 })) lines.push(journaldLine({ ...entry, pid: String(Number(entry.pid) + 1), time: entry.time + 60_000 }));
  writeFileSync(restarts, lines.join('\n') + '\n');
  // JSON entries and raw lines in one file, then a raw file: streams by origin and by file name.
  const json = join(dir, 'mixed.log');
  const mixedLines: string[] = [];
  let index = 0;
  for (const entry of generateCorpus({ lines: 20_000, processes: 5, hosts: 5, seed: 1486 })) {
    mixedLines.push(index % 3 === 0 ? JSON.stringify(journalEntry(entry, index)) : journaldLine(entry));
    index++;
  }
  writeFileSync(json, mixedLines.join('\n') + '\n');
  mixed = [json, fileURLToPath(new URL('edge-a.linkerd.log', NETTY_DIR)), fileURLToPath(JOURNAL_JSON)];
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('analyze --threads N: the output of one thread, byte for byte', () => {
  const cases = (): Array<[string, string[]]> => [
    ['two-hosts journal text', [fileURLToPath(JOURNAL_TEXT)]],
    ['two-hosts journal json', [fileURLToPath(JOURNAL_JSON)]],
    ['raw linkerd files', ['edge-a.linkerd.log', 'edge-b.linkerd.log'].map((name) => fileURLToPath(new URL(name, NETTY_DIR)))],
    ['journalctl -o short-full and -o export', [fileURLToPath(new URL('two-hosts.short-full.txt', JOURNALD)), fileURLToPath(new URL('two-hosts.export.zst', JOURNALD))]],
    ['generated corpus', [corpus]],
    ['processes restarted under new pids', [restarts]],
    ['JSON and text lines mixed, raw files', mixed],
  ];

  it.each([['ndjson'], ['ndjson --all'], ['table'], ['table --all']])('%s', { timeout: 240_000 }, (format) => {
    for (const [name, files] of cases()) {
      const args = ['--format', ...format.split(' '), ...files];
      const one = analyze(['--threads', '1', ...args]);
      expect(one.length, name).toBeGreaterThan(0);
      for (const threads of ['2', '3']) expect(analyze(['--threads', threads, ...args]), `${name} on ${threads} threads`).toBe(one);
    }
  });
});

describe('count thresholds that count across streams', () => {
  it('keep the run on one thread (every event of a count window in one place), and say so', () => {
    const rules = mkdtempSync(join(tmpdir(), 'leakwatch-rules-'));
    try {
      cpSync(SHIPPED_RULES, rules, { recursive: true });
      const file = join(rules, 'netty.yaml');
      const text = readFileSync(file, 'utf8');
      // The direct-memory rule's 5-in-10-minutes threshold counted over every host and service.
      expect(text).toContain('      key: [rule, host, service]');
      writeFileSync(file, text.replace('      key: [rule, host, service]', '      key: [rule]'));
      const run = (threads: string): { stdout: string; stderr: string } => {
        const result = spawnSync(process.execPath, [BIN, 'analyze', '--rules', rules, '--threads', threads, '--format', 'ndjson', corpus], { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
        expect(result.status, result.stderr).toBe(0);
        return { stdout: result.stdout, stderr: result.stderr };
      };
      const two = run('2');
      expect(two.stderr).toContain('leakwatch: analyzed on one thread: a count threshold is keyed on [rule], without host and service');
      expect(two.stdout).toBe(run('1').stdout);
    } finally {
      rmSync(rules, { recursive: true, force: true });
    }
  });
});

describe('analyze gives what one engine over every line gives (the single-threaded analyze)', () => {
  /** The engine over a journal text file's lines, in order, as analyze ran before it had shards. */
  async function oneEngine(file: string, all: boolean): Promise<string> {
    const { ruleSet } = await loadRuleSet(SHIPPED_RULES, { checkRegexSafety: false });
    if (!ruleSet) throw new Error('the shipped rules do not load');
    const out: string[] = [];
    const engine = createEngine({
      groupers: () => ruleSet.groupers,
      classifier: () => ruleSet.classifier,
      ordered: true,
      sink: (events) => {
        for (const event of events) out.push(JSON.stringify(event));
      },
      ...(all ? { unclassified: (group) => void out.push(JSON.stringify(unclassifiedRecord(group))) } : {}),
    });
    const receivedAt = Date.now();
    let batch: LogRecord[] = [];
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const record = recordFromTextLine(line, receivedAt);
      if (record !== null) batch.push(record);
      if (batch.length === 8192) {
        engine.push(batch);
        batch = [];
      }
    }
    engine.push(batch);
    engine.flush();
    return out.map((line) => `${line}\n`).join('');
  }

  it.each([
    ['the generated corpus', false],
    ['the generated corpus, --all', true],
    ['restarted processes, --all', true],
  ])('%s', async (name, all) => {
    const file = name.startsWith('restarted') ? restarts : corpus;
    const expected = await oneEngine(file, all);
    expect(expected.length).toBeGreaterThan(0);
    expect(analyze(['--threads', '2', '--format', 'ndjson', ...(all ? ['--all'] : []), file])).toBe(expected);
  });
});
