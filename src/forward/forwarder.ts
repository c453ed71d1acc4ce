/**
 * Sends what the outbox holds to each target, at least once, in each stream's order.
 *
 * Every target has `concurrency` lanes; a record's lane is a stable hash of its stream, fixed when
 * it is queued, so one stream's records always travel one after another. A lane sends a batch
 * (up to max events and max bytes, or whatever is there once its oldest entry has waited max-wait),
 * waits for the answer, and only then sends the next: a failed head blocks its lane until it is
 * delivered or becomes a dead letter, which is what keeps the order. Lanes and targets are
 * independent, so a dead target stops nobody else.
 *
 * An entry leaves the outbox only when its target has taken it; a crash at any point sends it
 * again after the restart (the same id, so the receiver can tell). Network errors, 408, 429 and
 * 5xx are retried with exponential backoff and full jitter (Retry-After honoured); other answers
 * each format judges (format.ts). Entries pending past the target's give-up age become dead
 * letters, which GET /forward/dead-letters lists and POST /forward/dead-letters/retry queues again.
 */
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import type { Logger } from 'pino';
import { Pool } from 'undici';
import { doneWithin } from '../done-within.js';
import { isLeakEvent, type GroupedRecord } from '../engine/grouped-record.js';
import { streamKeyOf } from '../ingest/record.js';
import type { LeakwatchMetrics } from '../metrics.js';
import type { AttemptFailure, ForwardOutbox, OutboxEntry, OutboxEntryInput, OutboxTotals, Store } from '../store/store.js';
import { formatBytes, formatDuration } from '../units.js';
import { PACKAGE_VERSION } from '../version.js';
import { TARGET_FORMATS, type TargetFormat, type Verdict } from './formats/index.js';
import { describeTarget, type ForwardTarget } from './target.js';

const gzip = promisify(gzipCallback);

/** A lane with nothing to send looks again this often, whatever wakes it (or does not). */
const IDLE_CHECK_MS = 1000;
/** Dead letters are aged out and the outbox kept within its bytes this often. */
const HOUSEKEEPING_MS = 10_000;
/** Largest answer body read; Elasticsearch answers about 200 bytes per item. */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;
/** A Retry-After longer than this is cut to it: a misconfigured server must not park a lane for days. */
const MAX_RETRY_AFTER_MS = 15 * 60_000;
/** After the store refused an attempt's outcome, the lane pauses this long before it tries again. */
const STORE_PAUSE_MS = 1000;

export interface ForwarderOptions {
  /** Pending bytes across targets at which ingest is refused (503) and dead letters are dropped first. */
  outboxBytes: number;
  /** Longest an entry is kept, dead letters included. */
  outboxAgeMs: number;
  log: Logger;
  metrics?: LeakwatchMetrics;
  /** Wall clock, ms (tests move it). */
  now?: () => number;
  /** [0, 1): the jitter (tests fix it). */
  random?: () => number;
}

/** Why ingest is refused: the outbox is full, and which target holds the most of it. */
export interface ForwardBacklog {
  target: string;
  pendingBytes: number;
  outboxBytes: number;
  lastError: string | undefined;
}

/** One target as /readyz shows it. */
export interface TargetStatus {
  target: string;
  format: string;
  pending: number;
  pending_bytes: number;
  oldest_pending_seconds: number | null;
  dead_letters: number;
  failing_since: string | null;
  last_error: string | null;
}

/**
 * The stream key's lane: FNV-1a (32 bit), then MurmurHash3's finaliser, because FNV's low bits
 * alone follow the parity of the key's characters (`edge-7…7` and `edge-8…8` would share a
 * lane). The same lane on every run and every platform.
 */
export function laneOf(stream: string, lanes: number): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < stream.length; index++) {
    hash ^= stream.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return (hash >>> 0) % lanes;
}

/** Seconds or an HTTP date (RFC 9110 §10.2.3) → ms from now; undefined when absent or unreadable. */
export function retryAfterMs(header: string | string[] | undefined, now: number): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined;
}

/** "Full jitter" (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/): uniform in [0, min(cap, base·2^(attempt-1))]. */
export function backoffMs(attempt: number, baseMs: number, capMs: number, random: () => number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(random() * ceiling);
}

/** What a request that got no answer failed with, without the URL (it may carry a query secret). */
function networkFailure(error: unknown): AttemptFailure {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return { status: 0, error: `no answer: ${typeof code === 'string' ? `${code} ` : ''}${message}`.slice(0, 300) };
}

