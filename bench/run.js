// Engine benchmark: lines/s on one core (best of 3 after a warm-up) and peak RSS, over the
// generated journald corpus (bench/corpus.js), with (a) a classifier that does nothing and (b) the
// shipped rule set when dist/rules/index.js is built. Records are built in memory first, so only
// the engine is measured. Run with `npm run bench`; writes bench/results.json.
//
//   node bench/run.js [--lines 1000000] [--batch 1000]
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createEngine } from '../dist/engine/create-engine.js';
import { DEFAULT_GROUPER } from '../dist/engine/grouper-config.js';
import { streamKeyOf } from '../dist/ingest/record.js';
import { generateCorpus, journaldLine } from './corpus.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const index = args.indexOf(name);
  return index >= 0 && args[index + 1] !== undefined ? Number(args[index + 1]) : fallback;
};
const LINES = option('--lines', 1_000_000);
const BATCH = option('--batch', 1000);
const RUNS = 3;

// The journald `short` prefix, as the ingest side strips it (not measured here).
const JOURNALD_SHORT = /^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (\S+) ([^\s[]+)\[(\d+)\]: (.*)$/;

function buildBatches() {
  const batches = [];
  let batch = [];
  let traceLines = 0;
  const origins = new Map();
  for (const entry of generateCorpus({ lines: LINES })) {
    const match = JOURNALD_SHORT.exec(journaldLine(entry));
    if (!match) throw new Error('corpus line without journald prefix');
    const [, host, service, pid, message] = match;
    if (entry.inTrace) traceLines++;
    // One set of origin strings per process, as a decoder with a small intern table would produce.
    const originKey = `${host} ${service} ${pid}`;
    let origin = origins.get(originKey);
    if (!origin) {
      origin = { host, service, pid, stream: streamKeyOf(host, service, pid) };
      origins.set(originKey, origin);
    }
    batch.push({ time: entry.time, host: origin.host, service: origin.service, pid: origin.pid, stream: origin.stream, message });
    if (batch.length === BATCH) {
      batches.push(batch);
      batch = [];
    }
  }
  if (batch.length > 0) batches.push(batch);
  return { batches, traceLines };
}

function runOnce(batches, groupers, classifier) {
  let events = 0;
  const engine = createEngine({
    groupers: () => groupers,
    classifier: () => classifier,
    sink: (out) => {
      events += out.length;
    },
  });
  const started = process.hrtime.bigint();
  for (const batch of batches) engine.push(batch);
  engine.flush();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { seconds, events, stats: engine.stats() };
}

function measure(label, batches, groupers, classifier) {
  runOnce(batches, groupers, classifier); // warm-up: JIT, caches
  const runs = [];
  for (let run = 0; run < RUNS; run++) runs.push(runOnce(batches, groupers, classifier));
  const best = runs.reduce((a, b) => (a.seconds <= b.seconds ? a : b));
  const linesPerSecond = Math.round(best.stats.linesIn / best.seconds);
  return {
    label,
    lines: best.stats.linesIn,
    seconds_best: Number(best.seconds.toFixed(3)),
    seconds_all: runs.map((run) => Number(run.seconds.toFixed(3))),
    lines_per_second: linesPerSecond,
    groups: best.stats.groupsClosed,
    events: best.events,
    truncated_groups: best.stats.truncatedGroups,
    evictions: best.stats.evictions,
  };
}

async function loadShippedRules() {
  try {
    const rules = await import('../dist/rules/index.js');
    if (typeof rules.loadRuleSet !== 'function') return { reason: 'dist/rules/index.js has no loadRuleSet' };
    const loaded = await rules.loadRuleSet(join(here, '..', 'rules'));
    if (!loaded?.ruleSet) return { reason: `rule set did not load (${JSON.stringify(loaded?.errors ?? []).slice(0, 300)})` };
    return { ruleSet: loaded.ruleSet };
  } catch (error) {
    return { reason: error instanceof Error ? error.message : String(error) };
  }
}

const nullClassifier = { classify: () => null };
const { batches, traceLines } = buildBatches();
const rssAfterCorpusMiB = Number((process.memoryUsage().rss / 1048576).toFixed(1));
console.log(`corpus: ${LINES} lines, ${batches.length} batches of ${BATCH}, ~${((100 * traceLines) / LINES).toFixed(1)}% in traces`);

const results = [measure('grouping only (null classifier)', batches, [DEFAULT_GROUPER], nullClassifier)];
const shipped = await loadShippedRules();
if (shipped.ruleSet) {
  results.push(measure('shipped rules (rules/*.yaml)', batches, shipped.ruleSet.groupers, shipped.ruleSet.classifier));
} else {
  console.log(`rules: not available (${shipped.reason})`);
}
const peakRssMiB = Number((process.resourceUsage().maxRSS / 1024).toFixed(1));

console.log(`RSS with the corpus in memory, before any engine run: ${rssAfterCorpusMiB} MiB`);
console.log('');
console.log('| run | lines/s (best of 3) | s (best) | groups | events | peak RSS MiB |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const result of results) {
  console.log(`| ${result.label} | ${result.lines_per_second.toLocaleString('en-US')} | ${result.seconds_best} | ${result.groups} | ${result.events} | ${peakRssMiB} |`);
}

writeFileSync(
  join(here, 'results.json'),
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      node: process.version,
      corpus: { lines: LINES, batch: BATCH, trace_line_share: Number((traceLines / LINES).toFixed(3)), processes: 8, hosts: 4 },
      rules: shipped.ruleSet ? 'loaded' : `not available: ${shipped.reason}`,
      rss_after_corpus_mib: rssAfterCorpusMiB,
      peak_rss_mib: peakRssMiB,
      results,
    },
    null,
    2,
  )}\n`,
);
