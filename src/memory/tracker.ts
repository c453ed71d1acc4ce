import { LRUCache } from 'lru-cache';
import { SEVERITIES, type LeakEvent } from '../engine/event.js';
import type { LogRecord } from '../ingest/record.js';
import { streamKeyOf } from '../ingest/record.js';
import type { LearnedLimit, MemorySample, ProcessId, Store, StoredSample } from '../store/store.js';
import { configuredMax, type DirectMemoryMax } from './limits.js';
import { mayCarrySamples, MemorySource, samplesOfRecord, SOURCE_PREFERENCE, TREND_SOURCES } from './sources.js';
import { exhaustionOf, floorTrend, TREND_DEFAULTS, type Exhaustion, type FloorTrend, type TrendOptions } from './trend.js';
import { severityOfWarning, trendIncidentKey, trendWarningEvent, type TrendWarningFacts } from './warning.js';

export { MemorySource } from './sources.js';

export interface MemoryTrackerOptions {
  /** Samples kept per process. Default 4000 (16 h of a 15 s scrape). */
  samplesPerProcess?: number;
  /** Event-time span the trend looks back over. Default 6 h. */
  trendWindowMs?: number;
  /** How the floor's trend is judged (windows, confidence, shortest span). */
  trend?: TrendOptions;
  /** `--direct-memory-max`: limits of processes that never reported one. */
  configuredMax?: readonly DirectMemoryMax[];
  /** A process with no sample for this long (event time, behind the newest sample seen) is forgotten. Default 30 d. */
  processRetentionMs?: number;
  /** Warn when exhaustion is predicted within this much event time. Default 24 h. */
  horizonMs?: number;
  /** Warn (critical) when a continuous gauge reaches this share of the limit. Default 0.9. */
  warnRatio?: number;
  /** While a warning's incident is open, a new warning of the same severity is added at most this often. Default 10 min. */
  rewarnMs?: number;
}

export type MaxSource = 'reported' | 'learned' | 'setting';

export interface TrendView {
  source: string;
  slope_bytes_per_hour: number;
  slope_low_bytes_per_hour: number;
  slope_high_bytes_per_hour: number;
  /** Probability that the floor is rising (one-sided Mann–Kendall over the window minimums). */
  confidence: number;
  /** Confident, long enough and the whole 95 % interval above zero: only then is an exhaustion time told. */
  rising: boolean;
  windows: number;
  span_seconds: number;
  /** The floor line at the newest sample. */
  floor_bytes: number;
  /** How far above the floor the samples reach (90th percentile). */
  excursion_bytes: number;
}

export interface ProcessMemoryView {
  host: string;
  service: string;
  pid: string;
  used_bytes: number;
  max_bytes: number | null;
  ratio: number | null;
  /** Where the limit comes from: this process's own report, another process of the host and service, or --direct-memory-max. */
  max_source: MaxSource | null;
  /** Time of the newest sample. */
  last_seen: string;
  source: string;
  /** Oldest first. */
  samples: { t: string; used_bytes: number; max_bytes: number | null; source: string }[];
  trend: TrendView | null;
  trend_bytes_per_hour: number | null;
  exhaustion_eta: string | null;
  exhaustion_earliest: string | null;
  exhaustion_latest: string | null;
  /** From the newest sample of the trend's source to the predicted exhaustion. */
  seconds_to_exhaustion: number | null;
}

interface ResolvedMax {
  bytes: number;
  source: MaxSource;
}

interface TrendAt {
  source: string;
  trend: FloorTrend;
  latest: MemorySample;
}

function byteCount(value: unknown): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : NaN;
  return Number.isFinite(n) && n >= 0 ? Math.round(n) : undefined;
}

function sourceOfEvent(event: LeakEvent): string {
  const classes = [event.exception?.class ?? '', ...(event.causes ?? []).map((c) => c.class)];
  if (classes.some((c) => c.endsWith('OutOfDirectMemoryError')) || /byte\(s\) of direct memory/.test(event.text ?? '')) {
    return MemorySource.nettyOodm;
  }
  if (/direct buffer memory/i.test(event.text ?? '')) return MemorySource.jdkDirectBuffer;
  return event.rule.includes('netty') ? MemorySource.nettyOodm : MemorySource.jdkDirectBuffer;
}

