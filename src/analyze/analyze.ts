/**
 * `leakwatch analyze`: the server's grouping and classification over files, offline. journald
 * `short*` text, raw linkerd files and `journalctl -o json|json-seq|json-sse` lines may be mixed,
 * even within one file; `-o export` and `-o json-pretty` files are recognised by their first
 * bytes, gzip and zstd files by their magic.
 *
 * The input is read in chunks of whole lines into a few buffers that go round (shared memory) and
 * handed to every shard (shard.ts): each keeps the streams dealt to it, so with several threads
 * each groups and classifies its share of the streams while this thread reads and writes. Every
 * closed record carries the input line number of the record that closed it; the records of each
 * chunk are merged on it (and the groups still open at the end on their stream's last line, most
 * recent first, as one grouper's flush would close them), which gives exactly the output of a
 * single grouper over all lines. Memory does not grow with the input: a few chunks are in flight,
 * and a shard's thread has a bounded heap.
 */
import type { Readable } from 'node:stream';
import type { Worker } from 'node:worker_threads';
import type { GroupedRecord } from '../engine/grouped-record.js';
import { DEFAULT_OPEN_GROUP_LIMITS, type OpenGroupLimits } from '../engine/grouper-config.js';
import { UnclassifiedTally } from '../engine/unclassified-tally.js';
import type { RuleSet } from '../rules/load.js';
import type { OutputFormat, TableRow } from './format.js';
import { readChunks, resolveInputs, slotBytesFor, type InputFile, type SlotPool } from './input.js';
import { Router, type ShardLines } from './router.js';
import { startShardWorker } from './shard-workers.js';
import type { ShardSpec, ShardStats } from './shard.js';
import { defaultThreads } from './threads.js';
import { EVENT_OBJECT, EVENT_ROW, EVENT_TEXT, RECORD_OBJECT, RECORD_ROW, RECORD_TEXT, RoundWriter, SHAPE, type RoundOutput, type Shape } from './wire.js';

/** Where the output goes, in close order. */
export interface AnalyzeSink {
  /** ndjson, a chunk's worth at a time; a promise holds the reading back (the pipe's back-pressure). */
  text?(bytes: Uint8Array): void | Promise<void>;
  row?(row: TableRow, event: boolean): void;
  record?(record: GroupedRecord): void;
}

export interface AnalyzeOptions {
  /** 'records' hands on the records themselves (in this thread: threads is then 1). */
  format: OutputFormat | 'records';
  sink: AnalyzeSink;
  /** Also hand on every group no rule classified (`--all`), in close order with the events. */
  all?: boolean;
  /** Shards: 1 runs in this thread, more each on a worker thread. Default: the cores, at most 4. */
  threads?: number;
  /** Run a single shard on a worker thread too (its heap is bounded there; this thread's is not). */
  workerForOne?: boolean;
  /** Worker threads started ahead (takeShardWorkers), taken instead of starting new ones. */
  workers?: Worker[];
  stdin?: Readable;
  /** Read every file below a folder given as input (else a folder is refused). */
  recursive?: boolean;
  maxLineBytes?: number;
  maxZstdWindowBytes?: number;
  chunkBytes?: number;
  limits?: OpenGroupLimits;
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
  events: number;
  malformedJsonLines: number;
  /** Lines of `journalctl -o short-monotonic|short-delta`: times since boot, no dates. */
  bootTimeLines: number;
  groupsClosed: number;
  evictions: number;
  classifierErrors: number;
  /** Multi-line groups no rule classified: where the next rule is to be found. */
  unclassifiedTraces: UnclassifiedTally;
  /** Shards the run used. */
  threads: number;
  /** Why the run used one shard although more were asked for, when it did. */
  singleThreadReason?: string;
  /** The run stopped before the end of its input. */
  stopped: boolean;
}

export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
export const DEFAULT_CHUNK_BYTES = 512 * 1024;
export const DEFAULT_ANALYZE_ZSTD_WINDOW_BYTES = 32 * 1024 * 1024;
/** Chunks handed out and not yet merged back: with the slots and a shard's heap, what bounds a run's memory. */
const MAX_CHUNKS_IN_FLIGHT = 2;

