// The HTTP path end to end: Vector-like JSON array bodies of 1–10 MB (gzip and not) posted over two
// connections to a `leakwatch serve` child (ingest journal on), counted until every line has gone
// into the engine (its /metrics: grouped or held for the reorder window; not the 200s), with the CPU per line
// that took (the server's and the bare sink's, from /proc). Then the answer latency at
// half that rate, the RSS with many streams each holding an open group, and RSS drift over a long run.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { gzipSync } from 'node:zlib';
import { Pool } from 'undici';
import { generateCorpus, journalEntry } from './corpus.js';
import { cpuSecondsOf, memoryOf, metric, percentile, ROOT, round, sleep, startServe, watchPeak } from './lib.js';

const BODY_MIB = [1, 2.5, 5, 7.5, 10];

function isoMicros(us) {
  return `${new Date(Math.floor(us / 1000)).toISOString().slice(0, -1)}${String(us % 1000).padStart(3, '0')}Z`;
}

/** A record as Vector's journald source and http sink (codec json) send it. */
function vectorRecord(entry, index) {
  const journal = journalEntry(entry, index);
  const us = Number(journal.__REALTIME_TIMESTAMP);
  return {
    SYSLOG_IDENTIFIER: journal.SYSLOG_IDENTIFIER,
    _PID: journal._PID,
    _TRANSPORT: 'stdout',
    __REALTIME_TIMESTAMP: journal.__REALTIME_TIMESTAMP,
    host: journal._HOSTNAME,
    message: journal.MESSAGE,
    source_type: 'journald',
    timestamp: isoMicros(us),
  };
}

/** Bodies of the corpus's first `lines` lines, each 1–10 MB, every other one gzip. */
export function buildBodies(lines, { processes = 8, hosts = 4, seed = 1690, offsetMs = 0, traceShare } = {}) {
  const bodies = [];
  let parts = [];
  let bytes = 0;
  let count = 0;
  let index = 0;
  const flush = () => {
    if (count === 0) return;
    const json = Buffer.from(`[${parts.join(',')}]`);
    const gzip = bodies.length % 2 === 1;
    bodies.push({ body: gzip ? gzipSync(json, { level: 1 }) : json, gzip, lines: count });
    parts = [];
    bytes = 0;
    count = 0;
  };
  for (const entry of generateCorpus({ lines, processes, hosts, seed, ...(traceShare === undefined ? {} : { traceShare }) })) {
    const text = JSON.stringify(vectorRecord({ ...entry, time: entry.time + offsetMs }, index++));
    parts.push(text);
    bytes += text.length + 1;
    count++;
    if (bytes >= (BODY_MIB[bodies.length % BODY_MIB.length] ?? 1) * 1024 * 1024) flush();
  }
  flush();
  return bodies;
}

