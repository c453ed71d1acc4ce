import type { Logger } from 'pino';
import type { Engine, EventSink } from './engine/engine.js';
import type { LeakEvent } from './engine/event.js';
import type { BoundedRecordQueue } from './ingest/queue.js';
import type { LogRecord } from './ingest/record.js';
import type { IngestJournal } from './store/store.js';

/** Where the pipeline hands its output: records (metrics snapshots) and classified events. */
export interface PipelineOutputs {
  records(records: readonly LogRecord[]): void;
  events(events: LeakEvent[]): void;
}

export interface PipelineCounters {
  batchesAccepted: number;
  recordsAccepted: number;
  /** Accepted records with none of the text fields leakwatch reads. */
  recordsWithoutText: number;
  batchesRefused: number;
  eventsOut: number;
  outputErrors: number;
  /** Journal batches replayed at start-up (accepted before a crash, not all classified). */
  batchesReplayed: number;
}

export interface PipelineOptions {
  /** Where accepted batches are kept until their groups have closed; without it, a crash loses them. */
  journal?: IngestJournal;
  sweepEveryMs?: number;
  checkpointEveryMs?: number;
}

/**
 * The one-way flow of the server: ingest → journal → bounded queue → engine → outputs. A batch is
 * journaled before ingest answers 200, and leaves the journal only once every group it took part in
 * has closed and gone to the outputs; after a crash the rest is replayed (event ids are stable, so
 * what was already stored is recognised as a duplicate). The queue is drained a few batches per
 * event-loop turn, so HTTP keeps answering while a backlog is processed, and a timer closes groups
 * whose stream has gone quiet.
 */
export class Pipeline {
  readonly counters: PipelineCounters = {
    batchesAccepted: 0,
    recordsAccepted: 0,
    recordsWithoutText: 0,
    batchesRefused: 0,
    eventsOut: 0,
    outputErrors: 0,
    batchesReplayed: 0,
  };
  /** The engine, built by the pipeline so that its sink is the pipeline's own. */
  readonly engine: Engine;
  private readonly journal: IngestJournal | undefined;
  private readonly sweepEveryMs: number;
  private readonly checkpointEveryMs: number;
  private draining = false;
  private timers: NodeJS.Timeout[] = [];
  private idleWaiters: Array<() => void> = [];
  /** Journal seq of the newest batch that has gone through the engine. */
  private lastPushedSeq = 0;
  private prunedThroughSeq = 0;

  constructor(
    createEngine: (sink: EventSink) => Engine,
    private readonly queue: BoundedRecordQueue,
    private readonly outputs: PipelineOutputs,
    private readonly log: Logger,
    options: PipelineOptions = {},
  ) {
    this.engine = createEngine((events) => this.onEvents(events));
    this.journal = options.journal;
    this.sweepEveryMs = options.sweepEveryMs ?? 250;
    this.checkpointEveryMs = options.checkpointEveryMs ?? 1000;
  }

  /**
   * Called by the ingest route; false means "full, try again later" (503). When it returns true the
   * batch is in the journal: answering 200 is safe.
   */
  submit(records: LogRecord[]): boolean {
    if (!this.queue.fits(records.length)) {
      this.counters.batchesRefused++;
      return false;
    }
    if (this.journal && records.length > 0) {
      const seq = this.journal.appendJournal(Date.now(), records);
      for (const record of records) record.seq = seq;
    }
    this.queue.offer(records);
    this.counters.batchesAccepted++;
    this.counters.recordsAccepted += records.length;
    for (const record of records) if (record.withoutText === true) this.counters.recordsWithoutText++;
    this.scheduleDrain();
    return true;
  }

  /**
   * Feeds what the journal still holds (accepted before a crash or kill) through the engine, in
   * order, before new traffic. Returns the number of batches replayed.
   */
  replayJournal(): number {
    const journal = this.journal;
    if (!journal) return 0;
    let after = 0;
    for (;;) {
      const batches = journal.journalAfter(after, 64);
      if (batches.length === 0) break;
      for (const batch of batches) {
        for (const record of batch.records) record.seq = batch.seq;
        this.process(batch.records);
        after = batch.seq;
        this.counters.batchesReplayed++;
      }
    }
    return this.counters.batchesReplayed;
  }

  start(): void {
    const sweep = setInterval(() => this.guard(() => this.engine.sweep(Date.now())), this.sweepEveryMs);
    const checkpoint = setInterval(() => this.guard(() => this.checkpoint()), this.checkpointEveryMs);
    sweep.unref();
    checkpoint.unref();
    this.timers = [sweep, checkpoint];
  }

  /** Processes what is queued, then closes every open group (shutdown) and empties the journal. */
  stop(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.drainNow(Number.POSITIVE_INFINITY);
    this.guard(() => this.engine.flush());
    this.guard(() => this.checkpoint());
  }

  /** Resolves once everything submitted so far has gone through the engine. */
  whenIdle(): Promise<void> {
    if (this.queue.size === 0 && !this.draining) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  get queuedRecords(): number {
    return this.queue.size;
  }

  /** The engine's sink: events of closed groups. */
  readonly onEvents = (events: LeakEvent[]): void => {
    this.counters.eventsOut += events.length;
    this.guard(() => this.outputs.events(events));
  };

  /** Drops the journal batches whose every group has closed and reached the outputs. */
  checkpoint(): void {
    if (!this.journal) return;
    const oldestOpen = this.engine.oldestOpenSeq();
    const doneThrough = oldestOpen === undefined ? this.lastPushedSeq : Math.min(oldestOpen - 1, this.lastPushedSeq);
    if (doneThrough > this.prunedThroughSeq) {
      this.journal.pruneJournal(doneThrough);
      this.prunedThroughSeq = doneThrough;
    }
  }

  private scheduleDrain(): void {
    if (this.draining) return;
    this.draining = true;
    setImmediate(() => this.drainTurn());
  }

  private drainTurn(): void {
    this.drainNow(16);
    if (this.queue.size > 0) {
      setImmediate(() => this.drainTurn());
      return;
    }
    this.draining = false;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private drainNow(maxBatches: number): void {
    for (let i = 0; i < maxBatches; i++) {
      const batch = this.queue.take();
      if (!batch) return;
      this.process(batch);
    }
  }

  private process(batch: LogRecord[]): void {
    this.guard(() => {
      this.outputs.records(batch);
      this.engine.push(batch);
    });
    const seq = batch[0]?.seq;
    if (seq !== undefined && seq > this.lastPushedSeq) this.lastPushedSeq = seq;
  }

  /** A failing output (a full disk, say) is logged and counted; it must not take the process down. */
  private guard(work: () => void): void {
    try {
      work();
    } catch (error) {
      this.counters.outputErrors++;
      this.log.error({ err: error }, 'pipeline stage failed');
    }
  }
}
