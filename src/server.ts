import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import Fastify, { LogController, type FastifyInstance, type RawServerDefault } from 'fastify';
import { pino, type Logger } from 'pino';
import { installAuth } from './auth.js';
import type { Config } from './config.js';
import { createEngine } from './engine/create-engine.js';
import { UnclassifiedTally } from './engine/unclassified-tally.js';
import { installErrorShape, LeakwatchError } from './errors.js';
import { limitHeapGrowth, stopPretenuring } from './gc-tuning.js';
import { missingMallocSettings, missingSemiSpaceFlag } from './process-settings.js';
import type { Engine, EventSink } from './engine/engine.js';
import type { Group } from './engine/group.js';
import type { LeakEvent } from './engine/event.js';
import { isLeakEvent, type GroupedRecord } from './engine/grouped-record.js';
import { Forwarder, type ForwardBacklog } from './forward/forwarder.js';
import { forwardRoutes } from './forward/routes.js';
import { IncidentService } from './incidents/service.js';
import { incidentRoutes } from './incidents/routes.js';
import { DecodePool } from './ingest/decode-pool.js';
import { InflightBytes } from './ingest/inflight.js';
import { BoundedRecordQueue } from './ingest/queue.js';
import { ingestRoutes, type IngestRoutesOptions } from './ingest/routes.js';
import type { DecodeLimits } from './ingest/decode-body.js';
import { DIRECT_MEMORY_METRICS, directMemoryMetrics, type DirectMemoryMetricSample } from './memory/metrics.js';
import { MemoryTracker } from './memory/tracker.js';
import { memoryRoutes } from './memory/routes.js';
import { isDirectMemorySeries, recordsOfSeries } from './memory/sources.js';
import { TREND_CATEGORY } from './memory/warning.js';
import { LeakwatchMetrics } from './metrics.js';
import type { StoreOutputs } from './output-delivery.js';
import { Pipeline } from './pipeline.js';
import { CountWindows, formatProblem, loadRuleSet, restoreCountWindows, RuleSetHolder, rulesRoutes, type RuleProblem, type RulesFallback } from './rules/index.js';
import { isStoreUnavailable, SqliteStore } from './store/sqlite-store.js';
import type { Store } from './store/store.js';
import { formatBytes } from './units.js';
import { webRoutes } from './web/routes.js';

export type LeakwatchApp = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>;

export interface Leakwatch {
  app: LeakwatchApp;
  pipeline: Pipeline;
  engine: Engine;
  rules: RuleSetHolder;
  incidents: IncidentService;
  memory: MemoryTracker;
  /** The multi-line records no rule classified, by first-line shape (GET /unclassified). */
  unclassified: UnclassifiedTally;
  store: SqliteStore;
  forwarder: Forwarder;
  metrics: LeakwatchMetrics;
  /**
   * Resolves once the rules have passed the regex safety check and the journal has been replayed;
   * until then /readyz answers 503 and ingest 503 + Retry-After. Rejects (StartupError) when the
   * rules fail that check and the data folder has no last good rule set to fall back to.
   */
  ready: Promise<void>;
  /**
   * Stops taking requests, processes what was accepted, closes every open group, gives forwarding
   * a short time to deliver what is due (the rest stays in the outbox), closes the store.
   */
  close(): Promise<void>;
}

/** First-line shapes of unclassified records kept in memory (each with a 12-line example: about 4 MB at most). */
const UNCLASSIFIED_SHAPES_KEPT = 1000;
/** How long a stop waits for deliveries under way before it leaves them to the next start. */
const FORWARD_FLUSH_ON_STOP_MS = 5000;

export class StartupError extends Error {
  override readonly name = 'StartupError';
}

export function rulesFailure(rulesDir: string, errors: readonly RuleProblem[]): StartupError {
  return new StartupError(`the rules in ${rulesDir} do not load:\n${errors.map(formatProblem).join('\n')}`);
}

/**
 * Builds the whole service without listening; tests and `runServer` both use it. The rule files
 * must parse and compile before it returns; the regex safety check, which can take seconds per
 * new pattern, runs afterwards (`ready`), while the server already listens, and its verdicts are
 * kept in the data folder so that a restart does not pay for them again.
 */
