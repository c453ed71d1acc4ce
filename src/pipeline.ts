import type { Logger } from 'pino';
import { LeakwatchError } from './errors.js';
import type { Engine, EventSink } from './engine/engine.js';
import type { LeakEvent } from './engine/event.js';
import type { Group } from './engine/group.js';
import { unclassifiedRecord, type GroupedRecord } from './engine/grouped-record.js';
import type { DecodedBatch, EarlyJournalWrite, ReceivedBody, SubmittedBatch } from './ingest/decode-body.js';
import { allRecords, PackedBatch, type RecordBatch } from './ingest/packed-records.js';
import type { BoundedRecordQueue } from './ingest/queue.js';
import { journalBatchOf, journalPosition, type LogRecord } from './ingest/record.js';
import { OutputDelivery, type StoreOutputs } from './output-delivery.js';
import type { IngestJournal, JournalBatch, JournalCheckpoint } from './store/store.js';

/** Builds the engine around the pipeline's sinks; `unclassified` is given only when the pipeline hands those groups on. */
export type EngineFactory = (sink: EventSink, unclassified?: (group: Group) => void) => Engine;

export interface PipelineCounters {
  batchesAccepted: number;
  recordsAccepted: number;
  /** Accepted records with none of the text fields leakwatch reads. */
  recordsWithoutText: number;
  batchesRefused: number;
  eventsOut: number;
  outputErrors: number;
  /** Writes to the store that failed (a full disk, say); what they carried is kept and retried. */
  storeWriteFailures: number;
  /** Journal batches replayed at start-up (accepted before a crash, not all classified). */
  batchesReplayed: number;
  /** Records of replayed batches that were already in stored groups, so not fed again. */
  recordsSkippedOnReplay: number;
}

export interface PipelineOptions {
  /** Where accepted batches are kept until their groups have closed; without it, a crash loses them. */
  journal?: IngestJournal;
  sweepEveryMs?: number;
  checkpointEveryMs?: number;
  /** Tells a store failure that passes (disk full, busy, I/O) from a bug or bad data. */
  isStoreUnavailable?: (error: unknown) => boolean;
  /** Reads a journaled body again on replay, as the ingest route read it. */
  decodeReceived?: (received: ReceivedBody, receivedAt: number) => Promise<DecodedBatch>;
  /** Hand on the groups no rule classified too (forwarding with records=all), in close order with the events. */
  unclassified?: boolean;
}

/** Records given to the engine at once: a few ms of grouping, classifying and storing. */
const SLICE_RECORDS = 1024;
/** How long one event-loop turn of draining may take before other work (HTTP answers) runs. */
const TURN_BUDGET_MS = 8;
/**
 * Grouped records are stored this many at a time, or once the oldest has waited EVENTS_WAIT_MS, or
 * when the pipeline goes idle. A commit costs in proportion to the pages its events dirtied, not per
 * transaction: 1.5M lines over HTTP spent the same time in transactions at 100 per write as at 250
 * (1.94 s against 1.96 s), while storing turns over 15 ms fell from ~30 to ~4 per run. At 50, the
 * storing turn (a slice of 1,024 records can close ~45 events more) no longer made the event loop's
 * p99 at full rate: 1M lines, six alternated pairs, mean p99 55.3 -> 45.3 ms, lines/s the same.
 */
const EVENTS_PER_WRITE = 50;
const EVENTS_WAIT_MS = 100;

/** Ingest is refused (503, retry) while the store cannot be written: nothing could be kept. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
}

/**
 * The one-way flow of the server: ingest → journal → bounded queue → engine → outputs.
 *
 * A batch is journaled before ingest answers 200. A checkpoint (every second) records which of
 * the journaled records are not yet in a closed, stored group and drops the batches that hold
 * none of them, in one transaction; after a crash the replay feeds exactly those records and the
 * batches that came after the checkpoint, so a trace whose head was already stored is never fed
 * again as a headless fragment. When the store cannot be written (a full disk), what failed is
 * kept in order and retried, nothing is pruned, and ingest answers 503 until writes succeed.
 *
 * The queue is drained a few batches per event-loop turn, so HTTP keeps answering while a backlog
 * is processed, and a timer releases held records and closes groups of quiet streams.
 */
