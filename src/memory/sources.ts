/**
 * What counts as a direct-memory sample, in every feed leakwatch takes, and which process it is
 * about. The one place that knows metric names:
 *
 * - linkerd's `/admin/metrics.json` (twitter-server: a flat map of `a/b/c` keys), posted to /ingest
 *   as a parsed object or, as Vector's `http_client` source sends it by default, as the raw JSON
 *   text in `message`. Keys from twitter/util `JvmStats.scala` and finagle-netty4
 *   `exportNetty4MetricsAndRegistryEntries.scala`.
 * - Prometheus series (remote_write): linkerd's Prometheus telemeter (the same keys, `/` → `:`,
 *   linkerd `PrometheusTelemeter.scala`), the JMX exporter / client_java
 *   (`jvm_buffer_pool_used_bytes{pool="direct"}`), Micrometer (`jvm_buffer_memory_used_bytes{id="direct"}`,
 *   `netty.allocator.memory.used` → `netty_allocator_memory_used_bytes{memory_type="direct"}`,
 *   micrometer `NettyAllocatorMetrics.java`).
 *
 * The gauges measure different things. BufferPoolMXBean (`jvm/mem/buffer/direct/used`, the JMX
 * exporter's and Micrometer's buffer-pool gauges) does not see Netty's no-cleaner buffers, which are
 * exactly what an OutOfDirectMemoryError's limit counts; finagle's pooling gauge and Micrometer's
 * Netty allocator gauge do. Each sample is labelled with its source, and a trend never mixes them.
 */
import { streamKeyOf, type LogRecord } from '../ingest/record.js';
import type { LearnedLimit, StoredSample } from '../store/store.js';

export const MemorySource = {
  /** Netty OutOfDirectMemoryError: Netty's own counter and its limit. */
  nettyOodm: 'netty-oodm',
  /** JDK 17 "Cannot reserve N bytes of direct buffer memory (allocated: X, limit: Y)": java.nio.Bits. */
  jdkDirectBuffer: 'jdk-direct-buffer',
  /** BufferPoolMXBean "direct" (its capacity is the buffers' total size, not a limit). */
  jvmBufferPool: 'jvm-buffer-pool',
  /** finagle `netty4/pooling/used`: Netty's pooled direct memory plus its thread caches. */
  finagleNettyPooling: 'finagle-netty4-pooling',
  /** Micrometer `netty.allocator.memory.used{memory.type=direct}`, summed over the process's allocators. */
  nettyAllocator: 'netty-allocator',
  /** A series that carries the limit itself (`*direct_memory_max_bytes`). */
  maxSeries: 'direct-memory-max-series',
  /** `--direct-memory-max`. */
  setting: 'setting',
} as const;

/** Sources that measure continuously, best first: the trend is taken from the first one a process has. */
export const TREND_SOURCES: readonly string[] = [MemorySource.finagleNettyPooling, MemorySource.nettyAllocator, MemorySource.jvmBufferPool];

/** When samples share a time, the first of these speaks for the process's current use. */
export const SOURCE_PREFERENCE: readonly string[] = [
  MemorySource.nettyOodm,
  MemorySource.jdkDirectBuffer,
  MemorySource.finagleNettyPooling,
  MemorySource.nettyAllocator,
  MemorySource.jvmBufferPool,
];

/** linkerd `/admin/metrics.json` keys. */
export const SNAPSHOT_KEYS = {
  nettyPoolingUsed: 'finagle/netty4/pooling/used',
  jvmDirectUsed: 'jvm/mem/buffer/direct/used',
  /** RuntimeMXBean start time (ms): tells one run of the JVM from the next when no pid is known. */
  jvmStartTime: 'jvm/start_time',
} as const;

const SNAPSHOT_USED: ReadonlyArray<readonly [string, string]> = [
  [SNAPSHOT_KEYS.jvmDirectUsed, MemorySource.jvmBufferPool],
  [SNAPSHOT_KEYS.nettyPoolingUsed, MemorySource.finagleNettyPooling],
];

/** A Prometheus series that means direct memory: its name, the labels it must carry, what it is. */
interface SeriesRule {
  name: string;
  labels?: Readonly<Record<string, string>>;
  source: string;
}

