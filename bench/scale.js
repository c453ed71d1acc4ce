// The scale-out mode end to end on this machine: 1 ingest node + N engine nodes (N = 1, 2) over a
// real nats-server (JetStream, file storage) and a real PostgreSQL, each in a temporary folder.
// Vector-like 1–10 MB JSON bodies of the generated 8-process corpus are posted over two
// connections to the ingest node; the clock stops when the engines have grouped every line and
// acknowledged every message (their groups closed and stored). Per node: CPU seconds (user +
// system, from /proc) and peak RSS. `node bench/scale.js [--lines N] [--json]`.
import { readFileSync } from 'node:fs';
import { request, Pool } from 'undici';
import { buildBodies, post } from './http.js';
import { memoryOf, metric, round, sleep, startServe } from './lib.js';
import { startNats, startPostgres } from './scale-servers.js';

const args = process.argv.slice(2);
const LINES = Number(args[args.indexOf('--lines') + 1] ?? 0) || 300_000;
const PARTITIONS = 8;
const CLOCK_TICKS = 100;

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

async function sumMetric(urls, name) {
  let total = 0;
  for (const url of urls) {
    const text = await (await request(`${url}/metrics`)).body.text();
    for (const match of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) total += Number(match[1]);
  }
  return total;
}

/** The engine partitions dealt as evenly as they go: 0-3, 4-7 for two engines. */
function ranges(engines) {
  const out = [];
  for (let index = 0; index < engines; index++) {
    const first = Math.floor((index * PARTITIONS) / engines);
    const last = Math.floor(((index + 1) * PARTITIONS) / engines) - 1;
    out.push(`${first}-${last}`);
  }
  return out;
}

async function run(engines, bodies, lines, postgres, database) {
  const nats = await startNats();
  postgres.createDatabase(database);
  const env = { LEAKWATCH_POSTGRES_URL: postgres.url.replace(/\/leakwatch$/, `/${database}`), LEAKWATCH_NATS_URL: nats.url, LEAKWATCH_PARTITIONS: String(PARTITIONS) };
  // The nodes are started by lib.js, which passes them this process's environment.
  Object.assign(process.env, env);
  const ingest = await startServe(['--role', 'ingest']);
  const engineNodes = [];
  for (const range of ranges(engines)) engineNodes.push(await startServe(['--role', 'engine', '--engine-partitions', range]));
  const nodes = [{ role: 'ingest', node: ingest }, ...engineNodes.map((node) => ({ role: 'engine', node }))];
  const cpuBefore = nodes.map(({ node }) => cpuSeconds(node.pid));
  const urls = engineNodes.map((node) => node.url);
  const pool = new Pool(ingest.url, { connections: 2 });
  const started = performance.now();
  await post(pool, bodies, { connections: 2 });
  const postedMs = performance.now() - started;
  for (;;) {
    const grouped = await sumMetric(urls, 'leakwatch_engine_lines_total');
    const consumed = await sumMetric(urls, 'leakwatch_scale_consumed_messages_total');
    const published = await metric(ingest.url, 'leakwatch_scale_published_messages_total');
    // Every line grouped past the reorder window; messages taken (acknowledged follows once groups close).
    if (grouped >= lines && consumed >= published) break;
    await sleep(100);
  }
  const elapsedMs = performance.now() - started;
  const perNode = nodes.map(({ role, node }, index) => ({
    role,
    cpuSeconds: round(cpuSeconds(node.pid) - cpuBefore[index], 2),
    peakRssMiB: round(memoryOf(node.pid)?.peakMiB ?? Number.NaN),
  }));
  const events = await sumMetric(urls, 'leakwatch_engine_events_total');
  await pool.close();
  for (const { node } of nodes) await node.stop();
  await nats.remove();
  return { engines, lines, events, postedSeconds: round(postedMs / 1000, 2), seconds: round(elapsedMs / 1000, 2), linesPerSecond: Math.round(lines / (elapsedMs / 1000)), perNode };
}

const bodies = buildBodies(LINES);
const lines = bodies.reduce((sum, body) => sum + body.lines, 0);
const postgres = await startPostgres();
const results = [];
try {
  for (const engines of [1, 2]) {
    const result = await run(engines, bodies, lines, postgres, `bench_${engines}`);
    results.push(result);
    if (!args.includes('--json')) {
      console.log(`1 ingest + ${engines} engine${engines === 1 ? '' : 's'}: ${result.lines} lines in ${result.seconds} s (posted in ${result.postedSeconds} s) = ${result.linesPerSecond.toLocaleString('en')} lines/s, ${result.events} events`);
      for (const node of result.perNode) console.log(`  ${node.role}: ${node.cpuSeconds} CPU s (${round((node.cpuSeconds / result.lines) * 1e6, 1)} CPU s per 1M lines), peak RSS ${node.peakRssMiB} MiB`);
    }
  }
} finally {
  postgres.remove();
}
if (args.includes('--json')) console.log(JSON.stringify(results, null, 2));
