import type { Logger } from 'pino';
import type { Engine, EventSink } from './engine/engine.js';
import type { LeakEvent } from './engine/event.js';
import type { BoundedRecordQueue } from './ingest/queue.js';
import type { LogRecord } from './ingest/record.js';

/** Where the pipeline hands its output: records (metrics snapshots) and classified events. */
export interface PipelineOutputs {
  records(records: readonly LogRecord[]): void;
  events(events: LeakEvent[]): void;
}

export interface PipelineCounters {
  batchesAccepted: number;
  recordsAccepted: number;
  batchesRefused: number;
  eventsOut: number;
  outputErrors: number;
}

/**
 * The one-way flow of the server: ingest → bounded queue → engine → outputs. The queue is drained
 * a few batches per event-loop turn, so HTTP keeps answering while a large backlog is processed,
 * and a timer closes groups whose stream has gone quiet.
 */
export class Pipeline {
  readonly counters: PipelineCounters = { batchesAccepted: 0, recordsAccepted: 0, batchesRefused: 0, eventsOut: 0, outputErrors: 0 };
  private draining = false;
  private sweepTimer: NodeJS.Timeout | undefined;
  private idleWaiters: Array<() => void> = [];

  /** The engine, built by the pipeline so that its sink is the pipeline's own. */
  readonly engine: Engine;

  constructor(
    createEngine: (sink: EventSink) => Engine,
    private readonly queue: BoundedRecordQueue,
    private readonly outputs: PipelineOutputs,
    private readonly log: Logger,
    private readonly sweepEveryMs = 250,
  ) {
    this.engine = createEngine((events) => this.onEvents(events));
  }

  /** Called by the ingest route; false means "full, try again later" (503). */
  submit(records: LogRecord[]): boolean {
    if (!this.queue.offer(records)) {
      this.counters.batchesRefused++;
      return false;
    }
    this.counters.batchesAccepted++;
    this.counters.recordsAccepted += records.length;
    this.scheduleDrain();
    return true;
  }

  start(): void {
    this.sweepTimer = setInterval(() => this.guard(() => this.engine.sweep(Date.now())), this.sweepEveryMs);
    this.sweepTimer.unref();
  }

  /** Processes what is queued, then closes every open group (shutdown). */
  stop(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.drainNow(Number.POSITIVE_INFINITY);
    this.guard(() => this.engine.flush());
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
      this.guard(() => {
        this.outputs.records(batch);
        this.engine.push(batch);
      });
    }
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
