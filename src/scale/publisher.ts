/**
 * Ingest nodes: a batch's records go to their partitions' subjects, split into messages under
 * the server's payload limit, and ingest answers 200 only once JetStream has acknowledged every
 * one of them (the role the ingest journal plays in a single process). Within a partition the
 * messages keep the batch's order; batches race as they do in a single process, where the
 * engine's reorder window puts each stream back in source order.
 */
import type { NatsConnection, JetStreamClient } from 'nats';
import type { LogRecord } from '../ingest/record.js';
import { partitionOf, subjectOf } from './stream.js';

/** Left of the server's max_payload for the message's headers and framing. */
const PAYLOAD_MARGIN = 4096;
/** Longest a publish waits for JetStream's acknowledgement before the batch is answered 503. */
const PUBLISH_TIMEOUT_MS = 3000;

/** JetStream did not take a batch (down, slow, out of space): the shipper retries (503). */
export class PublishFailedError extends Error {
  override readonly name = 'PublishFailedError';
  /** errors.ts counts this code among the storage failures that pass. */
  readonly code = 'LW_STORE_UNAVAILABLE';
}

export interface PublisherCounters {
  messages: number;
  bytes: number;
  failures: number;
}

export class RecordPublisher {
  readonly counters: PublisherCounters = { messages: 0, bytes: 0, failures: 0 };
  private readonly js: JetStreamClient;
  private readonly encoder = new TextEncoder();

  constructor(
    private readonly nc: NatsConnection,
    private readonly partitions: number,
  ) {
    this.js = nc.jetstream();
  }

  /** Resolves once JetStream holds every record; throws PublishFailedError otherwise. */
  async publish(records: readonly LogRecord[]): Promise<void> {
    const byPartition = new Map<number, LogRecord[]>();
    for (const record of records) {
      const partition = partitionOf(record.stream, this.partitions);
      let list = byPartition.get(partition);
      if (list === undefined) byPartition.set(partition, (list = []));
      list.push(record);
    }
    const maxBytes = Math.max(64 * 1024, (this.nc.info?.max_payload ?? 1024 * 1024) - PAYLOAD_MARGIN);
    const acks: Array<Promise<unknown>> = [];
    // Published one after another on one connection: the server stores them in this order.
    for (const [partition, list] of byPartition) {
      for (const payload of this.messages(list, maxBytes)) {
        this.counters.messages++;
        this.counters.bytes += payload.length;
        acks.push(this.js.publish(subjectOf(partition), payload, { timeout: PUBLISH_TIMEOUT_MS }));
      }
    }
    const outcomes = await Promise.allSettled(acks);
    const failed = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    if (failed !== undefined) {
      this.counters.failures++;
      const reason = failed.reason instanceof Error ? failed.reason.message : String(failed.reason);
      // Records already taken in other messages come again with the retry: their events have stable ids.
      throw new PublishFailedError(`NATS JetStream did not take the batch (${reason}); retry shortly`);
    }
  }

  /** The records as JSON arrays of at most `maxBytes` (one larger record goes alone). */
  private *messages(records: readonly LogRecord[], maxBytes: number): Iterable<Uint8Array> {
    let parts: string[] = [];
    let size = 2;
    for (const record of records) {
      const json = JSON.stringify(record);
      const bytes = Buffer.byteLength(json) + 1;
      // Not a condition that passes: the shipper must not retry it forever (422).
      if (bytes > maxBytes) throw new Error(`a record of ${bytes} bytes is larger than the NATS server's max_payload allows (${maxBytes}); raise max_payload`);
      if (parts.length > 0 && size + bytes > maxBytes) {
        yield this.encoder.encode(`[${parts.join(',')}]`);
        parts = [];
        size = 2;
      }
      parts.push(json);
      size += bytes;
    }
    if (parts.length > 0) yield this.encoder.encode(`[${parts.join(',')}]`);
  }
}