export class Pipeline {
  readonly counters: PipelineCounters = {
    batchesAccepted: 0,
    recordsAccepted: 0,
    recordsWithoutText: 0,
    batchesRefused: 0,
    eventsOut: 0,
    outputErrors: 0,
    storeWriteFailures: 0,
    batchesReplayed: 0,
    recordsSkippedOnReplay: 0,
  };
  /** The engine, built by the pipeline so that its sink is the pipeline's own. */
  readonly engine: Engine;
  private readonly journal: IngestJournal | undefined;
  private readonly sweepEveryMs: number;
  private readonly checkpointEveryMs: number;
  private readonly isStoreUnavailable: (error: unknown) => boolean;
  private readonly decodeReceived: PipelineOptions['decodeReceived'];
  private draining = false;
  /** While a drain turn groups, full event buffers wait for the turn after it (drainTurn). */
  private inDrainTurn = false;
  private timers: NodeJS.Timeout[] = [];
  private idleWaiters: Array<() => void> = [];
  /** Journal seq of the newest batch that has gone through the engine, or was abandoned (JournalTicket). */
  private lastPushedSeq = 0;
  /**
   * Seqs of journaled batches not yet through the engine: in the queue, or still being decoded
   * (JournalTicket). Batches can enter the queue out of seq order (a small body decoded before a
   * large one received earlier), so a checkpoint says it has seen the batches only up to the
   * oldest of these (pushedThrough()).
   */
  private readonly unpushedSeqs = new Set<number>();
  /** lastPushedSeq at the previous checkpoint: unchanged means no batch came in between. */
  private seqAtLastCheckpoint = 0;
  private checkpointsWritten = 0;
  private readonly delivery: OutputDelivery;
  /** Grouped records of closed groups not yet handed on, in close order (see EVENTS_PER_WRITE). */
  private bufferedEvents: GroupedRecord[] = [];
  private bufferedSince = 0;
  /** The batch being pushed a slice at a time, and how far. */
  private current: { batch: RecordBatch; offset: number } | undefined;
  private sweeping = false;
  /** The last journal or checkpoint write failed; the next checkpoint tries again. */
  private journalFailing = false;
  private lastStoreError: string | undefined;
  /** After stop(): journal writes that end now leave their batches to the next start's replay. */
  private stopped = false;

  constructor(
    createEngine: EngineFactory,
    private readonly queue: BoundedRecordQueue,
    outputs: StoreOutputs,
    private readonly log: Logger,
    options: PipelineOptions = {},
  ) {
    this.engine = createEngine(
      (events) => this.onEvents(events),
      options.unclassified === true ? (group) => this.buffer([unclassifiedRecord(group)]) : undefined,
    );
    this.journal = options.journal;
    this.sweepEveryMs = options.sweepEveryMs ?? 250;
    this.checkpointEveryMs = options.checkpointEveryMs ?? 1000;
    this.isStoreUnavailable = options.isStoreUnavailable ?? (() => false);
    this.delivery = new OutputDelivery(outputs, {
      isStoreUnavailable: this.isStoreUnavailable,
      refused: (error, output) => this.storeFailed(error, output.kind === 'grouped' ? 'storing events' : 'storing metrics samples'),
      // A bug or data the store cannot take: retrying would fail the same way forever.
      dropped: (error) => {
        this.counters.outputErrors++;
        this.log.error({ err: error }, 'pipeline output failed; the output is dropped');
      },
    });
    this.decodeReceived = options.decodeReceived;
  }

  /** False while a store write is failing: /readyz says so and ingest answers 503. */
  get storeWritable(): boolean {
    return !this.delivery.waiting && !this.journalFailing;
  }

  /** Why the store is not writable (the last error), for /readyz. */
  get storeProblem(): string | undefined {
    return this.storeWritable ? undefined : this.lastStoreError;
  }