/** Reads an answer's body up to `max` bytes; the rest is discarded. */
async function readAnswer(body: AsyncIterable<Buffer> & { destroy(): void }, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size + chunk.length > max) {
      chunks.push(chunk.subarray(0, max - size));
      body.destroy();
      break;
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  return Buffer.concat(chunks).toString('utf8');
}

interface Lane {
  index: number;
  /** Resolves the pause the lane is in; `idle` pauses also end when entries are queued for it. */
  wake: (() => void) | undefined;
  idle: boolean;
}

interface Delivery {
  target: ForwardTarget;
  format: TargetFormat;
  pool: Pool;
  lanes: Lane[];
  /** Since when the last attempts failed, and how; undefined while they succeed. */
  failing: { since: number; failure: AttemptFailure } | undefined;
}

type OutboxStore = ForwardOutbox & Pick<Store, 'transaction'>;

export class Forwarder {
  private readonly deliveries: Delivery[];
  private readonly byName = new Map<string, Delivery>();
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly metrics: LeakwatchMetrics | undefined;
  private running: Array<Promise<void>> = [];
  private housekeeping: NodeJS.Timeout | undefined;
  /** Stop: send what is due without waiting for batches to fill or backoffs to pass. */
  private flushing = false;
  /** Stop: no new attempt; answers of aborted requests are not recorded. */
  private stopped = false;
  private wakeScheduled = new Set<Lane>();

  constructor(
    targets: readonly ForwardTarget[],
    private readonly outbox: OutboxStore,
    private readonly options: ForwarderOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.log = options.log;
    this.metrics = options.metrics;
    this.deliveries = targets.map((target) => ({
      target,
      format: TARGET_FORMATS[target.format],
      pool: new Pool(target.origin, { connections: target.concurrency, headersTimeout: target.timeoutMs, bodyTimeout: target.timeoutMs }),
      lanes: Array.from({ length: target.concurrency }, (_, index) => ({ index, wake: undefined, idle: false })),
      failing: undefined,
    }));
    for (const delivery of this.deliveries) this.byName.set(delivery.target.name, delivery);
  }

  get targets(): readonly ForwardTarget[] {
    return this.deliveries.map((delivery) => delivery.target);
  }

  /** Whether any target takes unclassified records too (then the engine is asked for them). */
  get wantsUnclassified(): boolean {
    return this.deliveries.some((delivery) => delivery.target.records === 'all');
  }

  /**
   * Queues the records for every target that takes them. Call it inside the transaction that
   * stores them: they are in the outbox exactly when they are stored.
   */
  enqueue(records: readonly GroupedRecord[]): void {
    if (this.deliveries.length === 0 || records.length === 0) return;
    const entries: OutboxEntryInput[] = [];
    const touched: Lane[] = [];
    for (const record of records) {
      const classified = isLeakEvent(record);
      let body: string | undefined;
      let stream: string | undefined;
      for (const delivery of this.deliveries) {
        if (!classified && delivery.target.records !== 'all') continue;
        body ??= JSON.stringify(record);
        stream ??= streamKeyOf(record.host, record.service, record.pid);
        const lane = laneOf(stream, delivery.target.concurrency);
        entries.push({ target: delivery.target.name, lane, stream, recordId: record.id, body });
        touched.push(delivery.lanes[lane] as Lane);
      }
    }
    if (entries.length === 0) return;
    this.outbox.enqueueOutbox(entries, this.now());
    // The lanes look once the caller's transaction has committed: it runs synchronously to its end first.
    if (this.wakeScheduled.size === 0) queueMicrotask(() => this.wakeTouched());
    for (const lane of touched) this.wakeScheduled.add(lane);
  }