/** The first minutes of a process, left out of its trend (see trendAt). */
const WARM_UP_MS = 5 * 60_000;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/**
 * Of the limits a batch reports (samples that carry a max, and limits on their own), the newest
 * per host and service: the store keeps only that one, and an upsert per OOM event of a flood
 * cost more than the rest of the batch's memory work. Later in the batch wins a tie, as it did
 * when each was saved one by one.
 */
function newestLimits(samples: readonly StoredSample[], limits: readonly LearnedLimit[]): Iterable<LearnedLimit> {
  const newest = new Map<string, LearnedLimit>();
  const offer = (limit: LearnedLimit): void => {
    // Not streamKeyOf: its cache of recent streams is the ingest path's, and this is no stream.
    const key = `${limit.host}\u001f${limit.service}`;
    const kept = newest.get(key);
    if (kept === undefined || limit.learned_at >= kept.learned_at) newest.set(key, limit);
  };
  for (const sample of samples) {
    if (sample.max_bytes !== null && sample.max_bytes > 0) {
      offer({ host: sample.host, service: sample.service, pid: sample.pid, max_bytes: sample.max_bytes, learned_at: sample.t, source: sample.source });
    }
  }
  for (const limit of limits) offer(limit);
  return newest.values();
}

/**
 * Direct memory per process (host, service, pid): samples from direct-memory events, linkerd
 * metrics snapshots and Prometheus series, the limit each process runs against, the trend of its
 * floor and when it runs out. The Store holds samples and learned limits, so they survive a
 * restart. Each batch of samples is judged as it arrives, and a `direct-memory-trend` warning is
 * returned when the exhaustion is predicted within the horizon or a continuous gauge passed the
 * ratio threshold; the caller hands it to the incident service, whose open incident spaces repeats.
 */
export class MemoryTracker {
  private readonly samplesPerProcess: number;
  private readonly trendWindowMs: number;
  private readonly trendOptions: TrendOptions;
  private readonly configured: readonly DirectMemoryMax[];
  private readonly processRetentionMs: number;
  private readonly horizonMs: number;
  private readonly warnRatio: number;
  private readonly rewarnMs: number;
  private readonly evaluateEveryMs: number;
  private newestSampleTime = Number.MIN_SAFE_INTEGER;
  private savesSinceRetention = 0;
  private readonly insertsSincePrune = new LRUCache<string, { process: ProcessId; count: number }>({ max: 10_000 });
  /**
   * The trend each process's view showed, at the newest sample time it was computed for: a view
   * (every /metrics scrape, GET /memory) reads up to samplesPerProcess samples per process for
   * it, ~1 ms a process, so 1,000 processes held each scrape's event-loop turn for a second. A
   * process's entry goes when its samples are written or pruned here; after a minute at most when
   * another process writes them (the nodes of the scale-out mode share a store).
   */
  private readonly viewTrends = new LRUCache<string, { newest: number; at: TrendAt | null }>({ max: 10_000, ttl: 60_000 });

  constructor(
    private readonly store: Store,
    options: MemoryTrackerOptions = {},
  ) {
    this.samplesPerProcess = options.samplesPerProcess ?? 4000;
    this.trendWindowMs = options.trendWindowMs ?? 6 * 3_600_000;
    this.trendOptions = options.trend ?? {};
    this.configured = options.configuredMax ?? [];
    this.processRetentionMs = options.processRetentionMs ?? 30 * 86_400_000;
    this.horizonMs = options.horizonMs ?? 24 * 3_600_000;
    this.warnRatio = options.warnRatio ?? 0.9;
    this.rewarnMs = options.rewarnMs ?? 10 * 60_000;
    this.evaluateEveryMs = Math.floor(this.trendWindowMs / 200);
    if (!Number.isSafeInteger(this.samplesPerProcess) || this.samplesPerProcess < 2) throw new RangeError('memory: samplesPerProcess must be a whole number ≥ 2');
    if (!Number.isSafeInteger(this.trendWindowMs) || this.trendWindowMs < 1) throw new RangeError('memory: trendWindowMs must be a positive whole number');
    if (!(this.warnRatio > 0 && this.warnRatio <= 1)) throw new RangeError('memory: warnRatio must be in (0, 1]');
  }