  /**
   * Called by the ingest route; false means "full, try again later" (503). When it returns or
   * resolves true the batch is in the journal: answering 200 is safe. Throws (or rejects with)
   * StoreUnavailableError (503) while the store cannot be written. A batch keeps its place in the
   * queue from the call on, in the order of the calls, while its journal write is in flight.
   */
  submit(batch: SubmittedBatch): boolean | Promise<boolean> {
    const { records } = batch;
    if (!this.storeWritable) {
      this.counters.batchesRefused++;
      throw new StoreUnavailableError(`the store cannot be written (${this.lastStoreError ?? 'see the log'}); retry shortly`);
    }
    if (!this.queue.fits(records)) {
      this.counters.batchesRefused++;
      return false;
    }
    const ticket = batch.journaled;
    if (ticket instanceof JournalTicket && records.length > 0) {
      if (ticket.failure !== undefined) return this.journalRefused(ticket.failure);
      ticket.submitted = true;
      if (ticket.seq === undefined) return this.acceptWhenWritten(records, ticket.written);
      this.markJournaled(records, ticket.seq);
    } else if (this.journal && records.length > 0) {
      let written: number | Promise<number>;
      try {
        // The body as it came is a fraction of its records as JSON (and often still compressed).
        const content = batch.received !== undefined && this.decodeReceived !== undefined ? { body: batch.received } : { records: allRecords(records) };
        written = this.journal.appendJournal(batch.receivedAt, content);
      } catch (error) {
        return this.journalRefused(error);
      }
      if (typeof written !== 'number') return this.acceptWhenWritten(records, written);
      this.markJournaled(records, written);
    }
    this.queue.offer(records);
    this.accepted(records);
    return true;
  }

  /** A batch whose journal write is in flight: its place in the queue now, taken once the write is done. */
  private acceptWhenWritten(records: RecordBatch, written: Promise<number>): Promise<boolean> {
    // Room is taken now, so that what fitted (submit checked) still fits when the write is done.
    const place = this.queue.offerHeld(records) as { release: () => void; cancel: () => void };
    return written.then(
      (seq) => {
        this.markJournaled(records, seq);
        place.release();
        this.accepted(records);
        return true;
      },
      (error: unknown) => {
        place.cancel();
        // Batches behind it may be takeable now, and whenIdle() may be waiting on it.
        if (!this.stopped) this.scheduleDrain();
        return this.journalRefused(error);
      },
    );
  }

  /**
   * Starts the journal write of a body before it is decoded; undefined when there is nothing to
   * gain or it would likely be refused anyway (then submit() journals it after decoding, as it
   * does for batches without a body). The body is written whether or not it turns out to decode:
   * one that does not is abandoned, and only a crash before the next checkpoint makes the replay
   * try it again (and refuse it again).
   */
  journalBody(received: ReceivedBody, receivedAt: number): EarlyJournalWrite | undefined {
    const journal = this.journal;
    if (journal === undefined || this.decodeReceived === undefined || !this.storeWritable || this.stopped) return undefined;
    // Past half the queue a refusal (503) is likely: the body would be written for nothing.
    if (this.queue.size * 2 > this.queue.capacity || this.queue.bytes * 2 > this.queue.capacityBytes) return undefined;
    let written: number | Promise<number>;
    try {
      written = journal.appendJournal(receivedAt, { body: received });
    } catch {
      return undefined;
    }
    return new JournalTicket(written, {
      written: (ticket, seq) => {
        if (ticket.abandoned) this.abandoned(seq);
        else this.unpushedSeqs.add(seq);
      },
      failed: (ticket, error) => {
        // A submitted batch's failure is answered by submit() (journalRefused); an abandoned one's only counts.
        if (ticket.abandoned) this.journalWriteFailed(error);
      },
      abandoned: (ticket) => {
        if (ticket.seq !== undefined) this.abandoned(ticket.seq);
        if (ticket.failure !== undefined) this.journalWriteFailed(ticket.failure);
      },
    });
  }

