/**
 * A node of the scale-out mode (`--role ingest` or `--role engine`): the same HTTP service as a
 * single process — ingest on ingest nodes, the incidents, memory, rules and forwarding routes,
 * the web page and the probes on every node — over the shared PostgreSQL store, with NATS
 * JetStream between the ingest route and the engines.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { UnclassifiedTally } from '../engine/unclassified-tally.js';
import { unclassifiedRecord } from '../engine/grouped-record.js';
import { forwardRoutes } from '../forward/routes.js';
import { incidentRoutes } from '../incidents/routes.js';
import { DecodePool } from '../ingest/decode-pool.js';
import { allRecords } from '../ingest/packed-records.js';
import { ingestRoutes } from '../ingest/routes.js';
import { memoryRoutes } from '../memory/routes.js';
import { LeakwatchMetrics } from '../metrics.js';
import { loadRuleSet, RuleSetHolder, rulesRoutes } from '../rules/index.js';
import { backlogRefusal, createApp, describeFallback, ingestDecoding, ingestOptions, makeEngine, registerDirectMemoryMetrics, rulesFailure, StartupError, storeOutputs, type RunnableService } from '../server.js';
import { isDirectMemorySeries, recordsOfSeries } from '../memory/sources.js';
import { isPostgresUnavailable, PostgresStore } from '../store/postgres-store.js';
import { webRoutes } from '../web/routes.js';
import { EngineNode } from './engine-node.js';
import { ForwardLeadership } from './forward-leader.js';
import { RecordPublisher } from './publisher.js';
import { SharedCountWindows } from './shared-count-windows.js';
import { SharedLastGoodRules } from './shared-last-good.js';
import { connectNats, ensureRecordStream } from './stream.js';

export interface ScaleNode extends RunnableService {
  store: PostgresStore;
  engineNode: EngineNode | undefined;
}

const PARTITIONS_KEY = 'scale.partitions';
/** How often an engine node checks that it still holds its partitions' locks, and how often the ingest path re-reads the outbox totals. */
const WATCH_EVERY_MS = 2000;
const UNCLASSIFIED_SHAPES_KEPT = 1000;
const FORWARD_FLUSH_ON_STOP_MS = 5000;

/** Every node must cut the record stream the same way: the first one to start records how. */
function checkPartitionCount(store: PostgresStore, partitions: number): void {
  const stored = store.transaction(() => {
    store.lockScopes([PARTITIONS_KEY]);
    const known = store.getMeta(PARTITIONS_KEY);
    if (known === undefined) store.setMeta(PARTITIONS_KEY, String(partitions));
    return known;
  });
  if (stored !== undefined && Number(stored) !== partitions) {
    throw new StartupError(`--partitions ${partitions} differs from the ${stored} partitions the record stream was made with; every node must use ${stored}`);
  }
}

