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
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { compiledWorkerFile } from '../worker-file.js';
import { ERROR_CATALOGUE, LeakwatchError, type ErrorCode, type ErrorDetails } from '../errors.js';
import type { DecodeEncodingOptions } from './content-encoding.js';
import { decodeReceivedBody, type BodyFormat, type DecodedBody, type DecodeLimits, type IngestedBody, type ReceivedBody } from './decode-body.js';
import type { InflightBytes, InflightClaim } from './inflight.js';
import { allRecords, PackedBatch, type PackedRecords } from './packed-records.js';

/** How every body is decoded: the same for the route and the journal replay. */
export interface DecodeSettings extends Omit<DecodeEncodingOptions, 'reserve'> {
  limits?: Partial<DecodeLimits>;
}

export interface DecodeWorkerData {
  options: DecodeSettings;
  /** The bytes-in-flight count, and this thread's share of it (given back if the thread dies). */
  inflight?: { shared: SharedArrayBuffer; capacity: number; threadShare: SharedArrayBuffer };
}

export interface DecodeTask {
  id: number;
  received: ReceivedBody;
  receivedAtMs: number;
  /** Bytes the request already holds in flight (its received body): it is not "another request". */
  claimed: number;
}

/** A scratch set the main thread is done with, back to the decoding thread that lent it. */
export interface ScratchReturn {
  scratch: ArrayBuffer[];
}

export type DecodeOutcome =
  /** `lent`: the columns are the thread's scratch set, to be handed back (PackedBatch#release). */
  | { id: number; ok: true; packed: PackedRecords; lent: boolean; malformed: number; withoutText: number; format: BodyFormat | 'empty' }
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
  resolve: (batch: IngestedBody) => void;
  reject: (error: Error) => void;
  bytes: number;
  /** Decodes the body on the main thread instead (when its thread dies under it). */
  here: () => Promise<DecodedBody>;
}

interface DecodeThread {
  worker: Worker;
  /** What its claims hold of the bytes in flight. */
  share: BigInt64Array;
  pending: Map<number, Pending>;
  /** Body bytes sent and not yet answered: new work goes to the least loaded thread. */
  load: number;
}

const WORKER_FILE = new URL('./decode-worker.js', import.meta.url);

/**
 * A decoding thread's heap is bounded (V8 would otherwise let it grow to gigabytes before
 * collecting). A body whose decoding needs more (hundreds of thousands of records at once) ends
 * the thread; it is then decoded on the main thread, which has room for it. A young generation of
 * 8 MiB instead of 32 holds the same slices (a run of JSON elements is parsed at once): 100,000
 * streams opened through 6 MB bodies peak 25 MiB lower, at the same decoding CPU (profiled).
 */
const DECODE_THREAD_HEAP = { maxOldGenerationSizeMb: 128, maxYoungGenerationSizeMb: 8 };

export class DecodePool {
  private readonly threads: DecodeThread[] = [];
  private nextId = 1;
  private closed = false;
  private failures = 0;

  constructor(
    private readonly settings: DecodeSettings,
    private readonly options: { threads: number; inflight?: InflightBytes; workerFile?: URL } = { threads: defaultDecodeThreads() },
  ) {
    // From the TypeScript sources (tests) there is no compiled worker: decode in process.
    const file = compiledWorkerFile(options.workerFile ?? WORKER_FILE);
    if (file === undefined) return;
    for (let index = 0; index < options.threads; index++) this.threads.push(this.spawn(file));
  }

  /** Threads decoding (0: bodies are decoded on the main thread). */
  get size(): number {
    return this.threads.length;
  }

  /** Decodes a body as received; what it decompresses is claimed in flight as part of `claim`'s request. */
  async decode(received: ReceivedBody, receivedAtMs: number, claim?: InflightClaim): Promise<DecodedBody> {
    const decoded = await this.decodeToBatch(received, receivedAtMs, claim);
    const records = allRecords(decoded.records);
    if (decoded.records instanceof PackedBatch) decoded.records.release();
    return { ...decoded, records };
  }

  /**
   * As decode(), but a decoding thread's records stay packed (PackedBatch), to be unpacked a slice
   * at a time as the engine takes them: what ingest queues.
   */
  decodeToBatch(received: ReceivedBody, receivedAtMs: number, claim?: InflightClaim): Promise<IngestedBody> {
    const here = (): Promise<DecodedBody> =>
      decodeReceivedBody(received, receivedAtMs, { ...this.settings, ...(claim ? { reserve: (bytes: number) => claim.add(bytes) } : {}) });
    const thread = this.leastLoaded();
    if (thread === undefined || this.closed) return here();
    const id = this.nextId++;
    const bytes = received.body.byteLength;
    thread.load += bytes;
    return new Promise<IngestedBody>((resolve, reject) => {
      thread.pending.set(id, { resolve, reject, bytes, here });
      const task: DecodeTask = { id, received, receivedAtMs, claimed: claim?.bytes ?? 0 };
      thread.worker.postMessage(task);
    });
  }

  /** Threads replaced because they died (out of heap, say); their bodies were decoded on the main thread. */
  get threadFailures(): number {
    return this.failures;
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
    const share = new BigInt64Array(new SharedArrayBuffer(8));
    const workerData: DecodeWorkerData = {
      options: this.settings,
      ...(inflight ? { inflight: { shared: inflight.shared, capacity: inflight.capacity, threadShare: share.buffer as SharedArrayBuffer } } : {}),
    };
    const thread: DecodeThread = { worker: new Worker(file, { workerData, resourceLimits: DECODE_THREAD_HEAP }), share, pending: new Map(), load: 0 };
    // An idle decoding thread must not keep the process alive.
    thread.worker.unref();
    thread.worker.on('message', (outcome: DecodeOutcome) => {
      const pending = thread.pending.get(outcome.id);
      if (pending === undefined) return;
      thread.pending.delete(outcome.id);
      thread.load -= pending.bytes;
      if (outcome.ok) {
        const giveBack = outcome.lent ? (scratch: ArrayBuffer[]) => thread.worker.postMessage({ scratch } satisfies ScratchReturn, scratch) : undefined;
        pending.resolve({ records: new PackedBatch(outcome.packed, giveBack), malformed: outcome.malformed, withoutText: outcome.withoutText, format: outcome.format });
      }
      else pending.reject(rebuildError(outcome.error));
    });
    const fail = (why: string): void => {
      const index = this.threads.indexOf(thread);
      if (index < 0) return;
      const orphans = [...thread.pending.values()];
      thread.pending.clear();
      // What it had claimed and never released.
      this.options.inflight?.giveBackShare(thread.share);
      if (this.closed) {
        for (const pending of orphans) pending.reject(new LeakwatchError('LW_ERR_INTERNAL', `the decoding thread stopped: ${why}`));
        return;
      }
      this.failures++;
      this.threads.splice(index, 1, this.spawn(file));
      // Its bodies are decoded here instead: the answer is what it would have been.
      for (const pending of orphans) pending.here().then(pending.resolve, pending.reject);
    };
    thread.worker.on('error', (error) => fail(error.message));
    thread.worker.on('exit', (code) => fail(`it exited with code ${code}`));
    return thread;
  }
}