  /** A journaled batch that will not go through the engine: nothing of it is pending. */
  private abandoned(seq: number): void {
    this.unpushedSeqs.delete(seq);
    if (seq > this.lastPushedSeq) this.lastPushedSeq = seq;
  }

  private journalWriteFailed(error: unknown): void {
    if (this.isStoreUnavailable(error)) this.storeFailed(error, 'ingest journal');
    else this.log.error({ err: error }, 'ingest journal: a write failed');
  }

  /** Each record's batch seq and position in the journal, for checkpoints and replays; the batch is unpushed until the engine has it. */
  private markJournaled(records: RecordBatch, seq: number): void {
    // A packed batch gives each record its place as it is unpacked.
    if (records instanceof PackedBatch) records.seq = seq;
    else for (let index = 0; index < records.length; index++) {
      const record = records[index] as LogRecord;
      record.seq = seq;
      record.journalPos = journalPosition(seq, index);
    }
    this.unpushedSeqs.add(seq);
  }

  /** The newest seq through which every journaled batch has gone through the engine or was abandoned. */
  private pushedThrough(): number {
    let through = this.lastPushedSeq;
    for (const seq of this.unpushedSeqs) through = Math.min(through, seq - 1);
    return through;
  }

  private accepted(records: RecordBatch): void {
    this.counters.batchesAccepted++;
    this.counters.recordsAccepted += records.length;
    if (records instanceof PackedBatch) this.counters.recordsWithoutText += records.withoutTextCount;
    else for (const record of records) if (record.withoutText === true) this.counters.recordsWithoutText++;
    if (!this.stopped) this.scheduleDrain();
  }

  private journalRefused(error: unknown): never {
    if (!this.isStoreUnavailable(error)) throw error;
    this.storeFailed(error, 'ingest journal');
    throw new StoreUnavailableError(`the batch could not be recorded (${this.lastStoreError}); retry shortly`);
  }

  /**
   * Feeds what the journal still holds (accepted before a crash or kill) through the engine, in
   * order, before new traffic: of the batches the last checkpoint had seen, only the records that
   * were not yet in a stored group; the later batches whole. Returns the number of batches replayed.
   */
  async replayJournal(): Promise<number> {
    const journal = this.journal;
    if (!journal) return 0;
    const checkpoint = journal.journalCheckpoint();
    const pushedThrough = checkpoint?.pushedThrough ?? 0;
    const pending = new Set(checkpoint?.pending ?? []);
    const batchesPending = new Set<number>();
    for (const position of pending) batchesPending.add(journalBatchOf(position));
    let after = 0;
    for (;;) {
      // A few at a time: a body may be tens of MB once decoded.
      const batches = journal.journalAfter(after, 8);
      if (batches.length === 0) break;
      for (const batch of batches) {
        // Such a batch is done: nothing of it is fed again, whatever its body now decodes to.
        const done = batch.seq <= pushedThrough && !batchesPending.has(batch.seq);
        const records = await this.journaledRecords(batch, done);
        const fed: LogRecord[] = [];
        for (let index = 0; index < records.length; index++) {
          const record = records[index] as LogRecord;
          const position = journalPosition(batch.seq, index);
          if (batch.seq <= pushedThrough && !pending.has(position)) {
            this.counters.recordsSkippedOnReplay++;
            continue;
          }
          record.seq = batch.seq;
          record.journalPos = position;
          fed.push(record);
        }
        if (fed.length > 0) {
          this.delivery.deliver({ kind: 'records', records: fed });
          this.guard(() => this.engine.push(fed));
          this.counters.batchesReplayed++;
        }
        if (batch.seq > this.lastPushedSeq) this.lastPushedSeq = batch.seq;
        after = batch.seq;
      }
    }
    this.flushEvents();
    return this.counters.batchesReplayed;
  }