  /** Samples carried by a batch of records (metrics snapshots, mapped Prometheus series), in one transaction; returns the warnings they raise. */
  observeRecords(records: readonly LogRecord[]): LeakEvent[] {
    const samples: StoredSample[] = [];
    const limits: LearnedLimit[] = [];
    for (const record of records) {
      if (!mayCarrySamples(record)) continue;
      const found = samplesOfRecord(record);
      samples.push(...found.samples);
      limits.push(...found.limits);
    }
    return this.save(samples, limits);
  }

  /** The used/max numbers of direct-memory events (OutOfDirectMemoryError, JDK "Cannot reserve"). */
  observeEvents(events: readonly LeakEvent[]): LeakEvent[] {
    const samples: StoredSample[] = [];
    for (const event of events) {
      const used = byteCount(event.fields?.['used_bytes']);
      if (used === undefined) continue;
      const t = Date.parse(event.timestamp);
      if (!Number.isFinite(t)) continue;
      const max = byteCount(event.fields['max_bytes']);
      samples.push({ host: event.host, service: event.service, pid: event.pid, t, used_bytes: used, max_bytes: max ?? null, source: sourceOfEvent(event) });
    }
    return this.save(samples, []);
  }

  private save(samples: readonly StoredSample[], limits: readonly LearnedLimit[]): LeakEvent[] {
    if (samples.length === 0 && limits.length === 0) return [];
    return this.store.transaction(() => {
      this.store.insertSamples(samples);
      for (const limit of newestLimits(samples, limits)) this.store.saveLimit(limit);
      this.prune(samples);
      return this.warningsFor(samples);
    });
  }

  private prune(samples: readonly StoredSample[]): void {
    // Pruning every insert would cost a DELETE per sample; a slack of 10% keeps the bound.
    const slack = Math.max(1, Math.floor(this.samplesPerProcess / 10));
    for (const sample of samples) {
      const key = streamKeyOf(sample.host, sample.service, sample.pid);
      this.viewTrends.delete(key);
      const entry = this.insertsSincePrune.get(key) ?? { process: { host: sample.host, service: sample.service, pid: sample.pid }, count: slack };
      entry.count++;
      if (entry.count >= slack) {
        this.store.pruneSamplesOf(entry.process, this.samplesPerProcess);
        entry.count = 0;
      }
      this.insertsSincePrune.set(key, entry);
      this.newestSampleTime = Math.max(this.newestSampleTime, sample.t);
    }
    // Restarts leave dead pids behind; sweeping for them is a scan, so only every 1000 saves.
    if (this.savesSinceRetention++ % 1000 === 0 && this.store.pruneSilentProcesses(this.newestSampleTime - this.processRetentionMs) > 0) this.viewTrends.clear();
  }

  /**
   * Judges each process of the batch at its new samples' times, oldest first, as if they had come
   * one by one (spaced by 1/200 of the trend window, and always at the newest). Nothing is kept
   * between batches: a batch retried after a store failure is judged the same way again, and its
   * warnings have the same ids.
   */
  private warningsFor(samples: readonly StoredSample[]): LeakEvent[] {
    const timesByProcess = new Map<string, { process: ProcessId; times: number[] }>();
    for (const sample of samples) {
      if (!TREND_SOURCES.includes(sample.source)) continue;
      const key = streamKeyOf(sample.host, sample.service, sample.pid);
      let entry = timesByProcess.get(key);
      if (!entry) timesByProcess.set(key, (entry = { process: { host: sample.host, service: sample.service, pid: sample.pid }, times: [] }));
      entry.times.push(sample.t);
    }
    const warnings: LeakEvent[] = [];
    const warnedInBatch = new Map<string, LeakEvent>();
    for (const { process, times } of timesByProcess.values()) {
      times.sort((a, b) => a - b);
      let judgedAt = Number.NEGATIVE_INFINITY;
      for (let index = 0; index < times.length; index++) {
        const t = times[index]!;
        if (t - judgedAt < this.evaluateEveryMs && index < times.length - 1) continue;
        judgedAt = t;
        const facts = this.judge(process, t);
        const key = trendIncidentKey(process.host, process.service);
        if (facts === undefined || !this.isNewWarning(facts, warnedInBatch.get(key))) continue;
        const event = trendWarningEvent(facts);
        warnedInBatch.set(key, event);
        warnings.push(event);
      }
    }
    return warnings;
  }