  /** Starts every lane; entries of targets no longer configured become dead letters first. */
  start(): void {
    const now = this.now();
    for (const name of this.outbox.outboxTargets()) {
      if (this.byName.has(name)) continue;
      const moved = this.outbox.outboxGiveUp(name, undefined, Number.POSITIVE_INFINITY, { status: 0, error: 'the target is no longer configured' }, now);
      this.metrics?.forwardDeadLettered.inc({ target: name, status: 'unconfigured' }, moved);
      this.log.warn({ target: name, entries: moved }, `forward: ${moved} pending events of ${name}, which is no longer configured, are dead letters now (GET /forward/dead-letters)`);
    }
    for (const delivery of this.deliveries) {
      const { target } = delivery;
      // A changed concurrency changes the lanes: each stream moves whole, its order kept by id.
      const moved = this.outbox.relaneOutbox(target.name, (stream) => laneOf(stream, target.concurrency));
      if (moved > 0) this.log.info({ target: target.name, entries: moved }, 'forward: pending events moved to the lanes of the new concurrency');
      this.log.info({ target: target.name }, `forwarding to ${describeTarget(target)}`);
      for (const lane of delivery.lanes) this.running.push(this.runLane(delivery, lane));
    }
    this.keepHouse();
    this.housekeeping = setInterval(() => this.keepHouse(), HOUSEKEEPING_MS);
    this.housekeeping.unref();
  }

  /**
   * Stops: sends what is due for at most `flushMs`, then aborts what is in flight. Whatever was not
   * taken stays in the outbox for the next start.
   */
  async stop(flushMs: number): Promise<void> {
    if (this.housekeeping) clearInterval(this.housekeeping);
    this.flushing = true;
    for (const delivery of this.deliveries) for (const lane of delivery.lanes) lane.wake?.();
    const flushed = await doneWithin(Promise.all(this.running), flushMs);
    this.stopped = true;
    if (!flushed) this.log.warn('forward: stopping with deliveries in flight; they stay in the outbox and are sent after the next start');
    await Promise.all(this.deliveries.map((delivery) => delivery.pool.destroy().catch(() => undefined)));
    await Promise.all(this.running);
  }

  /** The outbox is full: which target and why; undefined while ingest may go on. */
  backlog(): ForwardBacklog | undefined {
    if (this.deliveries.length === 0) return undefined;
    const totals = this.outbox.outboxTotals();
    let pending = 0;
    let worst: OutboxTotals | undefined;
    for (const entry of totals) {
      pending += entry.pendingBytes;
      if (worst === undefined || entry.pendingBytes > worst.pendingBytes) worst = entry;
    }
    if (pending < this.options.outboxBytes || worst === undefined) return undefined;
    return { target: worst.target, pendingBytes: pending, outboxBytes: this.options.outboxBytes, lastError: this.byName.get(worst.target)?.failing?.failure.error };
  }

  /** Per target: what is pending, how old, dead letters, and the last failure. */
  status(): TargetStatus[] {
    const totals = new Map(this.outbox.outboxTotals().map((entry) => [entry.target, entry]));
    const now = this.now();
    return this.deliveries.map(({ target, failing }) => {
      const entry = totals.get(target.name);
      const oldest = this.outbox.oldestPending(target.name);
      return {
        target: target.name,
        format: target.format,
        pending: entry?.pendingEntries ?? 0,
        pending_bytes: entry?.pendingBytes ?? 0,
        oldest_pending_seconds: oldest === undefined ? null : Math.max(0, (now - oldest) / 1000),
        dead_letters: entry?.deadEntries ?? 0,
        failing_since: failing === undefined ? null : new Date(failing.since).toISOString(),
        last_error: failing?.failure.error ?? null,
      };
    });
  }

  /** Dead letters of one target (or all) go back to their lanes as if queued now; returns how many. */
  retryDeadLetters(target: string | undefined): number {
    const requeued = this.outbox.transaction(() => {
      const count = this.outbox.requeueDeadLetters(target, this.now());
      for (const delivery of this.deliveries) {
        if (target !== undefined && delivery.target.name !== target) continue;
        this.outbox.relaneOutbox(delivery.target.name, (stream) => laneOf(stream, delivery.target.concurrency));
      }
      return count;
    });
    if (requeued > 0) {
      this.log.info({ target: target ?? 'all', entries: requeued }, `forward: ${requeued} dead letters queued again`);
      for (const delivery of this.deliveries) for (const lane of delivery.lanes) lane.wake?.();
    }
    return requeued;
  }

  /** Whether `name` is a configured target. */
  has(name: string): boolean {
    return this.byName.has(name);
  }

  private wakeTouched(): void {
    for (const lane of this.wakeScheduled) if (lane.idle) lane.wake?.();
    this.wakeScheduled.clear();
  }