  /** A journaled batch's records: kept as they were, or its body decoded again as it was when it came. */
  private async journaledRecords(batch: JournalBatch, done: boolean): Promise<LogRecord[]> {
    if ('records' in batch.content) return batch.content.records;
    if (this.decodeReceived === undefined) throw new Error(`journal batch ${batch.seq} holds a body and this pipeline has no decoder for it`);
    try {
      return (await this.decodeReceived(batch.content.body, batch.receivedAt)).records;
    } catch (error) {
      // Anything but a verdict on the body (a failed decoding thread, say) stops the replay: the
      // batch stays in the journal for the next start.
      if (!(error instanceof LeakwatchError) || error.statusCode >= 500) throw error;
      if (done) return [];
      // A body is journaled while it is decoded (journalBody): one refused when it came, just
      // before the stop, is here too. Otherwise only lowered limits refuse it now, and its records are lost.
      this.log.warn({ err: error, seq: batch.seq }, 'journal replay: a journaled body does not decode (refused when it came, just before the stop, or the --max-* limits were lowered since); its records are skipped');
      return [];
    }
  }

  start(): void {
    const sweep = setInterval(() => this.sweepTurn(), this.sweepEveryMs);
    const checkpoint = setInterval(() => this.checkpointTurns(), this.checkpointEveryMs);
    sweep.unref();
    checkpoint.unref();
    this.timers = [sweep, checkpoint];
  }

  /** Processes what is queued, then closes every open group (shutdown) and checkpoints the journal. */
  stop(): void {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.drainNow();
    this.guard(() => this.engine.flush());
    this.guard(() => this.checkpoint());
  }

  /** Closes every open group now, as at the end of input, and hands their events on. */
  closeOpenGroups(): void {
    this.guard(() => this.engine.flush());
    this.flushEvents();
  }

  /** Groups the records held past `now` and closes expired groups, as the timer would then. */
  sweepNow(now: number): void {
    while (this.engine.sweep(now, SLICE_RECORDS));
    this.flushEvents();
  }