const SERIES_RULES: readonly SeriesRule[] = [
  { name: 'jvm_buffer_pool_used_bytes', labels: { pool: 'direct' }, source: MemorySource.jvmBufferPool },
  { name: 'jvm_buffer_memory_used_bytes', labels: { id: 'direct' }, source: MemorySource.jvmBufferPool },
  { name: 'jvm:mem:buffer:direct:used', source: MemorySource.jvmBufferPool },
  { name: 'finagle:netty4:pooling:used', source: MemorySource.finagleNettyPooling },
  { name: 'netty_allocator_memory_used_bytes', labels: { memory_type: 'direct' }, source: MemorySource.nettyAllocator },
  { name: 'netty_allocator_memory_used', labels: { memory_type: 'direct' }, source: MemorySource.nettyAllocator },
];
const MAX_SERIES_SUFFIX = 'direct_memory_max_bytes';

/** The field of a record that carries samples already mapped (what /api/v1/write journals). */
export const MAPPED_SAMPLES_FIELD = 'leakwatch_direct_memory';

export interface MappedSample {
  source: string;
  used_bytes?: number;
  max_bytes?: number;
}

/**
 * Where a series' labels name the process, best first, so that they meet the log streams: a pod
 * name where logs from Kubernetes carry one as host, the container as service; explicit
 * `host`/`service`/`pid` labels (set in relabel_configs) always win. Without any, `instance`
 * without its port is the host and `job` the service.
 */
const HOST_LABELS = ['host', 'hostname', 'pod', 'kubernetes_pod_name', 'pod_name'] as const;
const SERVICE_LABELS = ['service', 'container', 'kubernetes_container_name', 'container_name', 'job'] as const;
const PID_LABELS = ['pid'] as const;

export type Labels = Readonly<Record<string, string>>;

function firstLabel(labels: Labels, names: readonly string[]): string {
  for (const name of names) {
    const value = labels[name];
    if (value !== undefined && value !== '') return value;
  }
  return '';
}

/** `10.0.0.7:9990` → `10.0.0.7`, `[::1]:9990` → `::1`. */
function hostOfInstance(instance: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(instance);
  if (bracketed) return bracketed[1] as string;
  const colon = instance.lastIndexOf(':');
  return colon > 0 && instance.indexOf(':') === colon ? instance.slice(0, colon) : instance;
}

export interface SeriesProcess {
  host: string;
  service: string;
  pid: string;
}

export function processOfLabels(labels: Labels): SeriesProcess {
  return {
    host: firstLabel(labels, HOST_LABELS) || hostOfInstance(labels['instance'] ?? ''),
    service: firstLabel(labels, SERVICE_LABELS),
    pid: firstLabel(labels, PID_LABELS),
  };
}

/** What a series means for direct memory, or undefined when it means nothing here. */
export function meaningOfSeries(labels: Labels): { source: string; role: 'used' | 'max' } | undefined {
  const name = labels['__name__'];
  if (name === undefined) return undefined;
  if (name.endsWith(MAX_SERIES_SUFFIX)) return { source: MemorySource.maxSeries, role: 'max' };
  for (const rule of SERIES_RULES) {
    if (rule.name !== name) continue;
    if (rule.labels && Object.entries(rule.labels).some(([key, value]) => labels[key] !== value)) continue;
    return { source: rule.source, role: 'used' };
  }
  return undefined;
}

function byteCount(value: unknown): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+(\.\d+)?(e\+?\d+)?\s*$/i.test(value) ? Number(value) : NaN;
  return Number.isFinite(n) && n >= 0 ? Math.round(n) : undefined;
}

/** A key's number in a metrics.json text, found without parsing it all (it may be cut at --max-message-bytes). */
function numberInText(text: string, key: string): number | undefined {
  const at = text.indexOf(`"${key}"`);
  if (at < 0) return undefined;
  // The delimiter after the number proves that the cut did not fall inside it.
  const match = /^\s*:\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*[,}]/.exec(text.slice(at + key.length + 2, at + key.length + 64));
  return match ? byteCount(Number(match[1])) : undefined;
}

/** The metrics.json values of a record: from the parsed object, or from the raw text in `message`. */
function snapshotValue(fields: Record<string, unknown>, key: string): number | undefined {
  const direct = fields[key];
  if (direct !== undefined) return byteCount(direct);
  const message = fields['message'];
  return typeof message === 'string' && message.charCodeAt(0) === 123 /* { */ ? numberInText(message, key) : undefined;
}

