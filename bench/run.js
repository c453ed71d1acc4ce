// `npm run bench [-- --quick] [-- --json] [-- --only analyze,engine]`: the whole product measured on this machine.
//
//   engine_lines_per_s   the engine alone in this process, one core, the shipped rules
//   analyze_lines_per_s  `leakwatch analyze FILE --format ndjson > /dev/null` as a child process on the
//   analyze_rss_mb       generated journald file (the median of three runs' wall time including start-up),
//                        and the highest peak RSS of the three
//   analyze_baseline_lines_per_s, analyze_vs_baseline: bench/bare-reader.js (read, cut into lines,
//                        nothing else) on the same file in the same run, and the share of its rate analyze reaches
//   http_lines_per_s     POST /ingest on loopback, Vector-like JSON bodies of 1–10 MB (gzip and not), two
//                        connections, until every line went through the engine (server's /metrics)
//   http_baseline_lines_per_s, http_vs_baseline: the same bodies to a bare parse-and-drop sink
//                        (bench/bare-sink.js) in the same run, and the share of its rate leakwatch reaches
//   http_main_busy_share the share of that run the server's main thread was busy (near 1: it sets the rate)
//   http_server_cpu_us_per_line, http_main_cpu_us_per_line, http_baseline_cpu_us_per_line: CPU (user +
//                        system) per line of the server's threads, of its main thread, and of the bare sink
//   http_server_cpu_share the server's CPU over that run as a share of all the machine's cores
//   http_p99_ms          answer latency per batch at half that rate
//   event_loop_p99_ms    the server's event-loop delay p99 while ingesting at full rate
//   rss_mb_100k_streams  the server's peak RSS with 100,000 streams each holding an open group
//   soak_rss_drift_pct   the growth of the server's highest RSS from the tenth before the 20 % mark to the last tenth of a long run
//   forward_events_per_s        events/s from a full SQLite outbox to an NDJSON receiver on loopback
//   forward_live_events_per_s   the same while the events are queued 100 at a time (bench/forward.js
//                               measures every target format: npm run bench:forward)
//
// Prints a table, writes bench/results.json, and with --json prints the results as one JSON
// object on the last line. --quick runs smaller sizes (under a minute); the full run takes a few
// minutes on a 2-core machine. --only runs the named sections (engine, analyze, http, latency, streams,
// soak, forward) and leaves bench/results*.json as they are: a partial run is not the last run.
import { cpus } from 'node:os';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchAnalyze } from './analyze.js';
import { benchEngine } from './engine.js';
import { benchForward } from './forward.js';
import { benchHttp, benchLatency, benchSoak, benchStreams } from './http.js';
import { ROOT, tempDir } from './lib.js';

const argv = process.argv.slice(2);
const args = new Set(argv);
const quick = args.has('--quick');
const json = args.has('--json');
const onlyAt = argv.indexOf('--only');
const only = onlyAt === -1 ? undefined : new Set((argv[onlyAt + 1] ?? '').split(',').filter((name) => name !== ''));

const SIZES = quick
  ? { engine: 300_000, analyze: 300_000, http: 300_000, latency: 150_000, streams: 100_000, soak: 1_000_000, forward: 300_000 }
  : { engine: 1_000_000, analyze: 1_000_000, http: 1_500_000, latency: 600_000, streams: 100_000, soak: 10_000_000, forward: 1_000_000 };

const TARGETS = {
  engine_lines_per_s: ['>=', 1_000_000],
  analyze_lines_per_s: ['>=', 1_000_000],
  analyze_rss_mb: ['<=', 96],
  http_lines_per_s: ['>=', 300_000],
  http_rss_mb: ['<=', 256],
  http_p99_ms: ['<=', 250],
  event_loop_p99_ms: ['<=', 50],
  rss_mb_100k_streams: ['<=', 256],
  soak_rss_drift_pct: ['<=', 5],
};

function log(line) {
  // The table goes to stderr when --json is asked, so that stdout's last line is the JSON.
  (json ? process.stderr : process.stdout).write(`${line}\n`);
}

const results = {};
const work = tempDir('run');
try {
  const sections = [
    ['engine', () => benchEngine({ lines: SIZES.engine })],
    ['analyze', () => benchAnalyze({ lines: SIZES.analyze, dir: work.dir })],
    ['http', () => benchHttp({ lines: SIZES.http })],
    ['latency', () => benchLatency({ lines: SIZES.latency, linesPerSecond: results.http_lines_per_s })],
    ['streams', () => benchStreams({ streams: SIZES.streams })],
    ['soak', () => benchSoak({ lines: SIZES.soak })],
    [
      'forward',
      async () => {
        const { rows } = await benchForward({ lines: SIZES.forward, formats: ['ndjson'] });
        return { forward_events_per_s: rows.find((row) => row.mode === 'backlog').perSecond, forward_live_events_per_s: rows.find((row) => row.mode === 'live').perSecond };
      },
    ],
  ];
  const names = sections.map(([name]) => name);
  if (only !== undefined) {
    const unknown = [...only].filter((name) => !names.includes(name));
    if (only.size === 0 || unknown.length > 0) throw new Error(`--only takes sections among ${names.join(', ')}${unknown.length > 0 ? ` (not: ${unknown.join(', ')})` : ''}`);
    // The latency run paces itself at half the rate the http run measured.
    if (only.has('latency')) only.add('http');
  }
  for (const [name, run] of sections) {
    if (only !== undefined && !only.has(name)) continue;
    const started = performance.now();
    Object.assign(results, await run());
    log(`${name}: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
} finally {
  work.remove();
}

log('');
log(`| measure | value | target | met |`);
log(`|---|---:|---:|:---:|`);
for (const [key, value] of Object.entries(results)) {
  const target = TARGETS[key];
  const met = target === undefined ? '' : target[0] === '>=' ? value >= target[1] : value <= target[1];
  log(`| ${key} | ${typeof value === 'number' ? value.toLocaleString('en-US') : value} | ${target ? `${target[0]} ${target[1].toLocaleString('en-US')}` : ''} | ${met === '' ? '' : met ? 'yes' : 'no'} |`);
}

const report = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
  cpu: cpus()[0]?.model ?? 'unknown',
  mode: quick ? 'quick' : 'full',
  sizes: SIZES,
  ...results,
};
if (only === undefined) writeFileSync(join(ROOT, 'bench', quick ? 'results-quick.json' : 'results.json'), `${JSON.stringify(report, null, 2)}\n`);
if (json) process.stdout.write(`${JSON.stringify(report)}\n`);
