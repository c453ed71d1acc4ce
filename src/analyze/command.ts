/**
 * The `leakwatch analyze` command: loads the rules, runs analyze.ts over the inputs and writes
 * ndjson as records close, or the table (sorted by time) and its summary at the end. Imported only
 * when the command runs, so that `analyze` never loads the server.
 */
import { writeSync } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import { analyze, DEFAULT_ANALYZE_ZSTD_WINDOW_BYTES, type AnalyzeResult } from './analyze.js';
import { takeShardWorkers } from './shard-workers.js';
import { defaultThreads } from './threads.js';
import { EventSummary, TableWriter, unclassifiedSummary, type OutputFormat } from './format.js';
import { InputError } from './input.js';
import { ProgressLine } from './progress.js';
import { homedir } from 'node:os';
import { defaultCacheDir } from '../rules/checked-cache.js';
import { loadRuleSet } from '../rules/load.js';
import { formatProblem } from '../rules/problems.js';

export interface AnalyzeCommandOptions {
  format: OutputFormat;
  all: boolean;
  rulesDir: string;
  threads: number | undefined;
  recursive: boolean;
  maxZstdWindowBytes: number | undefined;
}

/** Runs the command; returns the exit code. */
export async function runAnalyzeCommand(files: readonly string[], options: AnalyzeCommandOptions): Promise<number> {
  const threads = options.threads ?? defaultThreads();
  // Started by the launcher, or now: they boot while the rules load.
  const workers = takeShardWorkers(threads);
  try {
    return await analyzeCommand(files, options, threads, workers);
  } finally {
    // The run took what it needed (and ended them); the others, if any, end here.
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
}

async function analyzeCommand(files: readonly string[], options: AnalyzeCommandOptions, threads: number, workers: Worker[]): Promise<number> {
  // The ReDoS check belongs to `rules check` and to the long-running server; an offline run
  // starts at once (the lines are still cut to 16 KiB before any regex sees them).
  const { ruleSet, errors } = await loadRuleSet(options.rulesDir, { checkRegexSafety: false, cacheDir: defaultCacheDir(process.env, homedir()) });
  if (!ruleSet) {
    for (const problem of errors) process.stderr.write(formatProblem(problem) + '\n');
    process.stderr.write(`leakwatch: the rules in ${options.rulesDir} do not load; fix them (leakwatch rules check ${options.rulesDir})\n`);
    return 1;
  }

  const stdout = new StdoutWriter();
  const table = options.format === 'table' ? new TableWriter() : undefined;
  const summary = options.format === 'table' ? new EventSummary() : undefined;
  const progress = process.stderr.isTTY ? new ProgressLine(process.stderr) : undefined;
  const started = performance.now();
  let result: AnalyzeResult;
  try {
    result = await analyze(files, ruleSet, {
      format: options.format,
      all: options.all,
      threads,
      // One shard on a worker thread too: there its heap is bounded.
      workerForOne: true,
      workers,
      recursive: options.recursive,
      maxZstdWindowBytes: options.maxZstdWindowBytes ?? DEFAULT_ANALYZE_ZSTD_WINDOW_BYTES,
      sink: {
        text: (bytes) => stdout.write(bytes),
        row: (row) => {
          table?.add(row);
          summary?.add(row);
        },
      },
      onStart: (totalBytes) => progress?.start(totalBytes),
      onProgress: progress === undefined ? undefined : (bytes, lines) => progress.update(bytes, lines),
      stopped: () => stdout.closed,
    });
  } catch (error) {
    progress?.clear();
    if (error instanceof InputError) {
      process.stderr.write(`leakwatch: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  progress?.clear();
  // The reader of the output went away (`| head`): nothing more to say to anyone.
  if (result.stopped || stdout.closed) return 0;

  const unclassified = unclassifiedSummary(result.unclassifiedTraces);
  if (table !== undefined && summary !== undefined) {
    stdout.write(Buffer.from(table.render() + summary.render() + unclassified));
    if (stdout.closed) return 0;
  } else if (unclassified !== '') {
    // ndjson stays pure records: the summary goes to stderr.
    process.stderr.write(unclassified);
  }
  const seconds = (performance.now() - started) / 1000;
  process.stderr.write(
    `leakwatch: ${result.lines} lines, ${result.groupsClosed} records, ${result.events} events in ${seconds.toFixed(2)} s` +
      ` (${Math.round(result.lines / Math.max(seconds, 1e-6)).toLocaleString('en-US')} lines/s` +
      `${result.threads > 1 ? ` on ${result.threads} threads` : ''})` +
      (result.evictions > 0 ? `, ${result.evictions} groups closed early by the open-group cap` : '') +
      (result.malformedJsonLines > 0 ? `, ${result.malformedJsonLines} lines looked like JSON but were not (kept as text)` : '') +
      (result.classifierErrors > 0 ? `, ${result.classifierErrors} records a rule failed on (no event)` : '') +
      '\n',
  );
  if (result.bootTimeLines > 0) {
    process.stderr.write(
      `leakwatch: ${result.bootTimeLines} lines were journalctl -o short-monotonic (or short-delta) output: time since boot, no wall-clock time; ` +
        'their events are dated by their log headers, else by the time of reading (journalctl -o short-iso-precise or -o json keep the date)\n',
    );
  }
  if (result.singleThreadReason !== undefined && threads > 1) {
    process.stderr.write(`leakwatch: analyzed on one thread: ${result.singleThreadReason}\n`);
  }
  return 0;
}

/**
 * Writes to stdout (fd 1) as they come, blocking while the reader is slow: the pipe's back-pressure
 * holds the reading back. A reader that goes away (EPIPE: `| head`) ends the run quietly.
 */
class StdoutWriter {
  closed = false;
  private readonly pause = new Int32Array(new SharedArrayBuffer(4));

  write(bytes: Uint8Array): void {
    let offset = 0;
    while (offset < bytes.length && !this.closed) {
      try {
        offset += writeSync(1, bytes, offset, bytes.length - offset);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') this.closed = true;
        // A terminal or pipe set non-blocking by someone else: wait a moment for room.
        else if (code === 'EAGAIN') Atomics.wait(this.pause, 0, 0, 1);
        else throw error;
      }
    }
  }
}
