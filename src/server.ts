import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import Fastify, { LogController, type FastifyInstance, type RawServerDefault } from 'fastify';
import { pino, type Logger } from 'pino';
import { installAuth } from './auth.js';
import type { Config } from './config.js';
import { createEngine } from './engine/create-engine.js';
import { UnclassifiedTally } from './engine/unclassified-tally.js';
import { installErrorShape } from './errors.js';
import type { Engine } from './engine/engine.js';
import type { LeakEvent } from './engine/event.js';
import { IncidentService } from './incidents/service.js';
import { incidentRoutes } from './incidents/routes.js';
import { DecodePool } from './ingest/decode-pool.js';
import { InflightBytes } from './ingest/inflight.js';
import { BoundedRecordQueue } from './ingest/queue.js';
import { ingestRoutes } from './ingest/routes.js';
import { directMemoryMetrics } from './memory/metrics.js';
import { MemoryTracker } from './memory/tracker.js';
import { memoryRoutes } from './memory/routes.js';
import { isDirectMemorySeries, recordsOfSeries } from './memory/sources.js';
import { TREND_CATEGORY } from './memory/warning.js';
import { renderPrometheus, type MetricSample } from './metrics.js';
import { Pipeline } from './pipeline.js';
import { formatProblem, loadRuleSet, RuleSetHolder, rulesRoutes, type RuleProblem, type RulesFallback } from './rules/index.js';
import { isStoreUnavailable, SqliteStore } from './store/sqlite-store.js';
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
  /**
   * Resolves once the rules have passed the regex safety check and the journal has been replayed;
   * until then /readyz answers 503 and ingest 503 + Retry-After. Rejects (StartupError) when the
   * rules fail that check and the data folder has no last good rule set to fall back to.
   */
  ready: Promise<void>;
  /** Stops taking requests, processes what was accepted, closes every open group, closes the store. */
  close(): Promise<void>;
}

/** First-line shapes of unclassified records kept in memory (each with a 12-line example: about 4 MB at most). */
const UNCLASSIFIED_SHAPES_KEPT = 1000;

export class StartupError extends Error {
  override readonly name = 'StartupError';
}