export async function buildScaleNode(config: Config, log: Logger): Promise<ScaleNode> {
  const role = config.role;
  const node = `${role}@${hostname()}:${process.pid}`;
  let store: PostgresStore;
  try {
    store = new PostgresStore(config.postgresUrl!, { applicationName: `leakwatch-${role}` });
    checkPartitionCount(store, config.partitions);
  } catch (error) {
    throw error instanceof StartupError ? error : new StartupError((error as Error).message);
  }
  let nc: NatsConnection;
  try {
    nc = await connectNats(config.natsUrl!, node, log);
    await ensureRecordStream(nc);
  } catch (error) {
    store.close();
    throw new StartupError(`cannot reach NATS JetStream at ${config.natsUrl}: ${(error as Error).message}`);
  }
  const windows = new SharedCountWindows(store, isPostgresUnavailable, log);
  const rules = new RuleSetHolder(config.rulesDir, log, {
    safetyCacheFile: join(config.dataDir, 'regex-safety-cache.json'),
    // The fleet's last good rules, in PostgreSQL: a node with a new data folder can fall back to them too.
    lastGood: new SharedLastGoodRules(store, join(config.dataDir, 'rules-last-good')),
    windows,
  });
  const compiled = await loadRuleSet(config.rulesDir, { checkRegexSafety: false });
  if (!compiled.ruleSet && (await rules.lastGoodCopy()) === null) {
    store.close();
    await nc.close();
    throw rulesFailure(config.rulesDir, compiled.errors);
  }
  const unclassified = new UnclassifiedTally(UNCLASSIFIED_SHAPES_KEPT);
  const metrics = new LeakwatchMetrics();
  const forwarding = new ForwardLeadership(config.forwardTargets, store, { outboxBytes: config.forwardOutboxBytes, outboxAgeMs: config.forwardOutboxAgeMs, log, metrics });
  const { incidents, memory, outputs } = storeOutputs(config, store, metrics, (records) => forwarding.enqueue(records));
  const timers: NodeJS.Timeout[] = [];
  let closed = false;
  let reportFailure: (why: string) => void = () => undefined;
  const failed = new Promise<string>((resolve) => (reportFailure = resolve));

  const app = createApp(config, log);

  let engineNode: EngineNode | undefined;
  let decoders: DecodePool | undefined;
  let publisher: RecordPublisher | undefined;
  let ready = false;
  let whenReady: Promise<void>;

  if (role === 'ingest') {
    publisher = new RecordPublisher(nc, config.partitions);
    const decoding = ingestDecoding(config);
    decoders = decoding.decoders;
    // The outbox totals are read every couple of seconds, not once per request.
    let backlog = forwarding.backlog();
    timers.push(
      setInterval(() => {
        try {
          backlog = forwarding.backlog();
        } catch {
          // PostgreSQL is away: the last answer stands until it is back.
        }
      }, WATCH_EVERY_MS),
    );
    const sink = publisher;
    await app.register(ingestRoutes, {
      ...ingestOptions(config, metrics, decoding),
      submit: async (batch) => {
        if (backlog !== undefined) throw backlogRefusal(backlog);
        await sink.publish(allRecords(batch.records));
        return true;
      },
      ready: () => ready && !nc.isClosed(),
      remoteWrite: { keep: isDirectMemorySeries, toRecords: recordsOfSeries },
    });
    // Ingest nodes classify nothing, but show the rules like any node (GET /rules, the web page).
    whenReady = rules.reload().then((outcome) => {
      if (!outcome.ok && !rules.isLoaded()) throw rulesFailure(config.rulesDir, outcome.errors);
      ready = true;
    });
  } else {
    const partitions = config.enginePartitions ?? Array.from({ length: config.partitions }, (_, index) => index);
    const engine = new EngineNode({
      nc,
      store,
      node,
      log,
      partitions,
      isStoreUnavailable: isPostgresUnavailable,
      engine: (sink) => makeEngine(config, rules, unclassified, sink, forwarding.wantsUnclassified ? (group) => sink([unclassifiedRecord(group)]) : undefined),
      outputs,
    });
    engineNode = engine;
    whenReady = rules.reload().then(async (outcome) => {
      if (!outcome.ok && !rules.isLoaded()) throw rulesFailure(config.rulesDir, outcome.errors);
      if (closed) return;
      await engine.start();
      ready = true;
    });
    timers.push(
      setInterval(() => {
        try {
          if (!engine.locksLost()) return;
          // PostgreSQL restarted: the locks went with the old connection. Take them again, unless another node was quicker.
          if (engine.relock()) log.warn('engine: PostgreSQL connection renewed; partition locks taken again');
          else reportFailure('another node took partitions this node consumes while its PostgreSQL connection was down');
        } catch {
          // PostgreSQL is still away: the next tick tries again.
        }
        forwarding.tick();
      }, WATCH_EVERY_MS),
    );
  }
  for (const timer of timers) timer.unref();
  whenReady.catch(() => undefined);

  await app.register(incidentRoutes, { incidents });
  await app.register(memoryRoutes, { memory });
  await app.register(rulesRoutes, { holder: rules, unclassified });
  await app.register(forwardRoutes, { forwarder: forwarding.enqueuer, outbox: store });
  await app.register(webRoutes);

  app.get('/healthz', { config: { access: 'public' } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { access: 'public' } }, async (_request, reply) => {
    const storeOk = store.ping() && (engineNode?.storeWritable ?? true);
    const checks: Record<string, boolean> = { rules: ready && rules.isLoaded(), store: storeOk, nats: !nc.isClosed() && nc.info !== undefined && natsConnected };
    if (engineNode !== undefined) checks['partitions'] = engineNode.running && !engineNode.locksLost();
    const problem = engineNode?.storeProblem;
    const fallback = rules.fallbackInUse();
    const details = {
      role,
      ...(problem === undefined ? {} : { store_problem: problem }),
      ...(fallback === null ? {} : { rules_fallback: describeFallback(config.rulesDir, fallback) }),
      ...(engineNode === undefined ? {} : { partitions: engineNode.lag() }),
      ...(forwarding.targets > 0 && storeOk ? { forward: forwarding.status() } : {}),
    };
    const waiting = Object.entries(checks).filter(([, ok]) => !ok).map(([name]) => name);
    if (waiting.length === 0) return reply.code(200).send({ ready: true, checks, ...details });
    return reply.code(503).send({ ready: false, checks, waiting_for: waiting.map((name) => WAITING_FOR[name] ?? name).join('; '), ...details });
  });
  let natsConnected = true;
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') natsConnected = false;
      else if (status.type === 'reconnect') natsConnected = true;
    }
  })();
  registerScaleMetrics(metrics, { engineNode, publisher, forwarding });
  registerDirectMemoryMetrics(metrics, memory);
  metrics.counter('leakwatch_scale_count_window_fallbacks_total', 'Count thresholds judged on this node\'s own count because PostgreSQL could not be reached.', () => windows.fallbacks);
  app.get('/metrics', async (_request, reply) => reply.type(metrics.contentType).send(await metrics.render()));

  return {
    app,
    rules,
    store,
    engineNode,
    ready: whenReady,
    failed,
    describe: { role, partitions: config.enginePartitions ?? (role === 'engine' ? 'all' : undefined), store: store.description },
    async close() {
      if (closed) return;
      closed = true;
      for (const timer of timers) clearInterval(timer);
      await app.close();
      await decoders?.close();
      await engineNode?.stop();
      await forwarding.stop(FORWARD_FLUSH_ON_STOP_MS);
      await nc.drain().catch(() => undefined);
      metrics.close();
      store.close();
    },
  };
}