export async function buildLeakwatch(config: Config, log: Logger = pino({ level: config.logLevel })): Promise<Leakwatch> {
  let store: SqliteStore;
  try {
    store = new SqliteStore(config.dataDir, { checkpointOnThread: true, fixedTexts: () => rules.current().fixedTexts });
  } catch (error) {
    throw new StartupError(`cannot open the store in ${config.dataDir}: ${(error as Error).message}`);
  }
  const countWindows = new CountWindows();
  const rules = new RuleSetHolder(config.rulesDir, log, {
    safetyCacheFile: join(config.dataDir, 'regex-safety-cache.json'),
    lastGoodDir: join(config.dataDir, 'rules-last-good'),
    windows: countWindows,
  });
  // Broken rules with nothing to fall back to refuse the start before listening; with a last good
  // copy in the data folder the server starts on it (the holder says so loudly).
  const compiled = await loadRuleSet(config.rulesDir, { checkRegexSafety: false });
  if (!compiled.ruleSet && (await rules.lastGoodCopy()) === null) {
    store.close();
    throw rulesFailure(config.rulesDir, compiled.errors);
  }
  const unclassified = new UnclassifiedTally(UNCLASSIFIED_SHAPES_KEPT);
  const metrics = new LeakwatchMetrics();
  const forwarder = new Forwarder(config.forwardTargets, store, { outboxBytes: config.forwardOutboxBytes, outboxAgeMs: config.forwardOutboxAgeMs, log, metrics });
  const { incidents, memory, outputs } = storeOutputs(config, store, metrics, (records) => forwarder.enqueue(records));

  const decoding = ingestDecoding(config);
  const { decoders } = decoding;
  const queue = new BoundedRecordQueue(config.queueRecords, config.queueBytes);
  const pipeline = new Pipeline(
    (sink, forwardUnclassified) => makeEngine(config, rules, unclassified, sink, forwardUnclassified),
    queue,
    outputs,
    log,
    {
      journal: store,
      isStoreUnavailable,
      unclassified: forwarder.wantsUnclassified,
      decodeReceived: (received, receivedAt) => decoders.decode(received, receivedAt),
    },
  );
  const { engine } = pipeline;
  let closed = false;
  let ready = false;
  // Nothing reaches the engine before the checked rules do: the journal is replayed then, and
  // ingest answers 503 + Retry-After until then.
  const whenReady = rules.reload().then(async (outcome) => {
    if (!outcome.ok && !rules.isLoaded()) throw rulesFailure(config.rulesDir, outcome.errors);
    if (closed) return;
    // Before the replay, which classifies again what came after the last checkpoint.
    const restoreStarted = performance.now();
    const restored = restoreCountWindows(countWindows, rules.current().countingRules, store);
    if (restored > 0) log.info({ events: restored, ms: Math.round(performance.now() - restoreStarted) }, 'count thresholds: stored events counted again');
    const replayed = await pipeline.replayJournal();
    if (replayed > 0) log.info({ batches: replayed }, 'replayed ingest batches accepted before the last stop');
    ready = true;
  });
  // Callers await `ready`; this keeps a failure from also surfacing as an unhandled rejection.
  whenReady.catch(() => undefined);

  const app = createApp(config, log);
  await app.register(ingestRoutes, {
    ...ingestOptions(config, metrics, decoding),
    submit: (batch) => {
      const backlog = forwarder.backlog();
      if (backlog !== undefined) throw backlogRefusal(backlog);
      return pipeline.submit(batch);
    },
    journalBody: (received, receivedAtMs) => (forwarder.backlog() === undefined ? pipeline.journalBody(received, receivedAtMs) : undefined),
    pace: () => queue.whenUncrowded(),
    paced: (waitedMs) => {
      metrics.ingestPacedAnswers.inc();
      metrics.ingestPacedSeconds.inc(waitedMs / 1000);
    },
    ready: () => ready,
    remoteWrite: { keep: isDirectMemorySeries, toRecords: recordsOfSeries },
  });
  await app.register(incidentRoutes, { incidents });
  await app.register(memoryRoutes, { memory });
  await app.register(rulesRoutes, { holder: rules, unclassified });
  await app.register(forwardRoutes, { forwarder, outbox: store });
  await app.register(webRoutes);

  // Probes answer without a token: orchestrators and load balancers cannot send one.
  app.get('/healthz', { config: { access: 'public' } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { access: 'public' } }, async (_request, reply) => {
    const storeOk = storeAnswers(store) && pipeline.storeWritable;
    const backlog = storeOk ? forwarder.backlog() : undefined;
    const forwarding = forwarder.targets.length > 0;
    const checks = { rules: ready && rules.isLoaded(), store: storeOk, ...(forwarding ? { forward: backlog === undefined } : {}) };
    const problem = pipeline.storeProblem;
    const fallback = rules.fallbackInUse();
    const details = {
      ...(problem === undefined ? {} : { store_problem: problem }),
      // Ready all the same: refusing traffic would only fill the shippers' buffers.
      ...(fallback === null ? {} : { rules_fallback: describeFallback(config.rulesDir, fallback) }),
      ...(forwarding && storeOk ? { forward: forwarder.status() } : {}),
    };
    if (checks.rules && checks.store && backlog === undefined) return reply.code(200).send({ ready: true, checks, ...details });
    const waitingFor = !checks.rules
      ? `rules: ${rules.loading() ?? (rules.isLoaded() ? 'replaying the ingest journal' : 'the last load failed')}`
      : !checks.store
        ? 'store: it does not take writes'
        : `forward: the outbox is full (${formatBytes(backlog!.pendingBytes)} of ${formatBytes(backlog!.outboxBytes)}); ${backlog!.target} is not taking events${backlog!.lastError === undefined ? '' : ` (${backlog!.lastError})`}`;
    return reply.code(503).send({ ready: false, checks, waiting_for: waitingFor, ...details });
  });
  registerServiceMetrics(metrics, { pipeline, queue, engine, rules, forwarder, decoders, store });
  registerDirectMemoryMetrics(metrics, memory);
  app.get('/metrics', async (_request, reply) => reply.type(metrics.contentType).send(await metrics.render()));

  pipeline.start();
  forwarder.start();
  return {
    app,
    pipeline,
    engine,
    rules,
    incidents,
    memory,
    unclassified,
    store,
    forwarder,
    metrics,
    ready: whenReady,
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      await decoders.close();
      pipeline.stop();
      await forwarder.stop(FORWARD_FLUSH_ON_STOP_MS);
      metrics.close();
      store.close();
    },
  };
}

