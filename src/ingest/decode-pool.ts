/**
 * Decoding off the main thread. Undoing gzip, parsing JSON or msgpack and normalising records is
 * most of the CPU an ingest request costs; on the main thread it competes with the engine, the
 * store and every other request. A few worker threads do it instead and hand back packed records
 * (packed-records.ts), which the main thread unpacks in a fraction of the time. Records keep their
 * order within a batch and batches are submitted by the route in the order their decoding ends,
 * as before (the reorder window puts racing batches back in source order).
 *
 * Without worker threads (`threads: 0`, or when running from the TypeScript sources, where there
 * is no compiled worker file) the same function decodes on the main thread, in time slices.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ERROR_CATALOGUE, LeakwatchError, type ErrorCode, type ErrorDetails } from '../errors.js';
import type { DecodeEncodingOptions } from './content-encoding.js';
import { decodeReceivedBody, type BodyFormat, type DecodedBody, type DecodeLimits, type ReceivedBody } from './decode-body.js';
import type { InflightBytes, InflightClaim } from './inflight.js';
import { unpackRecords, type PackedRecords } from './packed-records.js';

/** How every body is decoded: the same for the route and the journal replay. */
export interface DecodeSettings extends Omit<DecodeEncodingOptions, 'reserve'> {
  limits?: Partial<DecodeLimits>;
}

export interface DecodeWorkerData {
  options: DecodeSettings;
  inflight?: { shared: SharedArrayBuffer; capacity: number };
}

export interface DecodeTask {
  id: number;
  received: ReceivedBody;
  receivedAtMs: number;
  /** Bytes the request already holds in flight (its received body): it is not "another request". */
  claimed: number;
}

export type DecodeOutcome =
  | { id: number; ok: true; packed: PackedRecords; malformed: number; withoutText: number; format: BodyFormat | 'empty' }
  | { id: number; ok: false; error: DescribedError };

/** An error as it crosses threads: a LeakwatchError keeps its code and details. */
export interface DescribedError {
  message: string;
  code?: ErrorCode;
  details?: ErrorDetails;
}

export function describeError(error: unknown): DescribedError {
  if (error instanceof LeakwatchError) return { message: error.message, code: error.code, details: error.details };
  return { message: error instanceof Error ? error.message : String(error) };
}

function rebuildError(described: DescribedError): Error {
  if (described.code !== undefined && described.code in ERROR_CATALOGUE) return new LeakwatchError(described.code, described.message, described.details ?? {});
  return new Error(described.message);
}

/** Decoding threads by default: one core is left to the main thread (engine, store, HTTP). */
export function defaultDecodeThreads(): number {
  return Math.min(4, Math.max(1, availableParallelism() - 1));
}

interface Pending {
  resolve: (batch: DecodedBody) => void;
  reject: (error: Error) => void;
  bytes: number;
}

interface DecodeThread {
  worker: Worker;
  pending: Map<number, Pending>;
  /** Body bytes sent and not yet answered: new work goes to the least loaded thread. */
  load: number;
}

const WORKER_FILE = new URL('./decode-worker.js', import.meta.url);

export class DecodePool {
  private readonly threads: DecodeThread[] = [];
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly settings: DecodeSettings,
    private readonly options: { threads: number; inflight?: InflightBytes; workerFile?: URL } = { threads: defaultDecodeThreads() },
  ) {
    const file = options.workerFile ?? WORKER_FILE;
    // From the TypeScript sources (tests) there is no compiled worker: decode in process.
    if (!existsSync(fileURLToPath(file))) return;
    for (let index = 0; index < options.threads; index++) this.threads.push(this.spawn(file));
  }

  /** Threads decoding (0: bodies are decoded on the main thread). */
  get size(): number {
    return this.threads.length;
  }

  /** Decodes a body as received; what it decompresses is claimed in flight as part of `claim`'s request. */
  decode(received: ReceivedBody, receivedAtMs: number, claim?: InflightClaim): Promise<DecodedBody> {
    const thread = this.leastLoaded();
    if (thread === undefined || this.closed) {
      return decodeReceivedBody(received, receivedAtMs, { ...this.settings, ...(claim ? { reserve: (bytes: number) => claim.add(bytes) } : {}) });
    }
    const id = this.nextId++;
    const bytes = received.body.byteLength;
    thread.load += bytes;
    return new Promise<DecodedBody>((resolve, reject) => {
      thread.pending.set(id, { resolve, reject, bytes });
      const task: DecodeTask = { id, received, receivedAtMs, claimed: claim?.bytes ?? 0 };
      thread.worker.postMessage(task);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const threads = this.threads.splice(0);
    await Promise.all(threads.map((thread) => thread.worker.terminate()));
  }

  private leastLoaded(): DecodeThread | undefined {
    let best: DecodeThread | undefined;
    for (const thread of this.threads) if (best === undefined || thread.load < best.load) best = thread;
    return best;
  }

  private spawn(file: URL): DecodeThread {
    const inflight = this.options.inflight;
    const workerData: DecodeWorkerData = {
      options: this.settings,
      ...(inflight ? { inflight: { shared: inflight.shared, capacity: inflight.capacity } } : {}),
    };
    const thread: DecodeThread = { worker: new Worker(file, { workerData }), pending: new Map(), load: 0 };
    // An idle decoding thread must not keep the process alive.
    thread.worker.unref();
    thread.worker.on('message', (outcome: DecodeOutcome) => {
      const pending = thread.pending.get(outcome.id);
      if (pending === undefined) return;
      thread.pending.delete(outcome.id);
      thread.load -= pending.bytes;
      if (outcome.ok) pending.resolve({ records: unpackRecords(outcome.packed), malformed: outcome.malformed, withoutText: outcome.withoutText, format: outcome.format });
      else pending.reject(rebuildError(outcome.error));
    });
    const fail = (why: string): void => {
      const index = this.threads.indexOf(thread);
      if (index < 0) return;
      // Its requests get a 500 naming why; a fresh thread takes its place for the next ones.
      for (const pending of thread.pending.values()) pending.reject(new LeakwatchError('LW_ERR_INTERNAL', `the decoding thread failed: ${why}`));
      thread.pending.clear();
      if (this.closed) return;
      this.threads.splice(index, 1, this.spawn(file));
    };
    thread.worker.on('error', (error) => fail(error.message));
    thread.worker.on('exit', (code) => fail(`it exited with code ${code}`));
    return thread;
  }
}
