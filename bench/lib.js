// Shared pieces of the benchmarks: a `leakwatch serve` child on a free loopback port, its metrics,
// its peak RSS read from /proc, percentiles.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { SERVE_MALLOC_ENV, SERVE_SEMI_SPACE_FLAG } from '../dist/process-settings.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = join(ROOT, 'bin', 'leakwatch.js');

/**
 * The environment the Dockerfile and `npm start` run the server in, so that the bench measures the
 * server as it is deployed (README, "Memory"): glibc's malloc keeps its mmap threshold at 128 KiB
 * instead of raising it to the size of the first large buffer freed (up to 32 MiB), after which
 * every request body, inflated body and packed batch of a few MB is carved from the heap and its
 * holes stay resident; and it keeps two arenas for all threads. LEAKWATCH_BENCH_MALLOC=default
 * measures without either.
 */
export const SERVER_ENV = process.env.LEAKWATCH_BENCH_MALLOC === 'default' ? {} : SERVE_MALLOC_ENV;
/** The node flags the server runs with, as `npm start` and the Docker image start it (README, "Memory"). */
export const SERVER_NODE_FLAGS = [SERVE_SEMI_SPACE_FLAG];

/** A fresh temporary folder and a function that removes it. */
export function tempDir(name) {
  const dir = mkdtempSync(join(tmpdir(), `leakwatch-bench-${name}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** `VmHWM` (peak resident set) and `VmRSS` of a process, in MiB, from /proc; undefined once it is gone. */
export function memoryOf(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? Number.NaN);
    return { peakMiB: kib('VmHWM') / 1024, rssMiB: kib('VmRSS') / 1024 };
  } catch {
    return undefined;
  }
}

/** Polls a process's peak RSS every `intervalMs`; the function returned stops polling and gives the highest seen (MiB). */
export function watchPeak(pid, intervalMs = 50) {
  let peakMiB = 0;
  const timer = setInterval(() => {
    const memory = memoryOf(pid);
    if (memory && memory.peakMiB > peakMiB) peakMiB = memory.peakMiB;
  }, intervalMs);
  return () => {
    clearInterval(timer);
    return peakMiB;
  };
}

/** Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`: 100 on Linux everywhere in practice). */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU seconds (user + system) a process has used, all its threads (`thread` undefined) or one
 * (its main thread: `thread` = pid), from /proc; NaN once it is gone.
 */
export function cpuSecondsOf(pid, thread) {
  try {
    const stat = readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8');
    // Fields after the command name, which may hold spaces: utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

/** Starts `leakwatch serve` and resolves once it listens and /readyz says ready. */
export async function startServe(args = []) {
  const data = tempDir('data');
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, BIN, 'serve', '--port', '0', '--host', '127.0.0.1', '--data-dir', data.dir, '--log-level', 'info', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...SERVER_ENV },
  });
  let log = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => {
    // Keep only the start-up lines: the rest of the log is not needed and would grow.
    if (log.length < 1 << 16) log += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk) => {
    if (log.length < 1 << 16) log += chunk;
  });
  let url;
  try {
    url = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`leakwatch serve did not start within 60 s:\n${log}`)), 60_000);
      const onData = () => {
        const match = /"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/.exec(log);
        if (!match) return;
        clearTimeout(timer);
        child.stdout.off('data', onData);
        resolve(match[1]);
      };
      child.stdout.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`leakwatch serve exited with ${code}:\n${log}`));
      });
    });
    const deadline = performance.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`leakwatch serve exited with ${child.exitCode ?? child.signalCode} before it was ready:\n${log}`);
      if (performance.now() > deadline) throw new Error(`leakwatch serve listened but was not ready within 60 s:\n${log}`);
      const ready = await request(`${url}/readyz`).catch(() => undefined);
      if (ready) await ready.body.dump();
      if (ready?.statusCode === 200) break;
      await sleep(100);
    }
  } catch (error) {
    // A server that did not start leaves nothing behind: neither a process nor its data folder.
    await stopChild(child);
    data.remove();
    throw error;
  }
  return {
    url,
    pid: child.pid,
    async stop() {
      await stopChild(child);
      data.remove();
    },
  };
}

/** Kills a child process and waits for its exit, unless it has exited already. */
async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** The value of one metric line `name value` of /metrics. */
export async function metric(url, name) {
  const text = await (await request(`${url}/metrics`)).body.text();
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : Number.NaN;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function percentile(values, p) {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export function round(value, digits = 0) {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}