/**
 * What a server does with the engine's output, over whichever store: records feed the memory
 * tracker; grouped records become events and incidents, and enter the forwarding outbox (through
 * `enqueue`) in the transaction that stores them; trend warnings are events like a rule's.
 */
export function storeOutputs(
  config: Config,
  store: Store,
  metrics: LeakwatchMetrics,
  enqueue: (records: readonly GroupedRecord[]) => void,
): { incidents: IncidentService; memory: MemoryTracker; outputs: StoreOutputs } {
  // A trend warning's evidence is what happened on its host over the hours its trend covers.
  const incidents = new IncidentService(store, { quietPeriodMs: config.resolveAfterMs, evidenceWindowMsByCategory: { [TREND_CATEGORY]: config.directMemoryWindowMs } });
  const memory = new MemoryTracker(store, {
    trendWindowMs: config.directMemoryWindowMs,
    configuredMax: config.directMemoryMax,
    horizonMs: config.directMemoryHorizonMs,
    warnRatio: config.directMemoryRatio,
  });
  // Trend warnings are events like a rule's: stored, counted and forwarded the same way.
  const storeWarnings = (warnings: LeakEvent[]): LeakEvent[] => (warnings.length === 0 ? [] : incidents.ingest(warnings, (newEvents) => enqueue(newEvents)).events);
  // Counted once committed.
  const count = (stored: readonly LeakEvent[]): void => {
    for (const event of stored) metrics.events.inc({ category: event.category });
  };
  const outputs: StoreOutputs = {
    records: (records) => count(storeWarnings(memory.observeRecords(records))),
    grouped: (grouped) => {
      // One transaction for the batch's events, the memory samples they carry and the warnings
      // those raise: a batch whose samples fail is not left half stored (sent again, its events
      // would be found stored and its samples never written). An event is in the outbox exactly
      // when it is stored (new events only, in close order with the unclassified records a
      // records=all target takes).
      count(
        incidents.transaction(() => {
          const stored = incidents.ingest(grouped.filter(isLeakEvent), (newEvents) => enqueue(asStored(grouped, newEvents))).events;
          return [...stored, ...storeWarnings(memory.observeEvents(stored))];
        }),
      );
    },
  };
  return { incidents, memory, outputs };
}

