/**
 * The record stream between ingest and engine nodes: one JetStream stream whose subjects are the
 * partitions (`leakwatch.records.<n>`). A record's partition is a stable hash of its stream key
 * (host + service + pid), so one process's lines always travel, in order, through one partition
 * and reach one engine node.
 */
import type { Logger } from 'pino';
import { connect, RetentionPolicy, StorageType, type NatsConnection } from 'nats';
import { laneOf } from '../forward/forwarder.js';

export const RECORD_STREAM = 'LEAKWATCH_RECORDS';
const SUBJECT_PREFIX = 'leakwatch.records';

export function subjectOf(partition: number): string {
  return `${SUBJECT_PREFIX}.${partition}`;
}

/** The durable consumer of a partition: one per partition, whichever node holds it. */
export function consumerOf(partition: number): string {
  return `leakwatch-p${partition}`;
}

/** The partition of a stream key: the forwarder's lane hash, stable across runs and platforms. */
export function partitionOf(stream: string, partitions: number): number {
  return laneOf(stream, partitions);
}

/** Connects for good: the client reconnects by itself whenever the server goes away and comes back. */
export async function connectNats(servers: string, name: string, log: Logger): Promise<NatsConnection> {
  const nc = await connect({
    servers: servers.split(',').map((server) => server.trim()).filter(Boolean),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    waitOnFirstConnect: true,
  });
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') log.warn({ server: String(status.data) }, 'NATS: disconnected; reconnecting');
      else if (status.type === 'reconnect') log.info({ server: String(status.data) }, 'NATS: reconnected');
    }
  })();
  return nc;
}

/**
 * Makes the stream when it is not there. Work-queue retention: a message leaves the stream once
 * its partition's consumer has acknowledged it, so the stream holds what is not yet in the store.
 */
export async function ensureRecordStream(nc: NatsConnection): Promise<void> {
  const jsm = await nc.jetstreamManager();
  try {
    await jsm.streams.info(RECORD_STREAM);
    return;
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  try {
    await jsm.streams.add({ name: RECORD_STREAM, subjects: [`${SUBJECT_PREFIX}.*`], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
  } catch (error) {
    // Another node made it meanwhile.
    if (!/already in use|exists/i.test((error as Error).message)) throw error;
  }
}

export function isNotFound(error: unknown): boolean {
  const { code, message } = error as { code?: unknown; message?: unknown };
  return code === '404' || (typeof message === 'string' && /not found/i.test(message));
}
