import { LRUCache } from 'lru-cache';
import type { LeakEvent } from '../engine/event.js';
import type { LogRecord } from '../ingest/record.js';
import { streamKeyOf } from '../ingest/record.js';
import type { MemorySample, ProcessId, Store, StoredSample } from '../store/store.js';
import { exhaustionTime, slopePerHour } from './trend.js';

/**
 * What a sample measured. The two metric sources measure different things: BufferPoolMXBean
 * (`jvm/mem/buffer/direct/used`) does not see Netty's no-cleaner allocations, which are exactly
 * what the OutOfDirectMemoryError limit counts; finagle's pooling gauge does.
 */
export const MemorySource = {
  /** Netty OutOfDirectMemoryError: Netty's own counter and its limit. */
  nettyOodm: 'netty-oodm',
  /** JDK 17 "Cannot reserve N bytes of direct buffer memory (allocated: X, limit: Y)": java.nio.Bits. */
  jdkDirectBuffer: 'jdk-direct-buffer',
  /** linkerd metrics `jvm/mem/buffer/direct/used` (BufferPoolMXBean; its `max` is total capacity, not a limit). */
  jvmBufferPool: 'jvm-buffer-pool',
  /** linkerd metrics `finagle/netty4/pooling/used` (Netty pooled direct memory + thread caches). */
  finagleNettyPooling: 'finagle-netty4-pooling',
} as const;

export const JVM_DIRECT_USED_METRIC = 'jvm/mem/buffer/direct/used';
export const NETTY_POOLING_USED_METRIC = 'finagle/netty4/pooling/used';

/** When two samples share a time (one snapshot gives both gauges), the first of these speaks for the process. */
const SOURCE_PREFERENCE: readonly string[] = [
  MemorySource.nettyOodm,
  MemorySource.jdkDirectBuffer,
  MemorySource.finagleNettyPooling,
  MemorySource.jvmBufferPool,
];

export interface MemoryTrackerOptions {
  /** Samples kept per process. Default 1000. */
  samplesPerProcess?: number;
  /** Event-time window of the trend. Default 1 h. */
  trendWindowMs?: number;
  /** Direct-memory limit to assume when no event has told it (e.g. -Dio.netty.maxDirectMemory). */
  knownMaxBytes?: number | null;
  /** A process with no sample for this long (event time, behind the newest sample seen) is forgotten. Default 30 d. */
  processRetentionMs?: number;
}

export interface ProcessMemoryView {
  host: string;
  service: string;
  pid: string;
  used_bytes: number;
  max_bytes: number | null;
  ratio: number | null;
  source: string;
  /** Oldest first. */
  samples: { t: string; used_bytes: number; max_bytes: number | null; source: string }[];
  trend_bytes_per_hour: number | null;
  exhaustion_eta: string | null;
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

/**
 * Direct memory per process (host, service, pid), from direct-memory events and linkerd metrics
 * snapshots. The Store holds the samples, so they survive a restart; the tracker itself keeps
 * only a bounded insert counter per process to decide when to prune.
 */
export class MemoryTracker {
  private readonly samplesPerProcess: number;
  private readonly trendWindowMs: number;
  private readonly knownMaxBytes: number | null;
  private readonly processRetentionMs: number;
  private newestSampleTime = Number.MIN_SAFE_INTEGER;
  private savesSinceRetention = 0;
  private readonly insertsSincePrune = new LRUCache<string, { process: ProcessId; count: number }>({ max: 10_000 });

  constructor(
    private readonly store: Store,
    options: MemoryTrackerOptions = {},
  ) {
    this.samplesPerProcess = options.samplesPerProcess ?? 1000;
    this.trendWindowMs = options.trendWindowMs ?? 3_600_000;
    this.knownMaxBytes = options.knownMaxBytes ?? null;
    this.processRetentionMs = options.processRetentionMs ?? 30 * 86_400_000;
    if (!Number.isSafeInteger(this.samplesPerProcess) || this.samplesPerProcess < 2) throw new RangeError('memory: samplesPerProcess must be a whole number ≥ 2');
    if (!Number.isSafeInteger(this.trendWindowMs) || this.trendWindowMs < 1) throw new RangeError('memory: trendWindowMs must be a positive whole number');
  }