/** How request bodies become records: the same for a single process and an ingest node. */
export function ingestDecoding(config: Config): { decodeLimits: Partial<DecodeLimits>; inflight: InflightBytes; decoders: DecodePool } {
  const decodeLimits = { maxRecords: config.maxRecords, maxLineBytes: config.maxLineBytes, maxMessageBytes: config.maxMessageBytes, maxDepth: config.maxDepth };
  const inflight = new InflightBytes(config.maxInflightBytes);
  const decoders = new DecodePool(
    { maxBytes: config.maxBodyBytes, maxZstdWindowBytes: config.maxZstdWindowBytes, limits: decodeLimits },
    { threads: config.decodeThreads, inflight },
  );
  return { decodeLimits, inflight, decoders };
}

/** The ingest route's settings, whatever keeps the batches (the journal, or NATS JetStream). */
export function ingestOptions(config: Config, metrics: LeakwatchMetrics, decoding: ReturnType<typeof ingestDecoding>): Omit<IngestRoutesOptions, 'submit' | 'ready'> {
  return {
    accepted: (body) => {
      const labels = { format: body.format, encoding: body.encoding };
      metrics.ingestBodies.inc(labels);
      metrics.ingestBodyRecords.inc(labels, body.records);
      metrics.ingestBodyBytes.inc(labels, body.bytes);
      if (body.malformed > 0) metrics.ingestMalformed.inc(body.malformed);
    },
    maxBodyBytes: config.maxBodyBytes,
    limits: decoding.decodeLimits,
    maxZstdWindowBytes: config.maxZstdWindowBytes,
    maxInflightBytes: config.maxInflightBytes,
    inflight: decoding.inflight,
    decode: (received, receivedAt, claim) => decoding.decoders.decodeToBatch(received, receivedAt, claim),
    bodyTimeoutMs: config.bodyTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
  };
}

/** The answer while the forwarding outbox is full. */
export function backlogRefusal(backlog: ForwardBacklog): LeakwatchError {
  return new LeakwatchError(
    'LW_ERR_FORWARD_BACKLOG',
    `the forwarding outbox is full (${formatBytes(backlog.pendingBytes)} undelivered, --forward-outbox-bytes ${formatBytes(backlog.outboxBytes)}): ${backlog.target} is not taking events${backlog.lastError === undefined ? '' : ` (${backlog.lastError})`}; retry shortly`,
    { limit: { setting: '--forward-outbox-bytes', value: backlog.outboxBytes } },
  );
}

/** The service's HTTP app: the error shape and the tokens on every route. */
export function createApp(config: Config, log: Logger): LeakwatchApp {
  // Shippers post several times a second: a log line per request would drown the log that matters.
  const app = Fastify({
    loggerInstance: log,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.maxBodyBytes,
    // Backstop for what ingest's own timeouts do not see (headers that never end, other routes).
    requestTimeout: config.requestTimeoutMs + 5000,
  });
  installErrorShape(app);
  installAuth(app, { token: config.token, readToken: config.readToken });
  return app;
}

/** The engine of a server (a single process or an engine node): the rules in force, the open-group limits, the tally of unclassified groups. */
export function makeEngine(config: Config, rules: RuleSetHolder, unclassified: UnclassifiedTally, sink: EventSink, forwardUnclassified?: (group: Group) => void): Engine {
  return createEngine({
    groupers: () => rules.current().groupers,
    classifier: () => rules.current().classifier,
    limits: { maxStreams: config.maxOpenStreams, maxBytes: config.maxOpenBytes, maxHeldBytes: config.maxHeldBytes },
    sink,
    // Every unclassified group feeds the tally; in close order with the events only when
    // forwarding sends them too (#records=all), as the pipeline then buffers both in one order.
    unclassified: (group) => {
      unclassified.add(group);
      forwardUnclassified?.(group);
    },
    unclassifiedInCloseOrder: forwardUnclassified !== undefined,
  });
}