/** Posts the bodies over `connections` connections; 503 is retried after its Retry-After. Returns per-request latencies (ms). */
export async function post(pool, bodies, { connections = 2, pace } = {}) {
  const latencies = [];
  let next = 0;
  const started = performance.now();
  let sentLines = 0;
  const worker = async () => {
    for (;;) {
      const item = bodies[next++];
      if (!item) return;
      if (pace) {
        // Half the measured rate: the body may leave when the lines before it had their time.
        const due = started + (sentLines / pace) * 1000;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
      }
      sentLines += item.lines;
      for (;;) {
        const sent = performance.now();
        const response = await pool.request({
          path: '/ingest',
          method: 'POST',
          body: item.body,
          headers: { 'content-type': 'application/json', ...(item.gzip ? { 'content-encoding': 'gzip' } : {}) },
        });
        await response.body.dump();
        if (response.statusCode === 200) {
          latencies.push(performance.now() - sent);
          break;
        }
        if (response.statusCode !== 503) throw new Error(`ingest answered ${response.statusCode}`);
        await sleep(Number(response.headers['retry-after'] ?? 1) * 1000);
      }
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  return latencies;
}

/** Waits until the engine has grouped `lines` lines (past the reorder window). */
async function grouped(url, lines) {
  for (;;) {
    if ((await metric(url, 'leakwatch_engine_lines_total')) >= lines) return;
    await sleep(200);
  }
}

/**
 * Waits until `lines` lines have gone through the queue into the engine: grouped, or held for the
 * reorder window (a fixed 2 s wait that is latency, not work).
 */
async function taken(url, lines) {
  for (;;) {
    const [groupedLines, held] = await Promise.all([metric(url, 'leakwatch_engine_lines_total'), metric(url, 'leakwatch_engine_held_records')]);
    if (groupedLines + held >= lines) return;
    await sleep(100);
  }
}

/** The same bodies, posted the same way, to bench/bare-sink.js: lines/s of reading, gunzipping and parsing them and nothing else, and its CPU per line. */
async function bareSinkRate(bodies, lines) {
  const child = spawn(process.execPath, [join(ROOT, 'bench', 'bare-sink.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = await new Promise((resolve, reject) => {
      child.stdout.setEncoding('utf8').once('data', (text) => resolve(text.trim()));
      child.once('exit', (code) => reject(new Error(`bench/bare-sink.js exited with ${code}`)));
    });
    const pool = new Pool(url, { connections: 2 });
    try {
      const cpuBefore = cpuSecondsOf(child.pid);
      const started = performance.now();
      await post(pool, bodies);
      const seconds = (performance.now() - started) / 1000;
      return { linesPerSecond: Math.round(lines / seconds), cpuUsPerLine: ((cpuSecondsOf(child.pid) - cpuBefore) / lines) * 1e6 };
    } finally {
      await pool.close();
    }
  } finally {
    child.kill('SIGKILL');
  }
}

export async function benchHttp({ lines }) {
  const bodies = buildBodies(lines);
  const baseline = await bareSinkRate(bodies, lines);
  const server = await startServe(['--max-body-bytes', '32MiB']);
  const pool = new Pool(server.url, { connections: 2 });
  try {
    const peak = watchPeak(server.pid);
    const busyBefore = await metric(server.url, 'leakwatch_event_loop_busy_seconds_total');
    const cpuBefore = cpuSecondsOf(server.pid);
    const mainCpuBefore = cpuSecondsOf(server.pid, server.pid);
    const started = performance.now();
    await post(pool, bodies);
    await taken(server.url, lines);
    const seconds = (performance.now() - started) / 1000;
    const cpu = cpuSecondsOf(server.pid) - cpuBefore;
    const mainCpu = cpuSecondsOf(server.pid, server.pid) - mainCpuBefore;
    const busy = (await metric(server.url, 'leakwatch_event_loop_busy_seconds_total')) - busyBefore;
    await grouped(server.url, lines);
    const eventLoopP99 = await metric(server.url, 'leakwatch_event_loop_delay_p99_seconds');
    return {
      http_lines_per_s: Math.round(lines / seconds),
      // Machines differ: what share of a bare parse-and-drop sink's rate, on the same bodies in the same run.
      http_baseline_lines_per_s: baseline.linesPerSecond,
      http_vs_baseline: round(lines / seconds / baseline.linesPerSecond, 2),
      // What the rate costs: the server's CPU (every thread) per line, against the bare sink's, and
      // the share of the machine's cores it took (near 1, the rate is what the cores allow).
      http_server_cpu_us_per_line: round((cpu / lines) * 1e6, 2),
      http_main_cpu_us_per_line: round((mainCpu / lines) * 1e6, 2),
      http_baseline_cpu_us_per_line: round(baseline.cpuUsPerLine, 2),
      http_server_cpu_share: round(cpu / seconds / cpus().length, 2),
      http_rss_mb: Math.round(peak()),
      event_loop_p99_ms: round(eventLoopP99 * 1000, 1),
      // The share of the run the main thread was busy: near 1, it is what bounds the rate.
      http_main_busy_share: round(busy / seconds, 2),
      http_bodies: bodies.length,
    };
  } finally {
    await pool.close();
    await server.stop();
  }
}

export async function benchLatency({ lines, linesPerSecond }) {
  const bodies = buildBodies(lines);
  const server = await startServe(['--max-body-bytes', '32MiB']);
  const pool = new Pool(server.url, { connections: 2 });
  try {
    const latencies = await post(pool, bodies, { pace: linesPerSecond / 2 });
    return { http_p99_ms: round(percentile(latencies, 99), 1), http_p50_ms: round(percentile(latencies, 50), 1) };
  } finally {
    await pool.close();
    await server.stop();
  }
}

/** `streams` processes each logging one header line whose record stays open. */
export async function benchStreams({ streams }) {
  const server = await startServe([]);
  const pool = new Pool(server.url, { connections: 2 });
  try {
    const peak = watchPeak(server.pid);
    const bodies = [];
    const perBody = 20_000;
    const base = Date.UTC(2024, 10, 1, 12, 0, 0);
    for (let start = 0; start < streams; start += perBody) {
      const records = [];
      for (let index = start; index < Math.min(streams, start + perBody); index++) {
        records.push({
          host: `host-${index}`,
          SYSLOG_IDENTIFIER: 'linkerd',
          _PID: String(10_000 + index),
          message: `W 1101 12:00:00.${String(index % 1000).padStart(3, '0')} UTC THREAD42: Unhandled exception in connection with /10.0.${index % 250}.9:42176, shutting down connection`,
          timestamp: new Date(base + index).toISOString(),
        });
      }
      bodies.push({ body: Buffer.from(JSON.stringify(records)), gzip: false, lines: records.length });
    }
    await post(pool, bodies);
    await grouped(server.url, streams);
    const open = await metric(server.url, 'leakwatch_engine_open_streams');
    await sleep(500);
    return { rss_mb_100k_streams: Math.round(peak()), open_streams: open };
  } finally {
    await pool.close();
    await server.stop();
  }
}

/**
 * A long run: the server's highest RSS while the tenth of the lines before the 20 % mark is sent
 * (after the first 10 %, the warm-up) and while the last tenth is. RSS under load is a sawtooth
 * (V8 collects when its heap has grown), so one reading at each mark measures where the
 * collector happened to be, not growth; the tops of the saw grow only if memory is kept. Bodies are
 * built as they are sent (a corpus this size does not fit in memory at once).
 */
export async function benchSoak({ lines }) {
  const server = await startServe(['--max-body-bytes', '32MiB']);
  const pool = new Pool(server.url, { connections: 2 });
  let sent = 0;
  const peaks = { early: 0, late: 0 };
  const sampler = setInterval(() => {
    const rss = memoryOf(server.pid)?.rssMiB ?? 0;
    if (sent >= lines * 0.1 && sent < lines * 0.2) peaks.early = Math.max(peaks.early, rss);
    if (sent >= lines * 0.9) peaks.late = Math.max(peaks.late, rss);
  }, 50);
  try {
    const chunkLines = Math.min(250_000, Math.round(lines / 10));
    for (let round = 0; sent < lines; round++) {
      // Each round continues the corpus's clock where the last one ended (1 ms per 40 lines).
      const bodies = buildBodies(Math.min(chunkLines, lines - sent), { seed: 1690 + round, offsetMs: (sent / 40) | 0 });
      await post(pool, bodies);
      sent += bodies.reduce((sum, body) => sum + body.lines, 0);
    }
    await grouped(server.url, lines);
    return {
      soak_rss_drift_pct: round(((peaks.late - peaks.early) / peaks.early) * 100, 1),
      soak_rss_mb_at_20: Math.round(peaks.early),
      soak_rss_mb_at_100: Math.round(peaks.late),
    };
  } finally {
    clearInterval(sampler);
    await pool.close();
    await server.stop();
  }
}