const WAITING_FOR: Record<string, string> = {
  rules: 'rules: loading and checking them',
  store: 'store: PostgreSQL does not answer or take writes',
  nats: 'nats: not connected to NATS JetStream',
  partitions: 'partitions: waiting to take this node\'s partitions',
};

function registerScaleMetrics(metrics: LeakwatchMetrics, sources: { engineNode: EngineNode | undefined; publisher: RecordPublisher | undefined; forwarding: ForwardLeadership }): void {
  const { engineNode, publisher, forwarding } = sources;
  if (publisher !== undefined) {
    metrics.counter('leakwatch_scale_published_messages_total', 'Messages published to the record stream and acknowledged by JetStream (or not: see failures).', () => publisher.counters.messages);
    metrics.counter('leakwatch_scale_published_bytes_total', 'Bytes of the messages published to the record stream.', () => publisher.counters.bytes);
    metrics.counter('leakwatch_scale_publish_failures_total', 'Batches answered 503 because JetStream did not acknowledge them.', () => publisher.counters.failures);
  }
  if (engineNode !== undefined) {
    const engine = engineNode.engine;
    metrics.labelledGauge('leakwatch_scale_partition_lag_messages', 'Messages of a partition waiting for this engine node (consumer lag, as of the last delivery).', ['partition'], () =>
      engineNode.lag().map((entry): [Record<string, string>, number] => [{ partition: String(entry.partition) }, entry.pending]),
    );
    metrics.labelledGauge('leakwatch_scale_partition_unacked_messages', 'Messages of a partition delivered and not yet acknowledged (records in open groups or not yet stored).', ['partition'], () =>
      engineNode.lag().map((entry): [Record<string, string>, number] => [{ partition: String(entry.partition) }, entry.unacked]),
    );
    metrics.counter('leakwatch_scale_consumed_messages_total', 'Messages taken from the record stream.', () => engineNode.counters.messages);
    metrics.counter('leakwatch_scale_replay_skipped_records_total', 'Records of messages taken over from another run that were already in stored groups (not fed again).', () => engineNode.counters.replaySkipped);
    metrics.counter('leakwatch_scale_redelivered_messages_total', 'Messages delivered again that this node had already taken (ignored).', () => engineNode.counters.redeliveries);
    metrics.counter('leakwatch_scale_acked_messages_total', 'Messages acknowledged: every group they took part in has closed and been stored.', () => engineNode.counters.acked);
    metrics.gauge('leakwatch_store_writable', '1 while the store takes writes; 0 while consumption is paused because it does not.', () => (engineNode.storeWritable ? 1 : 0));
    metrics.counter('leakwatch_store_write_failures_total', 'Store writes that failed (PostgreSQL away, say); what they carried was kept and retried.', () => engineNode.counters.storeWriteFailures);
    metrics.counter('leakwatch_engine_lines_total', 'Lines the engine has grouped.', () => engine.stats().linesIn);
    metrics.counter('leakwatch_engine_groups_total', 'Multi-line records closed.', () => engine.stats().groupsClosed);
    metrics.counter('leakwatch_engine_events_total', 'Events produced by the rules.', () => engine.stats().eventsOut);
    metrics.gauge('leakwatch_engine_open_streams', 'Streams with an open record (open groups).', () => engine.stats().openStreams);
    metrics.gauge('leakwatch_engine_held_records', 'Records held to put out-of-order deliveries back in source order.', () => engine.stats().heldRecords ?? 0);
    metrics.counter('leakwatch_engine_late_records_total', 'Records that arrived after a later record of their stream had been grouped (beyond the reorder window).', () => engine.stats().lateRecords ?? 0);
  }
  metrics.gauge('leakwatch_forward_leader', '1 on the node that sends the fleet\'s forwarding outbox.', () => (forwarding.leading ? 1 : 0));
}
