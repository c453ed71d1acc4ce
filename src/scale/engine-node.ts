/**
 * An engine node: consumes its partitions of the record stream with durable pull consumers,
 * groups and classifies, stores into PostgreSQL, and acknowledges a message only once every group
 * its records took part in has closed and been stored.
 *
 * This is the single process's journal rule with JetStream as the journal. A message's records
 * get journal positions (stream sequence, index in the message); every second a checkpoint asks
 * the engine which positions are still pending (held for reordering or in an open group), records
 * per partition the newest message wholly given to the engine and those pending positions, in
 * PostgreSQL, and then acknowledges everything before the oldest message that still
 * holds a pending record. A node that takes a partition over (a restart after kill -9, a moved
 * assignment) starts its consumer at the acknowledged floor and, of the messages the checkpoint
 * had seen, feeds only the pending records: a trace whose head was stored is never fed again as
 * a headless fragment, and what is fed again gives the same events, absorbed by their ids.
 *
 * One node per partition at a time: a node holds a PostgreSQL advisory lock per partition it
 * consumes (a killed node's locks go with its connection), and waits for it before it starts.
 */
import { AckPolicy, DeliverPolicy, type ConsumerMessages, type JsMsg, type NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { Engine } from '../engine/engine.js';
import type { GroupedRecord } from '../engine/grouped-record.js';
import { journalBatchOf, journalPosition, type LogRecord } from '../ingest/record.js';
import type { PostgresStore } from '../store/postgres-store.js';
import { OutputDelivery, type StoreOutputs } from '../output-delivery.js';
import { consumerOf, isNotFound, RECORD_STREAM, subjectOf } from './stream.js';

/** Records given to the engine at once. */
const SLICE_RECORDS = 1024;
/** Messages a consumer pulls ahead of the engine. */
const PULL_MESSAGES = 256;
/**
 * Unacknowledged messages are not sent again by the server before this: the node acknowledges
 * them itself when their groups close, however long that takes. A node that dies leaves them to
 * the next holder of the partition, which starts a fresh consumer at the floor.
 */
const ACK_WAIT_NS = 24 * 3600 * 1e9;
const EVENTS_PER_WRITE = 2000;
const EVENTS_WAIT_MS = 100;

export interface EngineNodeOptions {
  nc: NatsConnection;
  store: PostgresStore;
  /** Built around the node's sink, as the single process builds it around the pipeline's. */
  engine: (sink: (records: GroupedRecord[]) => void) => Engine;
  outputs: StoreOutputs;
  partitions: readonly number[];
  /** Names the node in checkpoints and logs. */
  node: string;
  log: Logger;
  isStoreUnavailable: (error: unknown) => boolean;
  checkpointEveryMs?: number;
  sweepEveryMs?: number;
}


interface PartitionState {
  partition: number;
  /** From the checkpoint the node started with: messages up to here feed only `replayPending`. */
  replayThrough: number;
  replayPending: Set<number>;
  /** Newest message whose records have all been given to the engine. */
  pushedThrough: number;
  /** Delivered and not yet acknowledged, oldest first. */
  unacked: JsMsg[];
  /** Messages left for this consumer at the last delivery (its lag). */
  lag: number;
  /** The consumer's delivery count of the last message taken: a gap means messages sent and never received. */
  lastDelivery: number;
  messages: ConsumerMessages | undefined;
  running: Promise<void> | undefined;
}

export interface EngineNodeCounters {
  messages: number;
  records: number;
  /** Records of messages seen before a restart that were already in stored groups (not fed again). */
  replaySkipped: number;
  redeliveries: number;
  acked: number;
  storeWriteFailures: number;
  outputErrors: number;
}

export class EngineNode {
  readonly counters: EngineNodeCounters = { messages: 0, records: 0, replaySkipped: 0, redeliveries: 0, acked: 0, storeWriteFailures: 0, outputErrors: 0 };
  readonly engine: Engine;
  private readonly states = new Map<number, PartitionState>();
  /** Stream sequence → partition, for the messages not yet acknowledged. */
  private readonly partitionOfSeq = new Map<number, number>();
  private buffered: GroupedRecord[] = [];
  private bufferedSince = 0;
  private readonly delivery: OutputDelivery;
  private lastStoreError: string | undefined;
  private timers: NodeJS.Timeout[] = [];
  private stopping = false;
  private started = false;
  private writableWaiters: Array<() => void> = [];
  private readonly log: Logger;

  constructor(private readonly options: EngineNodeOptions) {
    this.log = options.log;
    this.engine = options.engine((records) => this.buffer(records));
    this.delivery = new OutputDelivery(options.outputs, {
      isStoreUnavailable: options.isStoreUnavailable,
      refused: (error) => {
        this.counters.storeWriteFailures++;
        const message = error instanceof Error ? error.message : String(error);
        if (message !== this.lastStoreError) this.log.error({ err: error }, 'engine: storing events failed; kept in memory and retried, consumption paused meanwhile');
        this.lastStoreError = message;
      },
      dropped: (error) => {
        this.counters.outputErrors++;
        this.log.error({ err: error }, 'engine: storing events failed for good; the events are dropped');
      },
    });
  }

  /** All partitions held and consuming. */
  get running(): boolean {
    return this.started && !this.stopping;
  }

  get storeWritable(): boolean {
    return !this.delivery.waiting;
  }

  get storeProblem(): string | undefined {
    return this.storeWritable ? undefined : this.lastStoreError;
  }

  /** Per partition: messages waiting for this node, and those delivered but not yet acknowledged. */
  lag(): Array<{ partition: number; pending: number; unacked: number }> {
    return [...this.states.values()].map((state) => ({ partition: state.partition, pending: state.lag, unacked: state.unacked.length }));
  }

  /**
   * After a reconnection to NATS every partition starts over on a fresh consumer: messages the
   * server had sent when the connection broke come again, before anything newer, so nothing is
   * missing and nothing is out of order.
   */
  private watchConnection(): void {
    void (async () => {
      for await (const status of this.options.nc.status()) {
        if (status.type !== 'reconnect' || this.stopping) continue;
        this.log.info('engine: reconnected to NATS; every partition starts over from its oldest unacknowledged message');
        for (const state of this.states.values()) state.messages?.stop();
      }
    })();
  }

  /** Takes each partition's lock (waiting for a node that still holds it), then starts consuming. */
  async start(): Promise<void> {
    const { store, partitions, log } = this.options;
    const waiting = new Set(partitions);
    for (;;) {
      for (const partition of [...waiting]) {
        try {
          if (store.tryLock(lockOf(partition)).held) waiting.delete(partition);
        } catch (error) {
          log.warn({ err: error }, 'engine: PostgreSQL does not answer yet; waiting to take the partitions');
        }
      }
      if (waiting.size === 0 || this.stopping) break;
      log.info({ partitions: [...waiting] }, 'engine: another node still holds these partitions; waiting for it');
      await sleep(1000);
    }
    if (this.stopping) return;
    this.lockSession = store.connectionSession;
    this.watchConnection();
    for (const partition of partitions) await this.startPartition(partition);
    const sweep = setInterval(() => this.sweep(), this.options.sweepEveryMs ?? 250);
    const checkpoint = setInterval(() => this.guard(() => this.checkpoint()), this.options.checkpointEveryMs ?? 1000);
    sweep.unref();
    checkpoint.unref();
    this.timers = [sweep, checkpoint];
    this.started = true;
    log.info({ partitions }, 'engine: consuming partitions');
  }

  private lockSession = 0;

  /** The connection that holds the partition locks is gone (a PostgreSQL restart): another node may take them now. */
  locksLost(): boolean {
    return this.started && this.options.store.connectionSession !== this.lockSession;
  }

  /** Takes the partition locks again on the new connection; false when another node got one first. */
  relock(): boolean {
    const { store, partitions } = this.options;
    for (const partition of partitions) if (!store.tryLock(lockOf(partition)).held) return false;
    this.lockSession = store.connectionSession;
    return true;
  }

  /**
   * A fresh durable consumer for the partition, delivering from the oldest message not yet
   * acknowledged; returns that floor. Messages delivered to an earlier consumer and never
   * received (a node that died, a connection cut in a NATS restart) would otherwise wait out
   * their ack wait.
   */
  private async resetConsumer(partition: number): Promise<number> {
    const jsm = await this.options.nc.jetstreamManager();
    const name = consumerOf(partition);
    let floor = 0;
    try {
      const info = await jsm.consumers.info(RECORD_STREAM, name);
      floor = info.ack_floor.stream_seq;
      await jsm.consumers.delete(RECORD_STREAM, name);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    await jsm.consumers.add(RECORD_STREAM, {
      durable_name: name,
      filter_subject: subjectOf(partition),
      ack_policy: AckPolicy.Explicit,
      ack_wait: ACK_WAIT_NS,
      max_ack_pending: -1,
      // The work queue holds only what no consumer acknowledged: all of it is what comes after the floor.
      deliver_policy: DeliverPolicy.All,
    });
    return floor;
  }

  private async startPartition(partition: number): Promise<void> {
    const { store, log } = this.options;
    const name = consumerOf(partition);
    const floor = await this.resetConsumer(partition);
    const checkpoint = store.partitionCheckpoint(partition);
    const state: PartitionState = {
      partition,
      replayThrough: checkpoint?.pushedThrough ?? 0,
      replayPending: new Set(checkpoint?.pending ?? []),
      // Delivery starts after the floor; anything at or below what this process pushed is a repeat.
      pushedThrough: floor,
      unacked: [],
      lag: 0,
      lastDelivery: 0,
      messages: undefined,
      running: undefined,
    };
    this.states.set(partition, state);
    state.running = this.consume(state, name);
    log.info({ partition, floor, checkpoint: checkpoint?.pushedThrough ?? null, pending: checkpoint?.pending.length ?? 0 }, 'engine: partition taken');
  }

  /** Pulls the partition's messages until the node stops, starting over when the iteration ends (a NATS restart the client could not ride out). */
  private async consume(state: PartitionState, name: string): Promise<void> {
    const { nc, log } = this.options;
    let first = true;
    while (!this.stopping) {
      try {
        // Starting over: whatever the old consumer sent and this node never received comes again, in order.
        if (!first) await this.resetConsumer(state.partition);
        first = false;
        state.lastDelivery = 0;
        const consumer = await nc.jetstream().consumers.get(RECORD_STREAM, name);
        const messages = await consumer.consume({ max_messages: PULL_MESSAGES });
        state.messages = messages;
        for await (const message of messages) {
          if (!this.storeWritable) await this.whenWritable();
          if (this.stopping) break;
          this.guard(() => this.take(state, message));
        }
      } catch (error) {
        if (this.stopping) break;
        log.warn({ err: error, partition: state.partition }, 'engine: consuming the partition failed; starting again');
      }
      if (!this.stopping) await sleep(1000);
    }
  }

  /** One message: its records to the engine, those already in stored groups (per the checkpoint) left out. */
  private take(state: PartitionState, message: JsMsg): void {
    const seq = message.seq;
    if (message.info.deliverySequence !== state.lastDelivery + 1) {
      // Sent and not received (a connection cut): start over rather than take anything past the hole.
      this.log.warn({ partition: state.partition, expected: state.lastDelivery + 1, got: message.info.deliverySequence }, 'engine: messages of the partition went missing in delivery; starting over from the oldest unacknowledged one');
      state.messages?.stop();
      return;
    }
    state.lastDelivery = message.info.deliverySequence;
    this.log.debug({ partition: state.partition, seq, delivery: message.info.deliverySequence, pushedThrough: state.pushedThrough }, 'engine: message');
    state.lag = message.info.pending;
    if (seq <= state.pushedThrough) {
      // Delivered again by a fresh consumer: its records are in the engine already. Still held:
      // acknowledged through the new delivery later; already acknowledged (the acknowledgement
      // was lost with the connection): acknowledged again.
      this.counters.redeliveries++;
      const held = state.unacked.findIndex((candidate) => candidate.seq === seq);
      if (held >= 0) state.unacked[held] = message;
      else message.ack();
      return;
    }
    this.counters.messages++;
    const records = JSON.parse(new TextDecoder().decode(message.data)) as LogRecord[];
    const fed: LogRecord[] = [];
    const replaying = seq <= state.replayThrough;
    for (let index = 0; index < records.length; index++) {
      const record = records[index] as LogRecord;
      const position = journalPosition(seq, index);
      if (replaying && !state.replayPending.has(position)) {
        this.counters.replaySkipped++;
        continue;
      }
      record.seq = seq;
      record.journalPos = position;
      fed.push(record);
    }
    state.unacked.push(message);
    this.partitionOfSeq.set(seq, state.partition);
    if (fed.length > 0) {
      this.counters.records += fed.length;
      this.delivery.deliver({ kind: 'records', records: fed });
      for (let start = 0; start < fed.length; start += SLICE_RECORDS) {
        const slice = start === 0 && fed.length <= SLICE_RECORDS ? fed : fed.slice(start, start + SLICE_RECORDS);
        this.engine.push(slice);
      }
    }
    state.pushedThrough = Math.max(state.pushedThrough, seq);
    this.flushEvents(true);
  }

  private buffer(records: readonly GroupedRecord[]): void {
    if (this.buffered.length === 0) this.bufferedSince = performance.now();
    for (const record of records) this.buffered.push(record);
    if (this.buffered.length >= EVENTS_PER_WRITE) this.flushEvents();
  }

  private flushEvents(onlyIfDue = false): void {
    if (this.buffered.length === 0) return;
    if (onlyIfDue && performance.now() - this.bufferedSince < EVENTS_WAIT_MS) return;
    const grouped = this.buffered;
    this.buffered = [];
    this.delivery.deliver({ kind: 'grouped', grouped });
  }

  private retryUndelivered(): boolean {
    if (!this.delivery.retry()) return false;
    if (this.lastStoreError !== undefined) {
      this.log.info('engine: the store takes writes again');
      this.lastStoreError = undefined;
    }
    const waiters = this.writableWaiters;
    this.writableWaiters = [];
    for (const resolve of waiters) resolve();
    return true;
  }

  private whenWritable(): Promise<void> {
    return new Promise((resolve) => this.writableWaiters.push(resolve));
  }

  private sweep(): void {
    this.guard(() => {
      while (this.engine.sweep(Date.now(), SLICE_RECORDS));
    });
    this.flushEvents(true);
  }

  /**
   * Stores what is buffered, then records per partition where it stands and acknowledges every
   * message before the oldest one that still holds a record of an open group. Nothing is
   * acknowledged while the store refuses writes.
   */
  checkpoint(): void {
    this.flushEvents();
    if (!this.retryUndelivered()) return;
    if (this.locksLost()) return;
    const pendingByPartition = new Map<number, number[]>();
    for (const position of this.engine.pendingJournalPositions()) {
      const partition = this.partitionOfSeq.get(journalBatchOf(position));
      if (partition === undefined) continue;
      let list = pendingByPartition.get(partition);
      if (list === undefined) pendingByPartition.set(partition, (list = []));
      list.push(position);
    }
    const now = Date.now();
    const acks: Array<{ state: PartitionState; through: number }> = [];
    try {
      this.options.store.transaction(() => {
        for (const state of this.states.values()) {
          const pending = pendingByPartition.get(state.partition) ?? [];
          let oldest = Number.POSITIVE_INFINITY;
          for (const position of pending) oldest = Math.min(oldest, journalBatchOf(position));
          const through = Math.min(oldest - 1, state.pushedThrough);
          // Unchanged since the last checkpoint: nothing to record or acknowledge.
          if (pending.length === 0 && state.unacked.length === 0) continue;
          this.options.store.savePartitionCheckpoint({ partition: state.partition, pushedThrough: state.pushedThrough, pending }, this.options.node, now);
          acks.push({ state, through });
        }
      });
    } catch (error) {
      if (!this.options.isStoreUnavailable(error)) throw error;
      this.counters.storeWriteFailures++;
      return;
    }
    for (const { state, through } of acks) {
      // Oldest first, each one (a work-queue stream takes explicit acknowledgements only): the floor moves up with them.
      while (state.unacked.length > 0 && (state.unacked[0] as JsMsg).seq <= through) {
        const message = state.unacked.shift() as JsMsg;
        this.partitionOfSeq.delete(message.seq);
        message.ack();
        this.counters.acked++;
      }
    }
  }

  /** Stops consuming, closes every open group (as a single process does on SIGTERM), stores and acknowledges. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    for (const resolve of this.writableWaiters) resolve();
    this.writableWaiters = [];
    for (const state of this.states.values()) await state.messages?.close().catch(() => undefined);
    await Promise.all([...this.states.values()].map((state) => state.running?.catch(() => undefined)));
    if (!this.started) return;
    this.guard(() => this.engine.flush());
    this.guard(() => this.checkpoint());
    await this.options.nc.flush().catch(() => undefined);
  }

  private guard(work: () => void): void {
    try {
      work();
    } catch (error) {
      this.counters.outputErrors++;
      this.log.error({ err: error }, 'engine: a stage failed');
    }
  }
}

function lockOf(partition: number): string {
  return `leakwatch-partition-${partition}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
