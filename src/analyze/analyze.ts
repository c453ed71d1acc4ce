/**
 * `leakwatch analyze`: the server's grouping and classification over files, offline. journald
 * `short*` text, raw linkerd files and `journalctl -o json|json-seq|json-sse` lines may be mixed,
 * even within one file; `-o export` and `-o json-pretty` files are recognised by their first
 * bytes, gzip and zstd files by their magic.
 *
 * The input is read in chunks of whole lines and handed to every shard (shard.ts): each keeps the
 * streams dealt to it, so with several threads each groups and classifies its share of the streams
 * while this thread reads and writes. Every closed record carries the input line number of the
 * record that closed it; the records of each chunk are merged on it (and the groups still open at
 * the end on their stream's last line, most recent first, as one grouper's flush would close them),
 * which gives exactly the output of a single grouper over all lines.
 */
import type { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import type { GroupedRecord } from '../engine/grouped-record.js';
import { DEFAULT_OPEN_GROUP_LIMITS, type OpenGroupLimits } from '../engine/grouper-config.js';
import type { RuleSet } from '../rules/load.js';
import { UnclassifiedTally } from '../engine/unclassified-tally.js';
import type { FormattedRecord, OutputFormat } from './format.js';
import { readChunks, resolveInputs, type InputFile } from './input.js';
import { AnalyzeShard, type ShardSpec, type ShardStats } from './shard.js';
import { defaultThreads } from './threads.js';
import { toWire, type WireItem } from './wire.js';

export type { WireItem } from './wire.js';

/** A record for the output, in close order; `out` when formatted, `record` with format 'records'. */
export interface OutputRecord {
  out?: FormattedRecord;
  record?: GroupedRecord;
}

export interface AnalyzeOptions {
  /** 'records' hands on the records themselves (in this thread only: threads is then 1). */
  format: OutputFormat | 'records';
  /** Also hand on every group no rule classified (`--all`), in close order with the events. */
  all?: boolean;
  /** Shards, each on a worker thread; 1 runs in this thread. Default: the available cores, at most 4. */
  threads?: number;
  stdin?: Readable;
  /** Read every file below a folder given as input (else a folder is refused). */
  recursive?: boolean;
  maxLineBytes?: number;
  maxZstdWindowBytes?: number;
  chunkBytes?: number;
  limits?: OpenGroupLimits;
  /** Receives the output in order, a chunk's worth at a time; a promise holds the reading back (pipe back-pressure). */
  onRecords: (records: OutputRecord[]) => void | Promise<void>;
  /** Told the total size of the inputs as stored, once they are known (undefined when one is stdin). */
  onStart?: (totalBytes: number | undefined) => void;
  /** Told of bytes read (as stored) and lines read so far. */
  onProgress?: (bytesRead: number, lines: number) => void;
  /** Polled between chunks: true stops the run early (the reader of the output went away). */
  stopped?: () => boolean;
  /** When the input is read: the year of yearless dates, the time of lines that carry none. Default: now. */
  receivedAt?: number;
}

export interface AnalyzeResult {
  lines: number;
  malformedJsonLines: number;
  groupsClosed: number;
  evictions: number;
  classifierErrors: number;
  /** Multi-line groups no rule classified: where the next rule is to be found. */
  unclassifiedTraces: UnclassifiedTally;
  /** Shards the run used. */
  threads: number;
  /** Why the run used one thread although more were asked for, when it did. */
  singleThreadReason?: string;
  /** The run stopped before the end of its input. */
  stopped: boolean;
}

export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;
export const DEFAULT_ANALYZE_ZSTD_WINDOW_BYTES = 32 * 1024 * 1024;
/** Chunks handed out and not yet merged back: what bounds the memory of a run, whatever its input. */
const MAX_CHUNKS_IN_FLIGHT = 4;

/**
 * Why the rules' count windows need every event on one thread, or undefined when they do not: a
 * window keyed without host and service counts events of streams that different shards hold.
 */
export function countsNeedOneThread(ruleSet: Pick<RuleSet, 'countKeys'>): string | undefined {
  const key = ruleSet.countKeys.find((parts) => !parts.includes('host') || !parts.includes('service'));
  return key === undefined ? undefined : `a count threshold is keyed on [${key.join(', ')}], without host and service`;
}

/** Where shards run: in this thread, or each on a worker thread. */
interface ShardHost {
  beginFile(fallbackService: string): void;
  /** Hands a chunk to every shard; their items come back through `deliver`. */
  chunk(round: number, bytes: Buffer): void;
  finish(): void;
  close(): Promise<void>;
}

type Deliver = (shard: number, round: number, items: WireItem[], lines: number, stats?: ShardStats) => void;

const FINAL_ROUND = -1;

class InProcessHost implements ShardHost {
  private readonly shard: AnalyzeShard;

  constructor(
    spec: ShardSpec,
    ruleSet: Pick<RuleSet, 'groupers' | 'classifier'>,
    private readonly format: OutputFormat | 'records',
    private readonly deliver: Deliver,
  ) {
    this.shard = new AnalyzeShard(spec, ruleSet.groupers, ruleSet.classifier);
  }

  beginFile(fallbackService: string): void {
    this.shard.beginFile(fallbackService);
  }

  chunk(round: number, bytes: Buffer): void {
    const items = this.shard.processText(bytes.toString('utf8'));
    this.deliver(0, round, toWire(items, this.format), this.shard.stats().lines);
  }

  finish(): void {
    const items = this.shard.finish();
    const stats = this.shard.stats();
    this.deliver(0, FINAL_ROUND, toWire(items, this.format), stats.lines, stats);
  }

  async close(): Promise<void> {}
}

/** Messages to a shard's worker (worker.ts). */
export type ToWorker =
  | { type: 'init'; spec: ShardSpec; validatedFiles: RuleSet['validatedFiles']; format: OutputFormat }
  | { type: 'file'; fallbackService: string }
  | { type: 'chunk'; round: number; buffer: SharedArrayBuffer; length: number }
  | { type: 'finish' };

/** Messages from a shard's worker. */
export type FromWorker =
  | { type: 'round'; round: number; items: WireItem[]; lines: number }
  | { type: 'done'; items: WireItem[]; stats: ShardStats }
  | { type: 'error'; message: string };

const WORKER_URL = new URL('./worker.js', import.meta.url);

class WorkerHost implements ShardHost {
  private readonly workers: Worker[] = [];
  /** Shared buffers free for the next chunk: one copy of a chunk serves every worker. */
  private readonly freeBuffers: SharedArrayBuffer[] = [];
  private readonly inUse = new Map<number, SharedArrayBuffer>();
  failure: Error | undefined;

  constructor(
    specs: readonly ShardSpec[],
    validatedFiles: RuleSet['validatedFiles'],
    format: OutputFormat,
    deliver: Deliver,
    private readonly bufferBytes: number,
    onFailure: () => void,
  ) {
    for (const spec of specs) {
      // The young generation bounded: most of what a shard allocates dies within a chunk.
      const worker = new Worker(WORKER_URL, { resourceLimits: { maxYoungGenerationSizeMb: 8 } });
      worker.on('message', (message: FromWorker) => {
        if (message.type === 'round') deliver(spec.index, message.round, message.items, message.lines);
        else if (message.type === 'done') deliver(spec.index, FINAL_ROUND, message.items, message.stats.lines, message.stats);
        else this.fail(new Error(`analyze thread ${spec.index}: ${message.message}`), onFailure);
      });
      worker.on('error', (error) => this.fail(error, onFailure));
      worker.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`analyze thread ${spec.index} exited with ${code}`), onFailure);
      });
      worker.postMessage({ type: 'init', spec, validatedFiles, format } satisfies ToWorker);
      this.workers.push(worker);
    }
  }

  private fail(error: Error, onFailure: () => void): void {
    this.failure ??= error;
    onFailure();
  }

  beginFile(fallbackService: string): void {
    for (const worker of this.workers) worker.postMessage({ type: 'file', fallbackService } satisfies ToWorker);
  }

  chunk(round: number, bytes: Buffer): void {
    let buffer = bytes.length <= this.bufferBytes ? this.freeBuffers.pop() : undefined;
    buffer ??= new SharedArrayBuffer(Math.max(this.bufferBytes, bytes.length));
    bytes.copy(new Uint8Array(buffer));
    this.inUse.set(round, buffer);
    for (const worker of this.workers) worker.postMessage({ type: 'chunk', round, buffer, length: bytes.length } satisfies ToWorker);
  }

  /** Every shard is done with the chunk of `round`: its buffer serves again. */
  release(round: number): void {
    const buffer = this.inUse.get(round);
    if (buffer === undefined) return;
    this.inUse.delete(round);
    if (buffer.byteLength === this.bufferBytes) this.freeBuffers.push(buffer);
  }

  finish(): void {
    for (const worker of this.workers) worker.postMessage({ type: 'finish' } satisfies ToWorker);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}

