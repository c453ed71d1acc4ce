/**
 * One forwarder for the fleet. Every engine node queues its new events in the shared outbox (in
 * the transaction that stores them); one node at a time sends it: the one holding a PostgreSQL
 * advisory lock, which goes with that node's connection when it dies, so another takes over
 * within a few seconds. Two nodes never send the same outbox rows at once.
 */
import type { GroupedRecord } from '../engine/grouped-record.js';
import { Forwarder, type ForwarderOptions, type ForwardBacklog, type TargetStatus } from '../forward/forwarder.js';
import type { ForwardTarget } from '../forward/target.js';
import type { PostgresStore } from '../store/postgres-store.js';

const LEADER_LOCK = 'leakwatch-forwarder';

export class ForwardLeadership {
  /** Queues into the shared outbox on every node; never sends. */
  readonly enqueuer: Forwarder;
  private sender: Forwarder | undefined;
  private senderSession = 0;

  constructor(
    private readonly forwardTargets: readonly ForwardTarget[],
    private readonly store: PostgresStore,
    private readonly options: ForwarderOptions,
  ) {
    this.enqueuer = new Forwarder(forwardTargets, store, options);
  }

  get targets(): number {
    return this.forwardTargets.length;
  }

  get leading(): boolean {
    return this.sender !== undefined;
  }

  get wantsUnclassified(): boolean {
    return this.enqueuer.wantsUnclassified;
  }

  enqueue(records: readonly GroupedRecord[]): void {
    this.enqueuer.enqueue(records);
  }

  backlog(): ForwardBacklog | undefined {
    return this.enqueuer.backlog();
  }

  status(): TargetStatus[] {
    return (this.sender ?? this.enqueuer).status();
  }

  /** Takes the lead when nobody holds it; gives it up when the connection that held the lock is gone. */
  tick(): void {
    if (this.forwardTargets.length === 0) return;
    try {
      if (this.sender !== undefined) {
        if (this.store.ping() && this.store.connectionSession === this.senderSession) return;
        const lost = this.sender;
        this.sender = undefined;
        this.options.log.warn('forward: the PostgreSQL connection that held the forwarding lock is gone; this node stops sending');
        void lost.stop(0);
        return;
      }
      const { held, session } = this.store.tryLock(LEADER_LOCK);
      if (!held) return;
      this.senderSession = session;
      this.sender = new Forwarder(this.forwardTargets, this.store, this.options);
      this.options.log.info('forward: this node sends the fleet\'s forwarding outbox');
      this.sender.start();
    } catch (error) {
      this.options.log.warn({ err: error }, 'forward: cannot reach PostgreSQL to take or keep the forwarding lead; trying again');
    }
  }

  async stop(flushMs: number): Promise<void> {
    await this.sender?.stop(flushMs);
    this.sender = undefined;
  }
}