  /** Waits `ms`, or less when woken (stop, or entries for an idle lane). */
  private pause(lane: Lane, ms: number, idle = false): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      lane.idle = idle;
      lane.wake = done;
      function done(): void {
        clearTimeout(timer);
        lane.wake = undefined;
        lane.idle = false;
        resolve();
      }
    });
  }

  private async runLane(delivery: Delivery, lane: Lane): Promise<void> {
    const { target } = delivery;
    const giveUpMs = target.giveUpMs ?? this.options.outboxAgeMs;
    while (!this.stopped) {
      let entries: OutboxEntry[];
      try {
        entries = this.outbox.outboxLane(target.name, lane.index, target.batchEvents);
      } catch (error) {
        this.log.error({ err: error, target: target.name }, 'forward: the outbox cannot be read; trying again');
        if (this.flushing) return;
        await this.pause(lane, STORE_PAUSE_MS);
        continue;
      }
      const head = entries[0];
      const now = this.now();
      if (head === undefined) {
        if (this.flushing) return;
        await this.pause(lane, IDLE_CHECK_MS, true);
        continue;
      }
      if (now - head.createdAt >= giveUpMs) {
        this.giveUp(delivery, lane, head, giveUpMs, now);
        continue;
      }
      if (head.nextAt > now) {
        if (this.flushing) return;
        await this.pause(lane, Math.min(head.nextAt, head.createdAt + giveUpMs) - now);
        continue;
      }
      const batch = takeBytes(entries, target.batchBytes);
      const full = batch.length < entries.length || entries.length >= target.batchEvents;
      const waitMs = head.createdAt + target.maxWaitMs - now;
      if (!full && waitMs > 0 && head.attempts === 0 && !this.flushing) {
        await this.pause(lane, waitMs);
        continue;
      }
      await this.send(delivery, lane, batch);
    }
  }

  private giveUp(delivery: Delivery, lane: Lane, head: OutboxEntry, giveUpMs: number, now: number): void {
    const failure: AttemptFailure = { status: head.lastStatus ?? 0, error: `gave up after ${formatDuration(giveUpMs)}; last attempt: ${head.lastError ?? 'none'}` };
    const moved = this.outbox.outboxGiveUp(delivery.target.name, lane.index, now - giveUpMs, failure, now);
    this.metrics?.forwardDeadLettered.inc({ target: delivery.target.name, status: 'give-up' }, moved);
    this.log.warn({ target: delivery.target.name, entries: moved, lastError: head.lastError }, `forward: ${moved} events pending longer than ${formatDuration(giveUpMs)} for ${delivery.target.name} are dead letters now`);
  }

  private async send(delivery: Delivery, lane: Lane, batch: OutboxEntry[]): Promise<void> {
    const { target, format } = delivery;
    const encoded = format.encode(batch, target);
    const headers: Record<string, string> = { 'content-type': encoded.contentType, 'user-agent': `leakwatch/${PACKAGE_VERSION}` };
    if (target.authorization !== undefined) headers['authorization'] = target.authorization;
    let body: string | Buffer = encoded.body;
    if (target.gzip) {
      body = await gzip(encoded.body);
      headers['content-encoding'] = 'gzip';
    }
    let verdicts: Verdict[];
    let statusLabel: string;
    let waitAtLeastMs: number | undefined;
    try {
      const response = await delivery.pool.request({ path: target.path, method: 'POST', headers, body });
      waitAtLeastMs = retryAfterMs(response.headers['retry-after'], this.now());
      const text = await readAnswer(response.body, MAX_ANSWER_BYTES);
      statusLabel = String(response.statusCode);
      verdicts = format.judge({ status: response.statusCode, body: text }, batch);
    } catch (error) {
      // Aborted by stop(): the entries stay as they were, for the next start.
      if (this.stopped) return;
      statusLabel = 'network';
      const failure = networkFailure(error);
      verdicts = batch.map(() => ({ kind: 'retry', failure }));
    }
    this.metrics?.forwardRequests.inc({ target: target.name, status: statusLabel });
    try {
      this.record(delivery, batch, verdicts, waitAtLeastMs);
    } catch (error) {
      // The answer cannot be recorded (a full disk): the entries stay pending and go again (same ids).
      this.log.error({ err: error, target: target.name }, 'forward: the outcome of a delivery cannot be stored; its events will be sent again');
      if (!this.flushing) await this.pause(lane, STORE_PAUSE_MS);
    }
  }

  /** Writes the verdicts in one transaction, then counts and logs them. */
  private record(delivery: Delivery, batch: readonly OutboxEntry[], verdicts: readonly Verdict[], waitAtLeastMs: number | undefined): void {
    const { target } = delivery;
    const now = this.now();
    const delivered: number[] = [];
    const retried = new Map<string, { failure: AttemptFailure; ids: number[] }>();
    const dead = new Map<string, { failure: AttemptFailure; ids: number[] }>();
    let attempt = 1;
    batch.forEach((entry, index) => {
      const verdict = verdicts[index] ?? ({ kind: 'retry', failure: { status: 0, error: 'no verdict' } } as Verdict);
      if (verdict.kind === 'delivered') {
        delivered.push(entry.id);
        return;
      }
      const groups = verdict.kind === 'retry' ? retried : dead;
      const key = `${verdict.failure.status}\u0000${verdict.failure.error}`;
      const group = groups.get(key) ?? { failure: verdict.failure, ids: [] };
      group.ids.push(entry.id);
      groups.set(key, group);
      if (verdict.kind === 'retry') attempt = Math.max(attempt, entry.attempts + 1);
    });
    const delayMs = Math.min(Math.max(backoffMs(attempt, target.backoffMs, target.maxBackoffMs, this.random), waitAtLeastMs ?? 0), Math.max(target.maxBackoffMs, MAX_RETRY_AFTER_MS));
    this.outbox.transaction(() => {
      if (delivered.length > 0) this.outbox.outboxDelivered(delivered);
      for (const { failure, ids } of retried.values()) this.outbox.outboxRetryLater(ids, now + delayMs, failure);
      for (const { failure, ids } of dead.values()) this.outbox.outboxDeadLetter(ids, failure, now);
    });

    const name = target.name;
    if (delivered.length > 0) this.metrics?.forwardDelivered.inc({ target: name }, delivered.length);
    for (const { failure, ids } of retried.values()) this.metrics?.forwardRetries.inc({ target: name, status: statusLabelOf(failure) }, ids.length);
    for (const { failure, ids } of dead.values()) {
      this.metrics?.forwardDeadLettered.inc({ target: name, status: statusLabelOf(failure) }, ids.length);
      this.log.warn({ target: name, entries: ids.length, status: failure.status, error: failure.error }, `forward: ${name} refused ${ids.length} events; they are dead letters (GET /forward/dead-letters, POST /forward/dead-letters/retry)`);
    }
    const firstRetry = retried.values().next().value;
    if (firstRetry !== undefined) {
      if (delivery.failing === undefined) {
        delivery.failing = { since: now, failure: firstRetry.failure };
        this.log.warn({ target: name, status: firstRetry.failure.status, error: firstRetry.failure.error, retryInMs: delayMs }, `forward: delivery to ${name} failed; retrying with backoff, nothing is dropped`);
      } else {
        delivery.failing.failure = firstRetry.failure;
      }
    } else if (delivery.failing !== undefined) {
      this.log.info({ target: name, failingForMs: now - delivery.failing.since }, `forward: ${name} takes events again`);
      delivery.failing = undefined;
    }
  }

  /** Ages out dead letters and keeps the outbox within its bytes, dropping the oldest dead letters first; never silently. */
  private keepHouse(): void {
    let dropped: ReturnType<ForwardOutbox['dropDeadLetters']>;
    try {
      dropped = this.outbox.dropDeadLetters(this.now() - this.options.outboxAgeMs, this.options.outboxBytes);
    } catch (error) {
      this.log.error({ err: error }, 'forward: dead letters could not be aged out; trying again later');
      return;
    }
    for (const { target, reason, entries } of dropped) {
      this.metrics?.forwardDeadLettersDropped.inc({ target, reason }, entries);
      const why = reason === 'age' ? `older than --forward-outbox-age (${formatDuration(this.options.outboxAgeMs)})` : `to keep the outbox within --forward-outbox-bytes (${formatBytes(this.options.outboxBytes)})`;
      this.log.warn({ target, entries, reason }, `forward: dropped ${entries} dead letters of ${target}, ${why}`);
    }
  }
}

function statusLabelOf(failure: AttemptFailure): string {
  return failure.status === 0 ? 'network' : String(failure.status);
}

/** The leading entries that fit in `maxBytes`; the first one always goes, however large. */
function takeBytes(entries: readonly OutboxEntry[], maxBytes: number): OutboxEntry[] {
  let bytes = 0;
  let count = 0;
  for (const entry of entries) {
    if (count > 0 && bytes + entry.bytes > maxBytes) break;
    bytes += entry.bytes;
    count++;
  }
  return entries.slice(0, count);
}