/** Merges the shards' items of one chunk on their order (descending for the groups closed at the end). */
function merge(lists: readonly WireItem[][], descending: boolean): WireItem[] {
  if (lists.length === 1) return lists[0] as WireItem[];
  const merged: WireItem[] = [];
  const positions = new Array<number>(lists.length).fill(0);
  for (;;) {
    let best = -1;
    let bestOrder = 0;
    for (let shard = 0; shard < lists.length; shard++) {
      const list = lists[shard] as WireItem[];
      const position = positions[shard] as number;
      if (position >= list.length) continue;
      const order = (list[position] as WireItem).order;
      if (best < 0 || (descending ? order > bestOrder : order < bestOrder)) {
        best = shard;
        bestOrder = order;
      }
    }
    if (best < 0) return merged;
    merged.push((lists[best] as WireItem[])[positions[best] as number] as WireItem);
    positions[best] = (positions[best] as number) + 1;
  }
}

/** Runs analyze over `paths` ('-' or none: stdin). Throws InputError for an input that cannot be read. */
export async function analyze(paths: readonly string[], ruleSet: RuleSet, options: AnalyzeOptions): Promise<AnalyzeResult> {
  const inputs = await resolveInputs(paths, { recursive: options.recursive === true });
  options.onStart?.(inputs.every((input) => input.size !== undefined) ? inputs.reduce((sum, input) => sum + (input.size as number), 0) : undefined);
  return analyzeInputs(inputs, ruleSet, options);
}