export function describeFallback(rulesDir: string, fallback: RulesFallback): string {
  const count = fallback.errors.length;
  return `the rules in ${rulesDir} did not load at start-up (${count} error${count === 1 ? '' : 's'}, GET /rules); running on the last good rules (hash ${fallback.hash}, saved ${fallback.saved_at})`;
}

interface MetricSources {
  pipeline: Pipeline;
  queue: BoundedRecordQueue;
  engine: Engine;
  rules: RuleSetHolder;
  forwarder: Forwarder;
  decoders: DecodePool;
  store: SqliteStore;
}

/** The figures other parts keep, read at scrape time (names as the README lists them). */
function registerServiceMetrics(metrics: LeakwatchMetrics, { pipeline, queue, engine, rules, forwarder, decoders, store }: MetricSources): void {
  const counters = pipeline.counters;
  metrics.counter('leakwatch_ingest_batches_total', 'Batches accepted by ingest.', () => counters.batchesAccepted);
  metrics.counter('leakwatch_ingest_records_total', 'Records accepted by ingest.', () => counters.recordsAccepted);
  metrics.counter('leakwatch_ingest_records_without_text_total', 'Accepted records with none of the text fields leakwatch reads (counted, not grouped).', () => counters.recordsWithoutText);
  metrics.counter('leakwatch_ingest_refused_batches_total', 'Batches answered 503 because the engine queue was full or the store did not take writes.', () => counters.batchesRefused);
  metrics.counter('leakwatch_decode_thread_failures_total', 'Decoding threads that died (out of their heap, say) and were replaced; their bodies were decoded on the main thread.', () => decoders.threadFailures);
  metrics.gauge('leakwatch_queue_records', 'Records waiting for the engine.', () => pipeline.queuedRecords);
  metrics.gauge('leakwatch_queue_bytes', 'Bytes (estimated) of the records waiting for the engine.', () => queue.bytes);
  metrics.counter('leakwatch_engine_lines_total', 'Lines the engine has grouped.', () => engine.stats().linesIn);
  metrics.counter('leakwatch_engine_groups_total', 'Multi-line records closed.', () => engine.stats().groupsClosed);
  metrics.counter('leakwatch_engine_events_total', 'Events produced by the rules.', () => engine.stats().eventsOut);
  metrics.gauge('leakwatch_engine_open_streams', 'Streams with an open record (open groups).', () => engine.stats().openStreams);
  metrics.gauge('leakwatch_engine_open_bytes', 'Bytes held by open records.', () => engine.stats().openBytes);
  metrics.counter('leakwatch_engine_evictions_total', 'Records closed early because the open-record cache was full.', () => engine.stats().evictions);
  metrics.gauge('leakwatch_engine_held_records', 'Records held to put out-of-order deliveries back in source order.', () => engine.stats().heldRecords ?? 0);
  metrics.gauge('leakwatch_engine_held_bytes', 'Estimated bytes of the records held for the reorder window (bounded by --max-held-bytes).', () => engine.stats().heldBytes ?? 0);
  metrics.counter('leakwatch_engine_early_released_records_total', 'Records grouped before their reorder window had passed because the held records were over --max-held-bytes.', () => engine.stats().earlyReleases ?? 0);
  metrics.counter('leakwatch_engine_late_records_total', 'Records that arrived after a later record of their stream had been grouped (beyond the reorder window).', () => engine.stats().lateRecords ?? 0);
  metrics.counter('leakwatch_engine_truncated_total', 'Records cut at max lines or bytes.', () => engine.stats().truncatedGroups);
  metrics.gauge('leakwatch_journal_replayed_batches', 'Ingest batches replayed from the journal at start-up.', () => counters.batchesReplayed);
  metrics.counter('leakwatch_store_write_failures_total', 'Store writes that failed (a full disk, say); what they carried was kept and retried.', () => counters.storeWriteFailures);
  metrics.counter('leakwatch_store_wal_checkpoints_total', 'Checkpoints of the SQLite write-ahead log made on their own thread, off the event loop (0: SQLite checkpoints inside its commits).', () => store.checkpointsOnThread);
  metrics.gauge('leakwatch_store_writable', '1 while the store takes writes; 0 while ingest answers 503 because it does not.', () => (pipeline.storeWritable ? 1 : 0));
  metrics.gauge('leakwatch_journal_replay_skipped_records', 'Records of replayed batches already in stored groups at the last checkpoint (not fed again).', () => counters.recordsSkippedOnReplay);
  metrics.counter('leakwatch_pipeline_errors_total', 'Failures of a pipeline stage (logged).', () => counters.outputErrors);
  metrics.gauge('leakwatch_rules_loaded', 'Rules in the active rule set.', () => rules.status().rules.length);
  metrics.counter('leakwatch_rules_reload_failures_total', 'Rule reloads rejected (the previous rules stayed active).', () => rules.reloadFailures);
  metrics.gauge('leakwatch_rules_last_reload_ok', '1 when the last rule reload succeeded.', () => (rules.status().last_reload.ok ? 1 : 0));
  metrics.gauge('leakwatch_rules_fallback_active', '1 while the rules in force are the data folder\'s last good copy because the rules folder did not load at start-up.', () => (rules.fallbackInUse() === null ? 0 : 1));

  const perTarget = (read: (status: ReturnType<Forwarder['status']>[number]) => number) => () =>
    forwarder.status().map((status): [Record<string, string>, number] => [{ target: status.target }, read(status)]);
  metrics.labelledGauge('leakwatch_forward_outbox_events', 'Events waiting in the outbox for a target.', ['target'], perTarget((status) => status.pending));
  metrics.labelledGauge('leakwatch_forward_outbox_bytes', 'Bytes of the events waiting in the outbox for a target.', ['target'], perTarget((status) => status.pending_bytes));
  metrics.labelledGauge('leakwatch_forward_outbox_oldest_seconds', 'Age of the oldest event waiting for a target (0 when none waits).', ['target'], perTarget((status) => status.oldest_pending_seconds ?? 0));
  metrics.labelledGauge('leakwatch_forward_dead_letters', 'Dead letters a target holds (GET /forward/dead-letters).', ['target'], perTarget((status) => status.dead_letters));
  metrics.labelledGauge('leakwatch_forward_target_up', '1 while the last attempt to a target succeeded, 0 while it fails.', ['target'], perTarget((status) => (status.failing_since === null ? 1 : 0)));
  metrics.gauge('leakwatch_forward_backlog', '1 while ingest answers 503 because the outbox is full (--forward-outbox-bytes).', () => (forwarder.backlog() === undefined ? 0 : 1));
}

