/**
 * The journald corpus the delivery tests post: the real two-host Netty export and a generated
 * multi-host linkerd corpus (bench/corpus.js), as `journalctl -o json` entries with journald's
 * clock and cursor, and the bodies Fluent Bit and Vector make of them.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { generateCorpus, journalEntry } from '../../bench/corpus.js';
import type { GroupedRecord } from '../../src/engine/grouped-record.js';
import { JOURNAL_JSON } from './netty-fixtures.js';
import type { JournalEntry } from './shipper-records.js';

const BIN = fileURLToPath(new URL('../../bin/leakwatch.js', import.meta.url));

export { fluentBitRecord, vectorRecord, type JournalEntry } from './shipper-records.js';

/** `journalctl -o json` entries: the Netty export as it is, then the generated corpus with journald's clock and cursor. */
export function journalEntries(options: { lines?: number; seed?: number } = {}): JournalEntry[] {
  const netty = readFileSync(JOURNAL_JSON, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as JournalEntry);
  // The corpus is dated 2017-11-01; moved to just after the export (2024-11-01) so that both are
  // one stretch of time (incidents left quiet for years would resolve and age out).
  const shiftMs = Date.UTC(2024, 10, 1, 12, 0, 0) - Date.UTC(2017, 10, 1, 11, 59, 32);
  const generated: JournalEntry[] = [];
  let index = 0;
  for (const entry of generateCorpus({ lines: options.lines ?? 4000, seed: options.seed ?? 2247 })) generated.push(journalEntry({ ...entry, time: entry.time + shiftMs }, index++));
  return [...netty, ...generated];
}

/** mulberry32: the same shuffles on every run. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let start = 0; start < items.length; start += size) out.push(items.slice(start, start + size));
  return out;
}

/**
 * What `leakwatch analyze --format ndjson` finds offline in journal entries or in journald text
 * (`all`: every grouped record, as `--all` lists them): the result a live run must give. The
 * input is written to a file in `work`.
 */
export async function analyzeOffline(input: readonly JournalEntry[] | string, rulesDir: string, work: string, options: { all?: boolean } = {}): Promise<GroupedRecord[]> {
  const file = join(work, typeof input === 'string' ? 'journal.txt' : 'journal.json');
  writeFileSync(file, typeof input === 'string' ? input : input.map((entry) => JSON.stringify(entry)).join('\n') + '\n');
  const args = [BIN, 'analyze', '--format', 'ndjson', '--rules', rulesDir, ...(options.all === true ? ['--all'] : []), file];
  const { stdout } = await promisify(execFile)(process.execPath, args, { maxBuffer: 256 << 20 });
  return stdout
    .trim()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as GroupedRecord);
}