export async function analyzeInputs(inputs: readonly InputFile[], ruleSet: RuleSet, options: AnalyzeOptions): Promise<AnalyzeResult> {
  let threads = options.format === 'records' ? 1 : Math.max(1, Math.floor(options.threads ?? defaultThreads()));
  let singleThreadReason: string | undefined;
  if (threads > 1) {
    singleThreadReason = countsNeedOneThread(ruleSet);
    if (singleThreadReason !== undefined) threads = 1;
  }
  const limits = options.limits ?? DEFAULT_OPEN_GROUP_LIMITS;
  const receivedAt = options.receivedAt ?? Date.now();
  const specs: ShardSpec[] = Array.from({ length: threads }, (_, index) => ({
    index,
    count: threads,
    receivedAt,
    all: options.all === true,
    limits: { ...limits, maxStreams: Math.max(1, Math.floor(limits.maxStreams / threads)), maxBytes: Math.max(1, Math.floor(limits.maxBytes / threads)) },
  }));
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;

  // Rounds: each chunk's items from every shard, merged and handed on in order.
  const rounds = new Map<number, { lists: WireItem[][]; got: number }>();
  const stats: ShardStats[] = [];
  let lines = 0;
  let wake: (() => void) | undefined;
  const deliver: Deliver = (shard, round, items, shardLines, shardStats) => {
    let entry = rounds.get(round);
    if (entry === undefined) {
      entry = { lists: new Array<WireItem[]>(threads), got: 0 };
      rounds.set(round, entry);
    }
    entry.lists[shard] = items;
    entry.got++;
    if (shard === 0) lines = shardLines;
    if (shardStats !== undefined) stats[shard] = shardStats;
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  const nextDelivery = (): Promise<void> => new Promise<void>((resolve) => (wake = resolve));

  const host: ShardHost =
    threads === 1
      ? new InProcessHost(specs[0] as ShardSpec, ruleSet, options.format, deliver)
      : new WorkerHost(specs, ruleSet.validatedFiles, options.format as OutputFormat, deliver, chunkBytes * 2 + maxLineBytes, () => {
          const resume = wake;
          wake = undefined;
          resume?.();
        });
  const failure = (): Error | undefined => (host instanceof WorkerHost ? host.failure : undefined);

  const unclassifiedTraces = new UnclassifiedTally();
  let nextRound = 0;
  let dispatched = 0;
  let bytesRead = 0;

  const handOn = async (items: readonly WireItem[]): Promise<void> => {
    const out: OutputRecord[] = [];
    for (const item of items) {
      if ('shape' in item) unclassifiedTraces.addShaped(item.shape, item.example);
      else if ('out' in item) out.push({ out: item.out });
      else out.push({ record: item.record });
    }
    if (out.length > 0) await options.onRecords(out);
  };
  /** Hands on every round all shards have finished, in order. */
  const handOnReady = async (): Promise<void> => {
    for (let entry = rounds.get(nextRound); entry !== undefined && entry.got === threads; entry = rounds.get(nextRound)) {
      rounds.delete(nextRound);
      if (host instanceof WorkerHost) host.release(nextRound);
      nextRound++;
      await handOn(merge(entry.lists, false));
    }
    options.onProgress?.(bytesRead, lines);
  };
  const check = (): void => {
    const error = failure();
    if (error !== undefined) throw error;
  };

  const roundReady = (): boolean => rounds.get(nextRound)?.got === threads;
  const finalReady = (): boolean => nextRound === dispatched && rounds.get(FINAL_ROUND)?.got === threads;

  let stopped = false;
  try {
    reading: for (const input of inputs) {
      host.beginFile(input.fallbackService);
      const chunks = readChunks(input, {
        stdin: options.stdin,
        maxLineBytes,
        chunkBytes,
        maxZstdWindowBytes: options.maxZstdWindowBytes ?? DEFAULT_ANALYZE_ZSTD_WINDOW_BYTES,
        onRead: (bytes) => (bytesRead += bytes),
      });
      for await (const chunk of chunks) {
        // Checked before waiting: a delivery that came while the output was written is not waited for again.
        while (dispatched - nextRound >= MAX_CHUNKS_IN_FLIGHT) {
          check();
          if (roundReady()) await handOnReady();
          else await nextDelivery();
        }
        check();
        if (options.stopped?.() === true) {
          stopped = true;
          break reading;
        }
        host.chunk(dispatched++, chunk);
        await handOnReady();
      }
    }
    if (!stopped) {
      host.finish();
      while (!finalReady()) {
        check();
        if (roundReady()) await handOnReady();
        else await nextDelivery();
      }
      const final = rounds.get(FINAL_ROUND) as { lists: WireItem[][] };
      await handOn(merge(final.lists, true));
    }
  } finally {
    await host.close();
  }
  const total = (key: 'malformedJsonLines' | 'groupsClosed' | 'evictions' | 'classifierErrors'): number => stats.reduce((sum, shard) => sum + shard[key], 0);
  return {
    lines,
    malformedJsonLines: total('malformedJsonLines'),
    groupsClosed: total('groupsClosed'),
    evictions: total('evictions'),
    classifierErrors: total('classifierErrors'),
    unclassifiedTraces,
    threads,
    ...(singleThreadReason !== undefined ? { singleThreadReason } : {}),
    stopped,
  };
}

/**
 * The records of files as objects, in this thread (tests, `rules test`): `onRecords` receives
 * them in close order.
 */
export async function analyzeFiles(
  paths: readonly string[],
  ruleSet: RuleSet,
  onRecords: (records: GroupedRecord[]) => void | Promise<void>,
  options: { stdin?: Readable; all?: boolean } = {},
): Promise<AnalyzeResult> {
  return analyze(paths, ruleSet, {
    format: 'records',
    ...options,
    onRecords: (records) => onRecords(records.map((record) => record.record as GroupedRecord)),
  });
}