/**
 * The grouped records in close order, each event as it was stored (its incident filled in), those
 * not stored (seen before, by id) left out, unclassified records as they are.
 */
/**
 * The per-process direct-memory gauges (src/memory/metrics.ts) in the registry, read once per
 * scrape: the four families come from the same views.
 */
export function registerDirectMemoryMetrics(metrics: LeakwatchMetrics, memory: MemoryTracker): void {
  let cache: { at: number; samples: DirectMemoryMetricSample[] } | undefined;
  const samples = (): DirectMemoryMetricSample[] => {
    const now = Date.now();
    if (cache === undefined || now - cache.at > 1000) cache = { at: now, samples: directMemoryMetrics(memory.processes({}, 1)) };
    return cache.samples;
  };
  for (const family of Object.values(DIRECT_MEMORY_METRICS)) {
    metrics.labelledGauge(family.name, family.help, ['host', 'service', 'pid', 'source'], () =>
      samples()
        .filter((sample) => sample.name === family.name)
        .map((sample) => [sample.labels, sample.value] as const),
    );
  }
}

export function asStored(grouped: readonly GroupedRecord[], stored: readonly LeakEvent[]): GroupedRecord[] {
  if (stored.length === grouped.length) return [...stored];
  const byId = new Map(stored.map((event) => [event.id, event]));
  const out: GroupedRecord[] = [];
  for (const record of grouped) {
    if (!isLeakEvent(record)) out.push(record);
    else {
      const event = byId.get(record.id);
      if (event !== undefined) out.push(event);
    }
  }
  return out;
}