/**
 * Why the rules' count windows need every event on one shard, or undefined when they do not: a
 * window keyed without host and service counts events of streams that different shards hold.
 */
export function countsNeedOneThread(ruleSet: Pick<RuleSet, 'countingRules'>): string | undefined {
  const key = ruleSet.countingRules.map((rule) => rule.incidentKey).find((parts) => !parts.includes('host') || !parts.includes('service'));
  return key === undefined ? undefined : `a count threshold is keyed on [${key.join(', ')}], without host and service`;
}

/** Messages to a shard's worker (worker.ts). */
export type ToWorker =
  | { type: 'init'; spec: ShardSpec; validatedFiles: RuleSet['validatedFiles']; format: OutputFormat; outputSlots: SharedArrayBuffer[] }
  | { type: 'file'; fallbackService: string }
  | { type: 'chunk'; round: number; buffer: SharedArrayBuffer; lines: ShardLines; firstLine: number; ascii: boolean; chunkLines: number }
  | { type: 'finish' };

/** Messages from a shard's worker. */
export type FromWorker =
  | { type: 'round'; round: number; output: RoundOutput; spent: Pick<ShardLines, 'ranges' | 'times'> }
  | { type: 'done'; output: RoundOutput; stats: ShardStats }
  | { type: 'error'; message: string };

type Deliver = (shard: number, round: number, output: RoundOutput, stats?: ShardStats) => void;
/** A shard is done with a chunk's line arrays (Router.reuse). */
type ReuseLines = (ranges: Uint32Array, times: Float64Array) => void;

/** A chunk as routed: its bytes, and the lines of it each shard owns. */
interface RoutedChunk {
  slot: Buffer;
  shards: ShardLines[];
  firstLine: number;
  ascii: boolean;
  chunkLines: number;
}

/** Where shards run: in this thread, or each on a worker thread. */
interface ShardHost {
  readonly pool: SlotPool;
  /** Where the texts of a shard's round are when the round did not bring them along. */
  textsOf(shard: number, round: number): Uint8Array;
  beginFile(fallbackService: string): void;
  /** Hands a chunk to every shard, with the lines it owns; their output comes back through `deliver`. */
  chunk(round: number, chunk: RoutedChunk): void;
  /** Every shard is done with the chunk of `round`. */
  done(round: number): void;
  finish(): void;
  readonly failure: Error | undefined;
  close(): Promise<void>;
}

const FINAL_ROUND = -1;
const EMPTY = new Uint8Array(0);

/** Slots that go round: a chunk being filled, the chunks in flight, and one to spare. */
class Slots implements SlotPool {
  private readonly free: Buffer[] = [];

  constructor(
    readonly slotBytes: number,
    private readonly shared: boolean,
  ) {}

  take(): Buffer {
    return this.free.pop() ?? (this.shared ? Buffer.from(new SharedArrayBuffer(this.slotBytes)) : Buffer.allocUnsafeSlow(this.slotBytes));
  }

  release(slot: Buffer): void {
    this.free.push(slot);
  }
}

class InProcessHost implements ShardHost {
  readonly failure = undefined;
  private shard: import('./shard.js').AnalyzeShard | undefined;
  private readonly writer: RoundWriter;

  constructor(
    private readonly spec: ShardSpec,
    private readonly ruleSet: Pick<RuleSet, 'groupers' | 'classifier'>,
    private readonly format: OutputFormat | 'records',
    private readonly deliver: Deliver,
    readonly pool: Slots,
    private readonly reuseLines: ReuseLines,
  ) {
    this.writer = new RoundWriter(format);
  }

  async start(): Promise<void> {
    // Imported here: a run on worker threads never loads the shard into this thread.
    const { AnalyzeShard } = await import('./shard.js');
    this.shard = new AnalyzeShard(this.spec, this.ruleSet.groupers, this.ruleSet.classifier, this.writer);
  }

  private active(): import('./shard.js').AnalyzeShard {
    return this.shard as import('./shard.js').AnalyzeShard;
  }

  beginFile(fallbackService: string): void {
    this.active().beginFile(fallbackService);
  }