  /** Cheap for ordinary log records: one lookup on `fields` before anything else. */
  observeRecord(record: LogRecord): void {
    const fields = record.fields;
    if (fields === undefined || (fields[JVM_DIRECT_USED_METRIC] === undefined && fields[NETTY_POOLING_USED_METRIC] === undefined)) return;
    this.save(this.samplesOfRecord(record));
  }

  /** A batch in one transaction. */
  observeRecords(records: readonly LogRecord[]): void {
    const samples: StoredSample[] = [];
    for (const record of records) {
      const fields = record.fields;
      if (fields === undefined || (fields[JVM_DIRECT_USED_METRIC] === undefined && fields[NETTY_POOLING_USED_METRIC] === undefined)) continue;
      samples.push(...this.samplesOfRecord(record));
    }
    this.save(samples);
  }

  observeEvents(events: readonly LeakEvent[]): void {
    const samples: StoredSample[] = [];
    for (const event of events) {
      const used = byteCount(event.fields?.['used_bytes']);
      if (used === undefined) continue;
      const t = Date.parse(event.timestamp);
      if (!Number.isFinite(t)) continue;
      const max = byteCount(event.fields['max_bytes']);
      samples.push({ host: event.host, service: event.service, pid: event.pid, t, used_bytes: used, max_bytes: max ?? null, source: sourceOfEvent(event) });
    }
    this.save(samples);
  }

  private samplesOfRecord(record: LogRecord): StoredSample[] {
    const fields = record.fields!;
    const base = { host: record.host, service: record.service, pid: record.pid, t: record.time, max_bytes: null };
    const samples: StoredSample[] = [];
    const jvmUsed = byteCount(fields[JVM_DIRECT_USED_METRIC]);
    if (jvmUsed !== undefined) samples.push({ ...base, used_bytes: jvmUsed, source: MemorySource.jvmBufferPool });
    const nettyUsed = byteCount(fields[NETTY_POOLING_USED_METRIC]);
    if (nettyUsed !== undefined) samples.push({ ...base, used_bytes: nettyUsed, source: MemorySource.finagleNettyPooling });
    return Number.isFinite(record.time) ? samples : [];
  }

  private save(samples: readonly StoredSample[]): void {
    if (samples.length === 0) return;
    this.store.transaction(() => {
      this.store.insertSamples(samples);
      // Pruning every insert would cost a DELETE per sample; a slack of 10% keeps the bound.
      const slack = Math.max(1, Math.floor(this.samplesPerProcess / 10));
      for (const sample of samples) {
        const key = streamKeyOf(sample.host, sample.service, sample.pid);
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
      if (this.savesSinceRetention++ % 1000 === 0) this.store.pruneSilentProcesses(this.newestSampleTime - this.processRetentionMs);
    });
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
    const max = primary.max_bytes ?? this.store.knownMaxOf(process) ?? this.knownMaxBytes;
    // A trend only makes sense within one source: the gauges measure different pools.
    const windowed: MemorySample[] = this.store
      .samplesOf(process, this.samplesPerProcess, primary.t - this.trendWindowMs)
      .filter((s) => s.source === primary.source);
    const slope = slopePerHour(windowed.map((s) => ({ t: s.t, value: s.used_bytes })));
    const trend = slope === null ? null : Math.round(slope);
    const eta = exhaustionTime(primary.t, primary.used_bytes, max, trend);
    return {
      ...process,
      used_bytes: primary.used_bytes,
      max_bytes: max,
      ratio: max ? primary.used_bytes / max : null,
      source: primary.source,
      samples: recent
        .slice()
        .reverse()
        .map((s) => ({ t: new Date(s.t).toISOString(), used_bytes: s.used_bytes, max_bytes: s.max_bytes, source: s.source })),
      trend_bytes_per_hour: trend,
      exhaustion_eta: eta === null ? null : new Date(eta).toISOString(),
    };
  }
}