/** 127.0.0.0/8, ::1 and localhost reach only this machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function storeAnswers(store: SqliteStore): boolean {
  try {
    store.getMeta('readyz');
    return true;
  } catch {
    return false;
  }
}

/** What runServer runs: a single process (buildLeakwatch) or a node of the scale-out mode (scale/node.ts). */
export interface RunnableService {
  app: LeakwatchApp;
  rules: RuleSetHolder;
  ready: Promise<void>;
  close(): Promise<void>;
  /** Settles when the service cannot go on (a scale-out node lost its partitions): it stops, exit code 1. */
  failed?: Promise<string>;
  /** Words for the start-up line. */
  describe?: Record<string, unknown>;
}

/** `leakwatch serve`: listens until SIGINT/SIGTERM; SIGHUP reloads the rules. Returns the exit code. */
export async function runServer(config: Config): Promise<number> {
  limitHeapGrowth(config.heapGrowthPercent);
  stopPretenuring();
  const log = pino({ level: config.logLevel });
  let service: RunnableService;
  try {
    // The scale-out code (NATS, PostgreSQL) is loaded only by the roles that use it.
    service = config.role === 'single' ? await buildLeakwatch(config, log) : await (await import('./scale/node.js')).buildScaleNode(config, log);
  } catch (error) {
    log.fatal({ err: error }, error instanceof Error ? error.message : 'startup failed');
    return 1;
  }
  const stopWatching = service.rules.watch();
  const onHangup = (): void => {
    void service.rules.reload();
  };
  process.on('SIGHUP', onHangup);
  try {
    await service.app.listen({ port: config.port, host: config.host });
  } catch (error) {
    log.fatal({ err: error }, `cannot listen on ${config.host}:${config.port}`);
    await service.close();
    return 1;
  }
  try {
    await service.ready;
  } catch (error) {
    log.fatal({ err: error }, error instanceof Error ? error.message : 'the rules failed their check');
    process.off('SIGHUP', onHangup);
    stopWatching();
    await service.close();
    return 1;
  }
  const fallback = service.rules.fallbackInUse();
  if (fallback !== null) log.error({ rules: config.rulesDir, last_good_dir: fallback.dir }, `starting ON THE LAST GOOD RULES: ${describeFallback(config.rulesDir, fallback)}`);
  if (config.token === undefined && !isLoopback(config.host)) {
    log.warn(
      { host: config.host },
      `LISTENING ON ${config.host} WITHOUT A TOKEN: anyone who can reach this port can send logs, read incidents and resolve them; set LEAKWATCH_TOKEN or --token-file`,
    );
  }
  const missingMalloc = missingMallocSettings();
  if (missingMalloc.length > 0) {
    log.info(
      { set: missingMalloc },
      `glibc's malloc runs on its defaults here: set ${missingMalloc.join(' ')} in the environment (the Docker image and npm start do) to keep freed request buffers and threads' freed memory from staying resident (README, "Memory")`,
    );
  }
  const missingSemiSpace = missingSemiSpaceFlag();
  if (missingSemiSpace !== undefined) {
    log.info(
      { nodeFlag: missingSemiSpace },
      `V8's young generation is at its default size here: run node with ${missingSemiSpace} (on its command line or in NODE_OPTIONS; the Docker image and npm start do) to take ~13 MiB off the peak RSS at full ingest rate (README, "Memory")`,
    );
  }
  // The last start-up line, after every warning: whoever waits for it has seen them all.
  log.info({ dataDir: config.dataDir, rules: config.rulesDir, rulesLoaded: service.rules.status().rules.length, ...service.describe }, 'leakwatch is ready');
  const stop = await new Promise<{ signal: NodeJS.Signals } | { failure: string }>((resolve) => {
    process.once('SIGINT', () => resolve({ signal: 'SIGINT' }));
    process.once('SIGTERM', () => resolve({ signal: 'SIGTERM' }));
    void service.failed?.then((failure) => resolve({ failure }));
  });
  if ('failure' in stop) log.fatal({ failure: stop.failure }, `stopping: ${stop.failure}`);
  else log.info({ signal: stop.signal }, 'shutting down');
  process.off('SIGHUP', onHangup);
  stopWatching();
  await service.close();
  return 'failure' in stop ? 1 : 0;
}