  /** Repeats of an open warning (its incident's last_seen, or one earlier in the batch) are spaced by rewarnMs unless they are more severe. */
  private isNewWarning(facts: TrendWarningFacts, earlierInBatch: LeakEvent | undefined): boolean {
    const severity = SEVERITIES.indexOf(severityOfWarning(facts));
    if (earlierInBatch) {
      return facts.t - Date.parse(earlierInBatch.timestamp) >= this.rewarnMs || severity > SEVERITIES.indexOf(earlierInBatch.severity);
    }
    const incident = this.store.incidentByKey(trendIncidentKey(facts.host, facts.service));
    if (!incident || incident.status !== 'open') return true;
    return facts.t - incident.last_seen >= this.rewarnMs || severity > SEVERITIES.indexOf(incident.severity);
  }

  /** The warning a process's samples up to `t` call for, if any. */
  private judge(process: ProcessId, t: number): TrendWarningFacts | undefined {
    const at = this.trendAt(process, t);
    if (at === undefined) return undefined;
    const max = this.maxOf(process, t);
    if (max === null) return undefined;
    const exhaustion = exhaustionOf(at.trend, max.bytes);
    const ratio = at.latest.used_bytes / max.bytes;
    const reasons: TrendWarningFacts['reasons'] = [];
    if (exhaustion !== null && exhaustion.at - at.latest.t <= this.horizonMs) reasons.push('horizon');
    if (ratio >= this.warnRatio) reasons.push('ratio');
    if (reasons.length === 0) return undefined;
    const { trend } = at;
    return {
      ...process,
      t: at.latest.t,
      source: at.source,
      used_bytes: at.latest.used_bytes,
      max_bytes: max.bytes,
      max_source: max.source,
      ratio,
      slope_bytes_per_hour: trend.slopePerHour,
      slope_low_bytes_per_hour: trend.slopeLowPerHour,
      slope_high_bytes_per_hour: trend.slopeHighPerHour,
      confidence: trend.confidence,
      windows: trend.windows,
      span_seconds: Math.round(trend.spanMs / 1000),
      exhaustion_at: exhaustion?.at ?? null,
      earliest_exhaustion_at: exhaustion?.earliest ?? null,
      latest_exhaustion_at: exhaustion?.latest ?? null,
      reasons,
    };
  }

  /**
   * The trend of the best continuous source that has enough samples in the window before `until`.
   * When the series starts inside the window (a process seen from its start), its first minutes
   * are left out: a JVM fills its pools to their working size then (Netty's chunks for the first
   * connections, the thread caches), a rise that is no leak and would steepen the floor.
   */
  private trendAt(process: ProcessId, until: number): TrendAt | undefined {
    const recent = this.store.samplesOf(process, this.samplesPerProcess, until - this.trendWindowMs - WARM_UP_MS, until);
    const seenFromStart = recent.length < this.samplesPerProcess && this.store.samplesOf(process, 1, Number.MIN_SAFE_INTEGER, until - this.trendWindowMs - WARM_UP_MS).length === 0;
    const minWindows = this.trendOptions.minWindows ?? TREND_DEFAULTS.minWindows;
    for (const source of TREND_SOURCES) {
      const series = recent.filter((s) => s.source === source);
      if (series.length < minWindows) continue;
      series.reverse();
      const from = seenFromStart ? series[0]!.t + WARM_UP_MS : until - this.trendWindowMs;
      const trend = floorTrend(
        series.filter((s) => s.t >= from).map((s) => ({ t: s.t, value: s.used_bytes })),
        this.trendOptions,
      );
      if (trend) return { source, trend, latest: series[series.length - 1]! };
    }
    return undefined;
  }

