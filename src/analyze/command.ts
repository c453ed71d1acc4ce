/**
 * The `leakwatch analyze` command: loads the rules, runs analyze.ts over the inputs and writes
 * ndjson as records close, or the table (sorted by time) and its summary at the end. Imported only
 * when the command runs, so that `analyze` never loads the server.
 */
import { analyze, DEFAULT_ANALYZE_ZSTD_WINDOW_BYTES, type AnalyzeResult, type OutputRecord } from './analyze.js';
import { defaultThreads } from './threads.js';
import { EventSummary, TableWriter, unclassifiedSummary, type OutputFormat } from './format.js';
import { InputError } from './input.js';
import { ProgressLine } from './progress.js';
import { formatProblem, loadRuleSet } from '../rules/index.js';

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
  // The ReDoS check belongs to `rules check` and to the long-running server; an offline run
  // starts at once (the lines are still cut to 16 KiB before any regex sees them).
  const { ruleSet, errors } = await loadRuleSet(options.rulesDir, { checkRegexSafety: false });
  if (!ruleSet) {
    for (const problem of errors) process.stderr.write(formatProblem(problem) + '\n');
    process.stderr.write(`leakwatch: the rules in ${options.rulesDir} do not load; fix them (leakwatch rules check ${options.rulesDir})\n`);
    return 1;
  }

  const stdout = new Output(process.stdout);
  const table = options.format === 'table' ? new TableWriter() : undefined;
  const summary = options.format === 'table' ? new EventSummary() : undefined;
  const progress = process.stderr.isTTY ? new ProgressLine(process.stderr) : undefined;
  let events = 0;
  const started = performance.now();
  let result: AnalyzeResult;
  try {
    result = await analyze(files, ruleSet, {
      format: options.format,
      all: options.all,
      threads: options.threads ?? defaultThreads(),
      recursive: options.recursive,
      maxZstdWindowBytes: options.maxZstdWindowBytes ?? DEFAULT_ANALYZE_ZSTD_WINDOW_BYTES,
      onRecords: (records: OutputRecord[]) => {
        let text = '';
        for (const { out } of records) {
          if (out === undefined) continue;
          if (out.event) events++;
          if (out.text !== undefined) text += out.text;
          else if (out.row !== undefined) {
            table?.add(out.row);
            summary?.add(out.row);
          }
        }
        return text === '' ? undefined : stdout.write(text);
      },
      onProgress: progress === undefined ? undefined : (bytes, lines) => progress.update(bytes, lines),
      stopped: () => stdout.closed,
      ...(progress === undefined ? {} : { onStart: (totalBytes: number | undefined) => progress.start(totalBytes) }),
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
    await stdout.write(table.render() + summary.render() + unclassified);
  } else if (unclassified !== '') {
    // ndjson stays pure records: the summary goes to stderr.
    process.stderr.write(unclassified);
  }
  await stdout.end();
  if (stdout.closed) return 0;
  const seconds = (performance.now() - started) / 1000;
  process.stderr.write(
    `leakwatch: ${result.lines} lines, ${result.groupsClosed} records, ${events} events in ${seconds.toFixed(2)} s` +
      ` (${Math.round(result.lines / Math.max(seconds, 1e-6)).toLocaleString('en-US')} lines/s` +
      `${result.threads > 1 ? ` on ${result.threads} threads` : ''})` +
      (result.evictions > 0 ? `, ${result.evictions} groups closed early by the open-group cap` : '') +
      (result.malformedJsonLines > 0 ? `, ${result.malformedJsonLines} lines looked like JSON but were not (kept as text)` : '') +
      (result.classifierErrors > 0 ? `, ${result.classifierErrors} records a rule failed on (no event)` : '') +
      '\n',
  );
  if (result.singleThreadReason !== undefined && (options.threads ?? defaultThreads()) > 1) {
    process.stderr.write(`leakwatch: analyzed on one thread: ${result.singleThreadReason}\n`);
  }
  return 0;
}

/**
 * stdout with the pipe's back-pressure respected, and a reader that goes away (EPIPE: `| head`)
 * taken as the end of the run rather than an error.
 */
class Output {
  closed = false;

  constructor(private readonly stream: NodeJS.WriteStream) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED') {
        this.closed = true;
        return;
      }
      throw error;
    });
  }

  write(text: string): Promise<void> | undefined {
    if (this.closed) return undefined;
    if (this.stream.write(text)) return undefined;
    return new Promise<void>((resolve) => {
      const done = (): void => {
        this.stream.off('drain', done);
        this.stream.off('error', done);
        this.stream.off('close', done);
        resolve();
      };
      this.stream.once('drain', done);
      this.stream.once('error', done);
      this.stream.once('close', done);
    });
  }

  /** Waits until what was written has left (or the reader has gone). */
  end(): Promise<void> {
    if (this.closed || this.stream.writableLength === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.stream.write('', () => resolve()));
  }
}
