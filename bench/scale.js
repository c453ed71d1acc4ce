// The scale-out mode end to end on this machine: 1 ingest node + N engine nodes (N = 1, 2) over a
// real nats-server (JetStream, file storage) and a real PostgreSQL, each in a temporary folder,
// all on the same cores. Vector-like 1–10 MB JSON bodies of a generated journald corpus are
// posted over two connections to the ingest node; the clock stops when the engines have grouped
// every line and stored every event. Two corpora: `storm`, the corpus of `npm run bench`
// (8 processes, a third of the lines in traces: 31 events per 1,000 lines, an OutOfDirectMemory
// storm), and `fleet` (64 processes on 32 hosts, 2% of the lines in traces). Per process: CPU
// seconds (user + system, from /proc) and peak RSS.
//
//   node bench/scale.js [--lines N] [--json]
import { request, Pool } from 'undici';
import { buildBodies, post } from './http.js';
import { cpuSecondsOf, memoryOf, metric, round, sleep, startServe } from './lib.js';
import { startNats, startPostgres } from './scale-servers.js';

const args = process.argv.slice(2);
const LINES = Number(args[args.indexOf('--lines') + 1] ?? 0) || 300_000;
const PARTITIONS = 16;
const CORPORA = [
  { name: 'storm', options: {} },
  { name: 'fleet', options: { processes: 64, hosts: 32, traceShare: 0.02 } },
];

/** CPU seconds (user + system) processes have used so far (0 for one gone). */
function cpuSeconds(pids) {
  let seconds = 0;
  for (const pid of pids) {
    const used = cpuSecondsOf(pid);
    // Ended meanwhile: NaN.
    if (!Number.isNaN(used)) seconds += used;
  }
  return seconds;
}

async function sumMetric(urls, name) {
  let total = 0;
  for (const url of urls) {
    const text = await (await request(`${url}/metrics`)).body.text();
    for (const match of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) total += Number(match[1]);
  }
  return total;
}

/** The partitions dealt as evenly as they go: 0-7, 8-15 for two engines. */
function ranges(engines) {
  const out = [];
  for (let index = 0; index < engines; index++) {
    const first = Math.floor((index * PARTITIONS) / engines);
    const last = Math.floor(((index + 1) * PARTITIONS) / engines) - 1;
    out.push(`${first}-${last}`);
  }
  return out;
}

async function run(corpus, engines, bodies, lines, postgres) {
  const nats = await startNats();
  const database = `bench_${corpus}_${engines}`;
  postgres.createDatabase(database);
  // The nodes are started by lib.js, which hands them this process's environment.
  Object.assign(process.env, { LEAKWATCH_POSTGRES_URL: postgres.url.replace(/\/leakwatch$/, `/${database}`), LEAKWATCH_NATS_URL: nats.url, LEAKWATCH_PARTITIONS: String(PARTITIONS) });
  const ingest = await startServe(['--role', 'ingest']);
  const engineNodes = [];
  for (const range of ranges(engines)) engineNodes.push(await startServe(['--role', 'engine', '--engine-partitions', range]));
  const processes = [
    { role: 'ingest', pids: () => [ingest.pid], rss: () => memoryOf(ingest.pid)?.peakMiB },
    ...engineNodes.map((node) => ({ role: 'engine', pids: () => [node.pid], rss: () => memoryOf(node.pid)?.peakMiB })),
    { role: 'nats-server', pids: () => [nats.pid], rss: () => memoryOf(nats.pid)?.peakMiB },
    { role: 'postgresql', pids: () => postgres.processIds(), rss: () => undefined },
  ];
  const cpuBefore = processes.map((process) => cpuSeconds(process.pids()));
  const urls = engineNodes.map((node) => node.url);
  const pool = new Pool(ingest.url, { connections: 2 });
  const started = performance.now();
  await post(pool, bodies, { connections: 2 });
  const postedMs = performance.now() - started;
  for (;;) {
    // Every line grouped (past the reorder window) and the events of the closed groups stored.
    const grouped = await sumMetric(urls, 'leakwatch_engine_lines_total');
    const classified = await sumMetric(urls, 'leakwatch_engine_events_total');
    const stored = await sumMetric(urls, 'leakwatch_events_total');
    if (grouped >= lines && stored >= classified) break;
    await sleep(100);
  }
  const elapsedMs = performance.now() - started;
  const perProcess = processes.map((process, index) => ({
    role: process.role,
    cpuSeconds: round(cpuSeconds(process.pids()) - cpuBefore[index], 2),
    peakRssMiB: round(process.rss() ?? Number.NaN),
  }));
  const events = await sumMetric(urls, 'leakwatch_events_total');
  const published = await metric(ingest.url, 'leakwatch_scale_published_messages_total');
  await pool.close();
  for (const node of [ingest, ...engineNodes]) await node.stop();
  await nats.remove();
  return { corpus, engines, lines, events, messages: published, postedSeconds: round(postedMs / 1000, 2), seconds: round(elapsedMs / 1000, 2), linesPerSecond: Math.round(lines / (elapsedMs / 1000)), perProcess };
}

const postgres = await startPostgres();
const results = [];
try {
  for (const { name, options } of CORPORA) {
    const bodies = buildBodies(LINES, options);
    const lines = bodies.reduce((sum, body) => sum + body.lines, 0);
    for (const engines of [1, 2]) {
      const result = await run(name, engines, bodies, lines, postgres);
      results.push(result);
      if (args.includes('--json')) continue;
      console.log(
        `${name}: 1 ingest + ${engines} engine${engines === 1 ? '' : 's'}: ${result.lines} lines in ${result.seconds} s (posted in ${result.postedSeconds} s) = ` +
          `${result.linesPerSecond.toLocaleString('en')} lines/s, ${result.events} events, ${result.messages} messages`,
      );
      for (const process of result.perProcess) {
        console.log(`  ${process.role}: ${process.cpuSeconds} CPU s (${round((process.cpuSeconds / result.lines) * 1e6, 1)} per 1M lines)${Number.isNaN(process.peakRssMiB) ? '' : `, peak RSS ${process.peakRssMiB} MiB`}`);
      }
    }
  }
} finally {
  postgres.remove();
}
if (args.includes('--json')) console.log(JSON.stringify(results, null, 2));
