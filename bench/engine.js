// The engine alone, in this process, on one core: grouping + the shipped rules over the generated
// corpus, records built in memory first (best of 3 after a warm-up). With a classifier that does
// nothing too, to see what grouping alone costs.
import { join } from 'node:path';
import { createEngine } from '../dist/engine/create-engine.js';
import { DEFAULT_GROUPER } from '../dist/engine/grouper-config.js';
import { streamKeyOf } from '../dist/ingest/record.js';
import { loadRuleSet } from '../dist/rules/index.js';
import { generateCorpus } from './corpus.js';
import { ROOT } from './lib.js';

const BATCH = 1000;
const RUNS = 3;

function buildBatches(lines) {
  const batches = [];
  let batch = [];
  const origins = new Map();
  for (const entry of generateCorpus({ lines })) {
    // One set of origin strings per process, as the normaliser's origin cache produces.
    const originKey = `${entry.host} ${entry.service} ${entry.pid}`;
    let origin = origins.get(originKey);
    if (!origin) {
      origin = { host: entry.host, service: entry.service, pid: entry.pid, stream: streamKeyOf(entry.host, entry.service, entry.pid) };
      origins.set(originKey, origin);
    }
    batch.push({ time: entry.time, ...origin, message: entry.line.trimEnd() });
    if (batch.length === BATCH) {
      batches.push(batch);
      batch = [];
    }
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

function runOnce(batches, groupers, classifier) {
  let events = 0;
  const engine = createEngine({ groupers: () => groupers, classifier: () => classifier, sink: (out) => (events += out.length), ordered: true });
  const started = process.hrtime.bigint();
  for (const batch of batches) engine.push(batch);
  engine.flush();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { seconds, events, stats: engine.stats() };
}

function best(batches, groupers, classifier) {
  runOnce(batches, groupers, classifier);
  const runs = Array.from({ length: RUNS }, () => runOnce(batches, groupers, classifier));
  return runs.reduce((a, b) => (a.seconds <= b.seconds ? a : b));
}

export async function benchEngine({ lines }) {
  const batches = buildBatches(lines);
  const loaded = await loadRuleSet(join(ROOT, 'rules'), { checkRegexSafety: false });
  if (!loaded.ruleSet) throw new Error('the shipped rules do not load');
  const grouping = best(batches, [DEFAULT_GROUPER], { classify: () => null });
  const rules = best(batches, loaded.ruleSet.groupers, loaded.ruleSet.classifier);
  return {
    engine_lines_per_s: Math.round(rules.stats.linesIn / rules.seconds),
    grouping_lines_per_s: Math.round(grouping.stats.linesIn / grouping.seconds),
    engine_groups: rules.stats.groupsClosed,
    engine_events: rules.events,
  };
}