  chunk(round: number, chunk: RoutedChunk): void {
    this.writer.begin(undefined);
    const lines = chunk.shards[0] as ShardLines;
    this.active().processLines(chunk.slot, lines, chunk.firstLine, chunk.ascii, chunk.chunkLines);
    this.pool.release(chunk.slot);
    this.reuseLines(lines.ranges, lines.times);
    this.deliver(0, round, this.writer.end().output);
  }

  done(): void {}

  textsOf(): Uint8Array {
    return EMPTY;
  }

  finish(): void {
    const shard = this.active();
    this.writer.begin(undefined);
    shard.finish();
    this.deliver(0, FINAL_ROUND, this.writer.end().output, shard.stats());
  }

  async close(): Promise<void> {}
}

class WorkerHost implements ShardHost {
  private readonly workers: Worker[] = [];
  /** Per worker: the shared slots its rounds' texts go to (round r in slot r % MAX_CHUNKS_IN_FLIGHT). */
  private readonly outputSlots: Buffer[][] = [];
  private readonly inFlight = new Map<number, Buffer>();
  failure: Error | undefined;

  constructor(
    specs: readonly ShardSpec[],
    validatedFiles: RuleSet['validatedFiles'],
    format: OutputFormat,
    deliver: Deliver,
    readonly pool: Slots,
    outputSlotBytes: number,
    private readonly onFailure: () => void,
    reuseLines: ReuseLines,
    started: Worker[] = [],
  ) {
    for (const spec of specs) {
      const worker = started.shift() ?? startShardWorker();
      worker.on('message', (message: FromWorker) => {
        if (message.type === 'round') {
          reuseLines(message.spent.ranges, message.spent.times);
          deliver(spec.index, message.round, message.output);
        } else if (message.type === 'done') deliver(spec.index, FINAL_ROUND, message.output, message.stats);
        else this.fail(new Error(`analyze thread ${spec.index}: ${message.message}`));
      });
      worker.on('error', (error) => this.fail(error));
      worker.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`analyze thread ${spec.index} exited with ${code}`));
      });
      // Round r's texts go to slot r % MAX_CHUNKS_IN_FLIGHT: round r is sent only once round r - MAX_CHUNKS_IN_FLIGHT is merged.
      const outputSlots = Array.from({ length: MAX_CHUNKS_IN_FLIGHT }, () => new SharedArrayBuffer(outputSlotBytes));
      this.outputSlots.push(outputSlots.map((slot) => Buffer.from(slot)));
      worker.postMessage({ type: 'init', spec, validatedFiles, format, outputSlots } satisfies ToWorker);
      this.workers.push(worker);
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    this.onFailure();
  }

  beginFile(fallbackService: string): void {
    for (const worker of this.workers) worker.postMessage({ type: 'file', fallbackService } satisfies ToWorker);
  }

  chunk(round: number, chunk: RoutedChunk): void {
    this.inFlight.set(round, chunk.slot);
    const buffer = chunk.slot.buffer as SharedArrayBuffer;
    this.workers.forEach((worker, index) => {
      const lines = chunk.shards[index] as ShardLines;
      const message: ToWorker = { type: 'chunk', round, buffer, lines, firstLine: chunk.firstLine, ascii: chunk.ascii, chunkLines: chunk.chunkLines };
      worker.postMessage(message, [lines.ranges.buffer as ArrayBuffer, lines.times.buffer as ArrayBuffer]);
    });
  }

  textsOf(shard: number, round: number): Uint8Array {
    const slots = this.outputSlots[shard] as Buffer[];
    return slots[round % slots.length] as Buffer;
  }

  done(round: number): void {
    const slot = this.inFlight.get(round);
    if (slot === undefined) return;
    this.inFlight.delete(round);
    this.pool.release(slot);
  }

  finish(): void {
    for (const worker of this.workers) worker.postMessage({ type: 'finish' } satisfies ToWorker);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
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
  const onWorkers = threads > 1 || (options.workerForOne === true && options.format !== 'records');
  const limits = options.limits ?? DEFAULT_OPEN_GROUP_LIMITS;
  const receivedAt = options.receivedAt ?? Date.now();
  const specs: ShardSpec[] = Array.from({ length: threads }, (_, index) => ({
    index,
    receivedAt,
    all: options.all === true,
    limits: { ...limits, maxStreams: Math.max(1, Math.floor(limits.maxStreams / threads)), maxBytes: Math.max(1, Math.floor(limits.maxBytes / threads)) },
  }));
  const readOptions = {
    stdin: options.stdin,
    chunkBytes: options.chunkBytes ?? DEFAULT_CHUNK_BYTES,
    maxLineBytes: options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES,
    maxZstdWindowBytes: options.maxZstdWindowBytes ?? DEFAULT_ANALYZE_ZSTD_WINDOW_BYTES,
  };
  const pool = new Slots(slotBytesFor(readOptions), onWorkers);

  // Rounds: each chunk's output from every shard, merged and handed on in order.
  const rounds = new Map<number, { outputs: RoundOutput[]; got: number }>();
  const stats: ShardStats[] = [];
  const router = new Router(threads, receivedAt);
  let wake: (() => void) | undefined;
  const resume = (): void => {
    const waiting = wake;
    wake = undefined;
    waiting?.();
  };
  const deliver: Deliver = (shard, round, output, shardStats) => {
    let entry = rounds.get(round);
    if (entry === undefined) {
      entry = { outputs: new Array<RoundOutput>(threads), got: 0 };
      rounds.set(round, entry);
    }
    entry.outputs[shard] = output;
    entry.got++;
    if (shardStats !== undefined) stats[shard] = shardStats;
    resume();
  };
  const nextDelivery = (): Promise<void> => new Promise<void>((resolve) => (wake = resolve));

  let host: ShardHost;
  const reuseLines: ReuseLines = (ranges, times) => router.reuse(ranges, times);
  if (onWorkers) {
    host = new WorkerHost(specs, ruleSet.validatedFiles, options.format as OutputFormat, deliver, pool, 2 * readOptions.chunkBytes, resume, reuseLines, options.workers);
  } else {
    const inProcess = new InProcessHost(specs[0] as ShardSpec, ruleSet, options.format, deliver, pool, reuseLines);
    await inProcess.start();
    host = inProcess;
  }

  const output = new MergedOutput(options.sink, readOptions.chunkBytes);
  let nextRound = 0;
  let dispatched = 0;
  let bytesRead = 0;
  const roundReady = (): boolean => rounds.get(nextRound)?.got === threads;
  const finalReady = (): boolean => nextRound === dispatched && rounds.get(FINAL_ROUND)?.got === threads;
  /** Hands on every round all shards have finished, in order. */
  const handOnReady = async (): Promise<void> => {
    for (let entry = rounds.get(nextRound); entry !== undefined && entry.got === threads; entry = rounds.get(nextRound)) {
      rounds.delete(nextRound);
      host.done(nextRound);
      const round = nextRound++;
      await output.merge(entry.outputs, false, (shard) => host.textsOf(shard, round));
    }
    options.onProgress?.(bytesRead, router.lines);
  };
  const check = (): void => {
    if (host.failure !== undefined) throw host.failure;
  };

  let stopped = false;
  try {
    reading: for (const input of inputs) {
      host.beginFile(input.fallbackService);
      router.beginFile(input.fallbackService);
      for await (const chunk of readChunks(input, { ...readOptions, onRead: (bytes) => (bytesRead += bytes) }, pool)) {
        // Checked before waiting: a delivery that came while the output was written is not waited for again.
        while (dispatched - nextRound >= MAX_CHUNKS_IN_FLIGHT) {
          check();
          if (roundReady()) await handOnReady();
          else await nextDelivery();
        }
        check();
        if (options.stopped?.() === true) {
          pool.release(chunk.slot);
          stopped = true;
          break reading;
        }
        const routed = router.route(chunk.slot, chunk.length);
        host.chunk(dispatched++, { slot: chunk.slot, ...routed, chunkLines: router.lines - routed.firstLine });
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
      await output.merge((rounds.get(FINAL_ROUND) as { outputs: RoundOutput[] }).outputs, true, () => EMPTY);
    }
  } finally {
    await host.close();
  }
  const total = (key: 'malformedJsonLines' | 'bootTimeLines' | 'groupsClosed' | 'evictions' | 'classifierErrors'): number => stats.reduce((sum, shard) => sum + shard[key], 0);
  return {
    lines: router.lines,
    events: output.events,
    malformedJsonLines: total('malformedJsonLines'),
    bootTimeLines: total('bootTimeLines'),
    groupsClosed: total('groupsClosed'),
    evictions: total('evictions'),
    classifierErrors: total('classifierErrors'),
    unclassifiedTraces: output.unclassified,
    threads,
    ...(singleThreadReason !== undefined ? { singleThreadReason } : {}),
    stopped,
  };
}

/** The shards' outputs of a round merged on their order, handed to the sink. */
class MergedOutput {
  events = 0;
  readonly unclassified = new UnclassifiedTally();
  private readonly staging: Buffer;
  private staged = 0;

  constructor(
    private readonly sink: AnalyzeSink,
    stagingBytes: number,
  ) {
    this.staging = Buffer.allocUnsafeSlow(stagingBytes);
  }

  /** Merges on order (descending for the groups closed at the end, as one grouper's flush closes the most recent first). */
  async merge(outputs: readonly RoundOutput[], descending: boolean, textsOf: (shard: number) => Uint8Array): Promise<void> {
    const texts = outputs.map((round, shard) => round.bytes ?? textsOf(shard));
    const positions = new Array<number>(outputs.length).fill(0);
    const objectPositions = new Array<number>(outputs.length).fill(0);
    for (;;) {
      let best = -1;
      let bestOrder = 0;
      for (let shard = 0; shard < outputs.length; shard++) {
        const round = outputs[shard] as RoundOutput;
        const position = positions[shard] as number;
        if (position >= round.orders.length) continue;
        const order = round.orders[position] as number;
        // Records of one line number all come from one shard (the line is its alone): no ties across shards.
        if (best < 0 || (descending ? order > bestOrder : order < bestOrder)) {
          best = shard;
          bestOrder = order;
        }
      }
      if (best < 0) break;
      const round = outputs[best] as RoundOutput;
      const position = positions[best] as number;
      positions[best] = position + 1;
      const kind = round.kinds[position] as number;
      if (kind === EVENT_TEXT || kind === RECORD_TEXT) {
        if (kind === EVENT_TEXT) this.events++;
        const start = position === 0 ? 0 : (round.ends[position - 1] as number);
        await this.stage(texts[best] as Uint8Array, start, round.ends[position] as number);
        continue;
      }
      const object = round.objects[objectPositions[best] as number];
      objectPositions[best] = (objectPositions[best] as number) + 1;
      if (kind === SHAPE) {
        const { shape, example } = object as Shape;
        this.unclassified.addShaped(shape, example);
      } else if (kind === EVENT_ROW || kind === RECORD_ROW) {
        if (kind === EVENT_ROW) this.events++;
        this.sink.row?.(object as TableRow, kind === EVENT_ROW);
      } else if (kind === EVENT_OBJECT || kind === RECORD_OBJECT) {
        if (kind === EVENT_OBJECT) this.events++;
        this.sink.record?.(object as GroupedRecord);
      }
    }
    await this.flush();
  }

  private async stage(bytes: Uint8Array, start: number, end: number): Promise<void> {
    if (this.staged + (end - start) > this.staging.length) await this.flush();
    if (end - start > this.staging.length) {
      await this.sink.text?.(bytes.subarray(start, end));
      return;
    }
    this.staging.set(bytes.subarray(start, end), this.staged);
    this.staged += end - start;
  }

  private async flush(): Promise<void> {
    if (this.staged === 0) return;
    const view = this.staging.subarray(0, this.staged);
    this.staged = 0;
    // The sink writes the bytes before the promise settles (or returns nothing after writing them): the staging buffer is free again.
    await this.sink.text?.(view);
  }
}

/** The records of files as objects, grouped and classified in this thread (tests), in close order. */
export async function analyzeFiles(
  paths: readonly string[],
  ruleSet: RuleSet,
  onRecords: (records: GroupedRecord[]) => void | Promise<void>,
  options: { stdin?: Readable; all?: boolean } = {},
): Promise<AnalyzeResult> {
  const records: GroupedRecord[] = [];
  const result = await analyze(paths, ruleSet, { format: 'records', ...options, sink: { record: (record) => void records.push(record) } });
  await onRecords(records);
  return result;
}
