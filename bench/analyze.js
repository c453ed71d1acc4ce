// `leakwatch analyze FILE --format ndjson > /dev/null` as a child process on the generated
// journald file: wall time including start-up, and its peak RSS (VmHWM, polled from /proc).
import { spawn } from 'node:child_process';
import { createWriteStream, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { generateCorpus, journaldLine } from './corpus.js';
import { BIN, memoryOf } from './lib.js';

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

export async function benchAnalyze({ lines, dir }) {
  const file = join(dir, 'corpus.log');
  await writeCorpus(file, lines);
  const devNull = openSync('/dev/null', 'w');
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, [BIN, 'analyze', '--format', 'ndjson', file], { stdio: ['ignore', devNull, 'pipe'] });
  let peakMiB = 0;
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
  const poll = setInterval(() => {
    const memory = memoryOf(child.pid);
    if (memory && memory.peakMiB > peakMiB) peakMiB = memory.peakMiB;
  }, 10);
  const code = await new Promise((resolve) => child.once('exit', resolve));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(poll);
  closeSync(devNull);
  if (code !== 0) throw new Error(`analyze exited with ${code}: ${stderr}`);
  return { analyze_lines_per_s: Math.round(lines / seconds), analyze_rss_mb: Math.round(peakMiB), analyze_seconds: Number(seconds.toFixed(2)) };
}