  /** Resolves once everything submitted so far has gone through the engine. */
  whenIdle(): Promise<void> {
    if (this.queue.size === 0 && !this.draining && this.current === undefined) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  get queuedRecords(): number {
    return this.queue.size;
  }

  /** The engine's sink: events of closed groups, handed on a few hundred at a time. */
  readonly onEvents = (events: LeakEvent[]): void => {
    this.counters.eventsOut += events.length;
    this.buffer(events);
  };

  /** The engine calls its sinks in close order, so one buffer keeps events and unclassified groups in that order. */
  private buffer(records: readonly GroupedRecord[]): void {
    if (this.bufferedEvents.length === 0) this.bufferedSince = performance.now();
    for (const record of records) this.bufferedEvents.push(record);
    if (this.bufferedEvents.length >= EVENTS_PER_WRITE && !this.inDrainTurn) this.flushEvents();
  }

  /** Whether the oldest buffered event has waited EVENTS_WAIT_MS. */
  private eventsDue(): boolean {
    return this.bufferedEvents.length > 0 && performance.now() - this.bufferedSince >= EVENTS_WAIT_MS;
  }

  /** Hands the buffered events on; when `onlyIfDue`, only once the oldest has waited long enough. */
  private flushEvents(onlyIfDue = false): void {
    if (this.bufferedEvents.length === 0) return;
    if (onlyIfDue && !this.eventsDue()) return;
    const grouped = this.bufferedEvents;
    this.bufferedEvents = [];
    this.delivery.deliver({ kind: 'grouped', grouped });
  }

  /**
   * The timer's checkpoint in up to three event-loop turns: the buffered events are stored in one,
   * what is still pending is gathered in the next (with what a turn in between closed), and the
   * checkpoint is written in a third. Done in one go they held the loop 40-100 ms once a second at
   * full rate, which alone made the event-loop delay's p99.
   */
  private checkpointTurns(): void {
    const gather = (): void => {
      if (this.stopped) return;
      const plan = this.guard(() => this.planCheckpoint());
      if (plan === undefined) return;
      const written = this.checkpointsWritten;
      setImmediate(() => {
        // A checkpoint written meanwhile (stop, a test) is newer than this plan: it must stay.
        if (this.stopped || written !== this.checkpointsWritten) return;
        this.guard(() => this.writeCheckpoint(plan));
      });
    };
    if (this.bufferedEvents.length === 0) {
      gather();
      return;
    }
    this.flushEvents();
    setImmediate(gather);
  }

  /**
   * Retries what the store refused, then records which journaled records are not done yet and
   * drops the batches that hold none of them. Nothing is dropped while anything is undelivered.
   */
  checkpoint(): void {
    const plan = this.planCheckpoint();
    if (plan !== undefined) this.writeCheckpoint(plan);
  }

  /**
   * What a checkpoint now would record; undefined while anything is undelivered. It stays true
   * when written later: records only ever become done, so a later write records some as pending
   * that are done by then (replayed and found duplicate after a crash), never the other way round.
   */
  private planCheckpoint(): CheckpointPlan | undefined {
    // The engine counts the records of buffered events as done: they must be stored first.
    this.flushEvents();
    if (!this.retryUndelivered() || !this.journal) return undefined;
    const pending = this.engine.pendingJournalPositions();
    let oldestPending = Number.POSITIVE_INFINITY;
    // Indexed: once a second is too seldom to be optimised, and a for-of would make an object per position.
    for (let at = 0; at < pending.length; at++) oldestPending = Math.min(oldestPending, journalBatchOf(pending[at] as number));
    const pushedThrough = this.pushedThrough();
    return { pruneThrough: Math.min(oldestPending - 1, pushedThrough), checkpoint: { pushedThrough, pending } };
  }

  private writeCheckpoint(plan: CheckpointPlan): void {
    if (!this.journal) return;
    this.checkpointsWritten++;
    try {
      this.journal.checkpointJournal(plan.pruneThrough, plan.checkpoint);
      this.journalFailing = false;
      // Only once a flood has passed: while batches keep coming, the pages the prune freed are
      // written again within the second, and giving them back to the file system each time would
      // move the whole journal through the disk twice.
      if (plan.checkpoint.pushedThrough === this.seqAtLastCheckpoint) this.journal.reclaimSpace();
      this.seqAtLastCheckpoint = plan.checkpoint.pushedThrough;
    } catch (error) {
      if (!this.isStoreUnavailable(error)) throw error;
      this.storeFailed(error, 'journal checkpoint');
    }
  }

  private scheduleDrain(): void {
    if (this.draining) return;
    this.draining = true;
    setImmediate(() => this.drainTurn());
  }

  /**
   * One event-loop turn of work: slices of queued batches until the turn's time is used, so that a
   * batch of 250,000 records never holds the loop (and every other request) for long.
   */
  private drainTurn(): void {
    const started = performance.now();
    this.inDrainTurn = true;
    try {
      do {
        if (!this.processSlice()) break;
      } while (performance.now() - started < TURN_BUDGET_MS && this.bufferedEvents.length < EVENTS_PER_WRITE);
    } finally {
      this.inDrainTurn = false;
    }
    if (this.current !== undefined || this.queue.takeable) {
      // Storing the events takes a turn of its own: timers and answers run between it and the
      // grouping, instead of after both (the two together held the loop up to ~40 ms).
      setImmediate(() => {
        if (this.bufferedEvents.length >= EVENTS_PER_WRITE || this.eventsDue()) {
          this.flushEvents();
          setImmediate(() => this.drainTurn());
        } else {
          this.drainTurn();
        }
      });
      return;
    }
    this.flushEvents();
    this.draining = false;
    // A batch whose journal write is in flight is still to come: its write's end drains again.
    if (this.queue.size > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Everything queued, in one go (shutdown). */
  private drainNow(): void {
    while (this.processSlice());
  }

  /** Pushes the next slice of the current batch (taking the next batch when done); false when there is none. */
  private processSlice(): boolean {
    if (this.current === undefined) {
      const batch = this.queue.take();
      if (!batch) return false;
      this.current = { batch, offset: 0 };
    }
    const { batch, offset } = this.current;
    const end = Math.min(batch.length, offset + SLICE_RECORDS);
    // A packed batch's records are made here, a slice at a time, just before the engine takes them.
    const slice = batch instanceof PackedBatch ? batch.slice(offset, end) : offset === 0 && end === batch.length ? batch : batch.slice(offset, end);
    this.delivery.deliver({ kind: 'records', records: slice });
    this.guard(() => this.engine.push(slice));
    if (end < batch.length) {
      this.current.offset = end;
      return true;
    }
    this.current = undefined;
    // Only now has every record of the batch been given to the engine (what a checkpoint may say).
    const seq = batch instanceof PackedBatch ? batch.seq : batch[0]?.seq;
    if (batch instanceof PackedBatch) batch.release();
    if (seq !== undefined) {
      this.unpushedSeqs.delete(seq);
      if (seq > this.lastPushedSeq) this.lastPushedSeq = seq;
    }
    return true;
  }

  /** Groups the records whose reorder window has passed, a slice per event-loop turn. */
  private sweepTurn(): void {
    if (this.sweeping) return;
    this.sweeping = true;
    const turn = (): void => {
      let more = false;
      this.guard(() => {
        more = this.engine.sweep(Date.now(), SLICE_RECORDS);
      });
      this.flushEvents(more);
      if (more) setImmediate(turn);
      else this.sweeping = false;
    };
    turn();
  }

  /** True when nothing is left undelivered. */
  private retryUndelivered(): boolean {
    if (!this.delivery.retry()) return false;
    if (this.lastStoreError !== undefined && this.storeWritable) {
      this.log.info('the store takes writes again');
      this.lastStoreError = undefined;
    }
    return true;
  }

  private storeFailed(error: unknown, what: string): void {
    this.counters.storeWriteFailures++;
    const message = `${what}: ${error instanceof Error ? error.message : String(error)}`;
    if (message !== this.lastStoreError) this.log.error({ err: error }, `store write failed (${what}); kept in memory and retried, ingest answers 503 meanwhile`);
    this.lastStoreError = message;
    if (what === 'ingest journal' || what === 'journal checkpoint') this.journalFailing = true;
  }

  /** A failing stage must not take the process down. */
  private guard<T>(work: () => T): T | undefined {
    try {
      return work();
    } catch (error) {
      this.counters.outputErrors++;
      this.log.error({ err: error }, 'pipeline stage failed');
      return undefined;
    }
  }
}

/** A journal checkpoint as gathered, to be written (see Pipeline.planCheckpoint). */
interface CheckpointPlan {
  checkpoint: JournalCheckpoint;
  pruneThrough: number;
}

interface JournalTicketEvents {
  written: (ticket: JournalTicket, seq: number) => void;
  failed: (ticket: JournalTicket, error: unknown) => void;
  abandoned: (ticket: JournalTicket) => void;
}

/** Pipeline.journalBody()'s write: its seq once written, and whether it was submitted or abandoned. */
class JournalTicket implements EarlyJournalWrite {
  seq: number | undefined;
  failure: unknown;
  submitted = false;
  abandoned = false;
  /** Resolves with the seq once written; rejects if the write failed. */
  readonly written: Promise<number>;
  readonly ended: Promise<void>;

  constructor(
    written: number | Promise<number>,
    private readonly events: JournalTicketEvents,
  ) {
    if (typeof written === 'number') {
      this.seq = written;
      events.written(this, written);
      this.written = Promise.resolve(written);
    } else {
      this.written = written.then(
        (seq) => {
          this.seq = seq;
          events.written(this, seq);
          return seq;
        },
        (error: unknown) => {
          this.failure = error ?? new Error('journal write failed');
          events.failed(this, this.failure);
          throw this.failure;
        },
      );
    }
    // Also what keeps a failed write of an abandoned body from being an unhandled rejection.
    this.ended = this.written.then(
      () => undefined,
      () => undefined,
    );
  }

  abandon(): void {
    if (this.submitted || this.abandoned) return;
    this.abandoned = true;
    this.events.abandoned(this);
  }
}