function rulesFailure(rulesDir: string, errors: readonly RuleProblem[]): StartupError {
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
    store = new SqliteStore(config.dataDir);
  } catch (error) {
    throw new StartupError(`cannot open the store in ${config.dataDir}: ${(error as Error).message}`);
  }
  const rules = new RuleSetHolder(config.rulesDir, log, {
    safetyCacheFile: join(config.dataDir, 'regex-safety-cache.json'),
    lastGoodDir: join(config.dataDir, 'rules-last-good'),
  });
  // Broken rules with nothing to fall back to refuse the start before listening; with a last good
  // copy in the data folder the server starts on it (the holder says so loudly).
  const compiled = await loadRuleSet(config.rulesDir, { checkRegexSafety: false });
  if (!compiled.ruleSet && (await rules.lastGoodCopy()) === null) {
    store.close();
    throw rulesFailure(config.rulesDir, compiled.errors);
  }
  // A trend warning's evidence is what happened on its host over the hours its trend covers.
  const incidents = new IncidentService(store, { quietPeriodMs: config.resolveAfterMs, evidenceWindowMsByCategory: { [TREND_CATEGORY]: config.directMemoryWindowMs } });
  const memory = new MemoryTracker(store, {
    trendWindowMs: config.directMemoryWindowMs,
    configuredMax: config.directMemoryMax,
    horizonMs: config.directMemoryHorizonMs,
    warnRatio: config.directMemoryRatio,
  });
  const ingestWarnings = (warnings: LeakEvent[]): void => {
    if (warnings.length > 0) incidents.ingest(warnings);
  };
  const unclassified = new UnclassifiedTally(UNCLASSIFIED_SHAPES_KEPT);

  const decodeLimits = { maxRecords: config.maxRecords, maxLineBytes: config.maxLineBytes, maxMessageBytes: config.maxMessageBytes, maxDepth: config.maxDepth };
  const inflight = new InflightBytes(config.maxInflightBytes);
  const decoders = new DecodePool(
    { maxBytes: config.maxBodyBytes, maxZstdWindowBytes: config.maxZstdWindowBytes, limits: decodeLimits },
    { threads: config.decodeThreads, inflight },
  );
  const queue = new BoundedRecordQueue(config.queueRecords, config.queueBytes);
  const pipeline = new Pipeline(
    (sink) =>
      createEngine({
        groupers: () => rules.current().groupers,
        classifier: () => rules.current().classifier,
        limits: { maxStreams: config.maxOpenStreams, maxBytes: config.maxOpenBytes, maxHeldBytes: config.maxHeldBytes },
        sink,
        unclassified: (group) => unclassified.add(group),
        unclassifiedInCloseOrder: false,
      }),
    queue,
    {
      records: (records) => ingestWarnings(memory.observeRecords(records)),
      events: (events) => {
        const stored = incidents.ingest(events);
        ingestWarnings(memory.observeEvents(stored.events));
      },
    },
    log,
    {
      journal: store,
      isStoreUnavailable,
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
    const replayed = await pipeline.replayJournal();
    if (replayed > 0) log.info({ batches: replayed }, 'replayed ingest batches accepted before the last stop');
    ready = true;
  });
  // Callers await `ready`; this keeps a failure from also surfacing as an unhandled rejection.
  whenReady.catch(() => undefined);

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
  await app.register(ingestRoutes, {
    submit: (batch) => pipeline.submit(batch),
    maxBodyBytes: config.maxBodyBytes,
    limits: decodeLimits,
    maxZstdWindowBytes: config.maxZstdWindowBytes,
    maxInflightBytes: config.maxInflightBytes,
    inflight,
    decode: (received, receivedAt, claim) => decoders.decode(received, receivedAt, claim),
    bodyTimeoutMs: config.bodyTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    ready: () => ready,
    remoteWrite: { keep: isDirectMemorySeries, toRecords: recordsOfSeries },
  });
  await app.register(incidentRoutes, { incidents });
  await app.register(memoryRoutes, { memory });
  await app.register(rulesRoutes, { holder: rules, unclassified });
  await app.register(webRoutes);

  // Probes answer without a token: orchestrators and load balancers cannot send one.
  app.get('/healthz', { config: { access: 'public' } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { access: 'public' } }, async (_request, reply) => {
    const checks = { rules: ready && rules.isLoaded(), store: storeAnswers(store) && pipeline.storeWritable };
    const problem = pipeline.storeProblem;
    const fallback = rules.fallbackInUse();
    const details = {
      ...(problem === undefined ? {} : { store_problem: problem }),
      // Ready all the same: refusing traffic would only fill the shippers' buffers.
      ...(fallback === null ? {} : { rules_fallback: describeFallback(config.rulesDir, fallback) }),
    };
    if (checks.rules && checks.store) return reply.code(200).send({ ready: true, checks, ...details });
    const waitingFor = !checks.rules ? `rules: ${rules.loading() ?? (rules.isLoaded() ? 'replaying the ingest journal' : 'the last load failed')}` : 'store: it does not take writes';
    return reply.code(503).send({ ready: false, checks, waiting_for: waitingFor, ...details });
  });
  // The longest the event loop was held since start: what every request may have had to wait.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  app.get('/metrics', async (_request, reply) => {
    const stats = engine.stats();
    const counters = pipeline.counters;
    const samples: MetricSample[] = [
      { name: 'leakwatch_ingest_batches_total', help: 'Batches accepted by ingest.', type: 'counter', value: counters.batchesAccepted },
      { name: 'leakwatch_ingest_records_total', help: 'Records accepted by ingest.', type: 'counter', value: counters.recordsAccepted },
      { name: 'leakwatch_ingest_records_without_text_total', help: 'Accepted records with none of the text fields leakwatch reads (counted, not grouped).', type: 'counter', value: counters.recordsWithoutText },
      { name: 'leakwatch_ingest_refused_batches_total', help: 'Batches answered 503 because the engine queue was full.', type: 'counter', value: counters.batchesRefused },
      { name: 'leakwatch_queue_records', help: 'Records waiting for the engine.', type: 'gauge', value: pipeline.queuedRecords },
      { name: 'leakwatch_queue_bytes', help: 'Bytes (estimated) of the records waiting for the engine.', type: 'gauge', value: queue.bytes },
      { name: 'leakwatch_engine_lines_total', help: 'Lines the engine has grouped.', type: 'counter', value: stats.linesIn },
      { name: 'leakwatch_engine_groups_total', help: 'Multi-line records closed.', type: 'counter', value: stats.groupsClosed },
      { name: 'leakwatch_engine_events_total', help: 'Events produced by the rules.', type: 'counter', value: stats.eventsOut },
      { name: 'leakwatch_engine_open_streams', help: 'Streams with an open record.', type: 'gauge', value: stats.openStreams },
      { name: 'leakwatch_engine_open_bytes', help: 'Bytes held by open records.', type: 'gauge', value: stats.openBytes },
      { name: 'leakwatch_engine_evictions_total', help: 'Records closed early because the open-record cache was full.', type: 'counter', value: stats.evictions },
      { name: 'leakwatch_engine_held_records', help: 'Records held to put out-of-order deliveries back in source order.', type: 'gauge', value: stats.heldRecords ?? 0 },
      { name: 'leakwatch_engine_held_bytes', help: 'Estimated bytes of the records held for the reorder window (bounded by --max-held-bytes).', type: 'gauge', value: stats.heldBytes ?? 0 },
      { name: 'leakwatch_engine_early_released_records_total', help: 'Records grouped before their reorder window had passed because the held records were over --max-held-bytes.', type: 'counter', value: stats.earlyReleases ?? 0 },
      { name: 'leakwatch_engine_late_records_total', help: 'Records that arrived after a later record of their stream had been grouped (beyond the reorder window).', type: 'counter', value: stats.lateRecords ?? 0 },
      { name: 'leakwatch_engine_truncated_total', help: 'Records cut at max lines or bytes.', type: 'counter', value: stats.truncatedGroups },
      { name: 'leakwatch_journal_replayed_batches', help: 'Ingest batches replayed from the journal at start-up.', type: 'gauge', value: counters.batchesReplayed },
      { name: 'leakwatch_store_write_failures_total', help: 'Store writes that failed (a full disk, say); what they carried was kept and retried.', type: 'counter', value: counters.storeWriteFailures },
      { name: 'leakwatch_store_writable', help: '1 while the store takes writes; 0 while ingest answers 503 because it does not.', type: 'gauge', value: pipeline.storeWritable ? 1 : 0 },
      { name: 'leakwatch_journal_replay_skipped_records', help: 'Records of replayed batches already in stored groups at the last checkpoint (not fed again).', type: 'gauge', value: counters.recordsSkippedOnReplay },
      { name: 'leakwatch_pipeline_errors_total', help: 'Failures of a pipeline stage (logged).', type: 'counter', value: counters.outputErrors },
      { name: 'leakwatch_rules_loaded', help: 'Rules in the active rule set.', type: 'gauge', value: rules.status().rules.length },
      { name: 'leakwatch_rules_reload_failures_total', help: 'Rule reloads rejected (the previous rules stayed active).', type: 'counter', value: rules.reloadFailures },
      { name: 'leakwatch_rules_last_reload_ok', help: '1 when the last rule reload succeeded.', type: 'gauge', value: rules.status().last_reload.ok ? 1 : 0 },
      { name: 'leakwatch_rules_fallback_active', help: '1 while the rules in force are the data folder\'s last good copy because the rules folder did not load at start-up.', type: 'gauge', value: rules.fallbackInUse() === null ? 0 : 1 },
      { name: 'leakwatch_event_loop_delay_max_seconds', help: 'Longest event-loop delay since start.', type: 'gauge', value: loopDelay.max / 1e9 },
      { name: 'leakwatch_event_loop_delay_p99_seconds', help: '99th percentile of the event-loop delay since start.', type: 'gauge', value: loopDelay.percentile(99) / 1e9 },
      { name: 'process_resident_memory_bytes', help: 'Resident memory size in bytes.', type: 'gauge', value: process.memoryUsage.rss() },
      ...directMemoryMetrics(memory.processes({}, 1)),
    ];
    return reply.type('text/plain; version=0.0.4').send(renderPrometheus(samples));
  });

  pipeline.start();
  return {
    app,
    pipeline,
    engine,
    rules,
    incidents,
    memory,
    unclassified,
    store,
    ready: whenReady,
    async close() {
      if (closed) return;
      closed = true;
      loopDelay.disable();
      await app.close();
      await decoders.close();
      pipeline.stop();
      store.close();
    },
  };
}

