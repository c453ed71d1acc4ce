// `leakwatch analyze FILE --format ndjson > /dev/null` as a child process on the generated
// journald file, three runs alternated with bench/bare-reader.js on the same file: the median
// run's wall time (start-up included), the highest peak RSS (VmHWM, polled from /proc), and the
// share of the bare reader's rate it reaches.
import { spawn } from 'node:child_process';
import { createWriteStream, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { generateCorpus, journaldLine } from './corpus.js';
import { BIN, percentile, ROOT, round, watchPeak } from './lib.js';

const BARE_READER = join(ROOT, 'bench', 'bare-reader.js');

export async function writeCorpus(path, lines) {
  const out = createWriteStream(path);
  let chunk = '';
  for (const entry of generateCorpus({ lines })) {
    chunk += journaldLine(entry) + '\n';
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await new Promise((resolve) => out.once('drain', resolve));
      chunk = '';
    }
  }
  out.write(chunk);
  await new Promise((resolve) => out.end(resolve));
}

/** Runs of each, alternated: the machine's speed drifts within seconds, and one run can fall in a slow stretch. */
const RUNS = 3;

/** Runs `args` as a child process with stdout to /dev/null: wall seconds (start-up included) and peak RSS (MiB). */
async function timedChild(args) {
  const devNull = openSync('/dev/null', 'w');
  try {
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, args, { stdio: ['ignore', devNull, 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
    // Every 10 ms: a run lasts about a second and a half.
    const peak = watchPeak(child.pid, 10);
    const code = await new Promise((resolve) => child.once('exit', resolve));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const peakMiB = peak();
    if (code !== 0) throw new Error(`${args.join(' ')} exited with ${code}: ${stderr}`);
    return { seconds, peakMiB };
  } finally {
    closeSync(devNull);
  }
}

export async function benchAnalyze({ lines, dir }) {
  const file = join(dir, 'corpus.log');
  await writeCorpus(file, lines);
  const runs = [];
  const baselines = [];
  for (let run = 0; run < RUNS; run++) {
    baselines.push(await timedChild([BARE_READER, file]));
    runs.push(await timedChild([BIN, 'analyze', '--format', 'ndjson', file]));
  }
  const seconds = percentile(runs.map((run) => run.seconds), 50);
  const baselineSeconds = percentile(baselines.map((run) => run.seconds), 50);
  return {
    // The median run's rate; the peak is the highest of all runs.
    analyze_lines_per_s: Math.round(lines / seconds),
    analyze_rss_mb: Math.round(Math.max(...runs.map((run) => run.peakMiB))),
    analyze_seconds: round(seconds, 2),
    analyze_seconds_spread: round(Math.max(...runs.map((run) => run.seconds)) - Math.min(...runs.map((run) => run.seconds)), 2),
    // Machines (and this one from minute to minute) differ: the rate of bench/bare-reader.js on the
    // same file in the same run, and the share of it analyze reaches.
    analyze_baseline_lines_per_s: Math.round(lines / baselineSeconds),
    analyze_vs_baseline: round(baselineSeconds / seconds, 3),
  };
}