/** Cheap test done on every record: does it carry direct-memory numbers at all? */
export function mayCarrySamples(record: LogRecord): boolean {
  const fields = record.fields;
  if (fields === undefined) return false;
  if (fields[MAPPED_SAMPLES_FIELD] !== undefined || fields[SNAPSHOT_KEYS.nettyPoolingUsed] !== undefined || fields[SNAPSHOT_KEYS.jvmDirectUsed] !== undefined) return true;
  const message = fields['message'];
  return typeof message === 'string' && record.message === '' && message.charCodeAt(0) === 123;
}

export interface RecordSamples {
  samples: StoredSample[];
  limits: LearnedLimit[];
}

/**
 * The process a metrics record is about: its pid when the feed names one; else the JVM's start
 * time (`start:<ISO time>`), which tells a restarted JVM from the one before; else none.
 */
function pidOfSnapshot(record: LogRecord, fields: Record<string, unknown>): string {
  if (record.pid !== '') return record.pid;
  const started = snapshotValue(fields, SNAPSHOT_KEYS.jvmStartTime);
  return started === undefined || started === 0 ? '' : `start:${new Date(started).toISOString()}`;
}

/** The samples (and limits) a record carries; none for an ordinary log record. */
export function samplesOfRecord(record: LogRecord): RecordSamples {
  const found: RecordSamples = { samples: [], limits: [] };
  const fields = record.fields;
  if (fields === undefined || !Number.isFinite(record.time)) return found;
  const mapped = fields[MAPPED_SAMPLES_FIELD];
  if (Array.isArray(mapped)) {
    const process = { host: record.host, service: record.service, pid: record.pid };
    for (const item of mapped as MappedSample[]) {
      if (item === null || typeof item !== 'object' || typeof item.source !== 'string') continue;
      const used = byteCount(item.used_bytes);
      const max = byteCount(item.max_bytes);
      if (used !== undefined) found.samples.push({ ...process, t: record.time, used_bytes: used, max_bytes: max ?? null, source: item.source });
      else if (max !== undefined && max > 0) found.limits.push({ ...process, max_bytes: max, learned_at: record.time, source: item.source });
    }
    return found;
  }
  const pid = pidOfSnapshot(record, fields);
  for (const [key, source] of SNAPSHOT_USED) {
    const used = snapshotValue(fields, key);
    if (used !== undefined) found.samples.push({ host: record.host, service: record.service, pid, t: record.time, used_bytes: used, max_bytes: null, source });
  }
  return found;
}

export interface LabelledSamples {
  labels: Labels;
  samples: ReadonlyArray<{ value: number; timestamp: number }>;
}

/** Whether a Prometheus series is worth keeping (the rest of a remote-write body is skipped). */
export function isDirectMemorySeries(labels: Labels): boolean {
  return meaningOfSeries(labels) !== undefined;
}

/**
 * Prometheus series → one record per process and timestamp, holding that scrape's samples mapped
 * (journaled like any batch, so that a 2xx means they are kept). Stale markers (NaN) and negative
 * values are dropped; Micrometer's Netty allocators of one process are added up.
 */
export function recordsOfSeries(series: readonly LabelledSamples[]): LogRecord[] {
  const byScrape = new Map<string, { process: SeriesProcess; t: number; mapped: MappedSample[] }>();
  for (const { labels, samples } of series) {
    const meaning = meaningOfSeries(labels);
    if (meaning === undefined) continue;
    const process = processOfLabels(labels);
    for (const sample of samples) {
      if (!Number.isFinite(sample.value) || sample.value < 0 || !Number.isSafeInteger(sample.timestamp)) continue;
      const key = `${streamKeyOf(process.host, process.service, process.pid)}\u001f${sample.timestamp}`;
      let scrape = byScrape.get(key);
      if (!scrape) byScrape.set(key, (scrape = { process, t: sample.timestamp, mapped: [] }));
      const value = Math.round(sample.value);
      const field = meaning.role === 'max' ? 'max_bytes' : 'used_bytes';
      const same = scrape.mapped.find((m) => m.source === meaning.source && m[field] !== undefined);
      if (same && meaning.source === MemorySource.nettyAllocator) same.used_bytes = (same.used_bytes ?? 0) + value;
      else if (!same) scrape.mapped.push({ source: meaning.source, [field]: value });
    }
  }
  const records: LogRecord[] = [];
  for (const { process, t, mapped } of byScrape.values()) {
    records.push({
      time: t,
      ...process,
      stream: streamKeyOf(process.host, process.service, process.pid),
      message: '',
      fields: { source_type: 'prometheus_remote_write', [MAPPED_SAMPLES_FIELD]: mapped },
    });
  }
  return records.sort((a, b) => a.time - b.time);
}