function describeFallback(rulesDir: string, fallback: RulesFallback): string {
  const count = fallback.errors.length;
  return `the rules in ${rulesDir} did not load at start-up (${count} error${count === 1 ? '' : 's'}, GET /rules); running on the last good rules (hash ${fallback.hash}, saved ${fallback.saved_at})`;
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

/** `leakwatch serve`: listens until SIGINT/SIGTERM; SIGHUP reloads the rules. Returns the exit code. */
export async function runServer(config: Config): Promise<number> {
  const log = pino({ level: config.logLevel });
  let service: Leakwatch;
  try {
    service = await buildLeakwatch(config, log);
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
  if (config.forwardUrls.length > 0) {
    // Accepted now so that configurations stay valid when the forwarder lands; said loudly meanwhile.
    log.warn({ forwardUrls: config.forwardUrls }, 'forwarding is not implemented in this version; events are not sent downstream');
  }
  // The last start-up line, after every warning: whoever waits for it has seen them all.
  log.info({ dataDir: config.dataDir, rules: config.rulesDir, rulesLoaded: service.rules.status().rules.length }, 'leakwatch is ready');
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  log.info({ signal }, 'shutting down');
  process.off('SIGHUP', onHangup);
  stopWatching();
  await service.close();
  return 0;
}