  /** trendAt for a view, from viewTrends while the process's samples have not changed. */
  private viewTrendAt(process: ProcessId, newest: number): TrendAt | undefined {
    const key = streamKeyOf(process.host, process.service, process.pid);
    const kept = this.viewTrends.get(key);
    if (kept !== undefined && kept.newest === newest) return kept.at ?? undefined;
    const at = this.trendAt(process, newest);
    this.viewTrends.set(key, { newest, at: at ?? null });
    return at;
  }

  /** The process's own report, else the newest one on its host and service (a predecessor's crash), else the setting; as known at `until`. */
  private maxOf(process: ProcessId, until: number): ResolvedMax | null {
    const own = this.store.knownMaxOf(process, until);
    if (own !== null) return { bytes: own, source: 'reported' };
    const learned = this.store.limitOf(process.host, process.service);
    if (learned !== undefined && learned.learned_at <= until) return { bytes: learned.max_bytes, source: learned.pid === process.pid ? 'reported' : 'learned' };
    const configured = configuredMax(this.configured, process.host, process.service);
    return configured === null ? null : { bytes: configured, source: 'setting' };
  }

  /** The state of every process with samples; `sampleLimit` newest samples each. */
  processes(filter: { host?: string; service?: string } = {}, sampleLimit = 200): ProcessMemoryView[] {
    const views: ProcessMemoryView[] = [];
    for (const process of this.store.processes(filter)) {
      const view = this.viewOf(process, sampleLimit);
      if (view) views.push(view);
    }
    return views;
  }

  viewOf(process: ProcessId, sampleLimit = 200): ProcessMemoryView | undefined {
    const recent = this.store.samplesOf(process, Math.min(Math.max(sampleLimit, 1), this.samplesPerProcess));
    const newest = recent[0];
    if (!newest) return undefined;
    const primary = recent
      .filter((s) => s.t === newest.t)
      .sort((a, b) => SOURCE_PREFERENCE.indexOf(a.source) - SOURCE_PREFERENCE.indexOf(b.source))[0]!;
    const max = this.maxOf(process, Number.MAX_SAFE_INTEGER);
    const at = this.viewTrendAt(process, newest.t);
    const exhaustion: Exhaustion | null = at === undefined ? null : exhaustionOf(at.trend, max?.bytes ?? null);
    return {
      ...process,
      used_bytes: primary.used_bytes,
      max_bytes: max?.bytes ?? null,
      ratio: max ? primary.used_bytes / max.bytes : null,
      max_source: max?.source ?? null,
      last_seen: new Date(newest.t).toISOString(),
      source: primary.source,
      samples: recent
        .slice()
        .reverse()
        .map((s) => ({ t: new Date(s.t).toISOString(), used_bytes: s.used_bytes, max_bytes: s.max_bytes, source: s.source })),
      trend: at === undefined ? null : trendView(at),
      trend_bytes_per_hour: at === undefined ? null : Math.round(at.trend.slopePerHour),
      exhaustion_eta: iso(exhaustion?.at ?? null),
      exhaustion_earliest: iso(exhaustion?.earliest ?? null),
      exhaustion_latest: iso(exhaustion?.latest ?? null),
      seconds_to_exhaustion: exhaustion === null || at === undefined ? null : Math.max(0, Math.round((exhaustion.at - at.latest.t) / 1000)),
    };
  }
}

function trendView({ source, trend }: TrendAt): TrendView {
  return {
    source,
    slope_bytes_per_hour: Math.round(trend.slopePerHour),
    slope_low_bytes_per_hour: Math.round(trend.slopeLowPerHour),
    slope_high_bytes_per_hour: Math.round(trend.slopeHighPerHour),
    confidence: trend.confidence,
    rising: trend.rising,
    windows: trend.windows,
    span_seconds: Math.round(trend.spanMs / 1000),
    floor_bytes: Math.round(trend.floorAtReference),
    excursion_bytes: Math.round(trend.excursion),
  };
}
