/**
 * A decoding thread of the DecodePool: undoes the content encoding and decodes the body into
 * records, exactly as the main thread would (decodeReceivedBody), and sends them back packed.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { gzipStatedSize, parseContentEncoding } from './content-encoding.js';
import { decodeReceivedBody, type ReceivedBody } from './decode-body.js';
import { describeError, type DecodeOutcome, type DecodeTask, type DecodeWorkerData, type ScratchReturn } from './decode-pool.js';
import { InflightBytes } from './inflight.js';
import { freeNow } from './free-now.js';
import { RecordPacker, takeAllSpareScratch, takeBackScratch } from './packed-records.js';
import { lowerThisThreadsPriority } from '../thread-priority.js';

lowerThisThreadsPriority();
const data = workerData as DecodeWorkerData;
const inflight = data.inflight === undefined ? undefined : InflightBytes.fromShared(data.inflight.shared, data.inflight.capacity);
const share = data.inflight === undefined ? undefined : new BigInt64Array(data.inflight.threadShare);
const port = parentPort;
if (port === null) throw new Error('decode-worker runs as a worker thread');

/**
 * A thread that has decoded nothing for this long frees its spare scratch sets: between bursts a
 * server keeps no memory for the next one (a set is ~3 MiB per 5 MB body; making one anew costs
 * about a millisecond against the 100 ms or so of decoding such a body).
 */
const IDLE_BEFORE_FREEING_MS = 1000;
let decoding = 0;
const idle = setTimeout(() => {
  if (decoding === 0) freeNow(takeAllSpareScratch());
}, IDLE_BEFORE_FREEING_MS).unref();

port.on('message', (message: DecodeTask | ScratchReturn) => {
  idle.refresh();
  if ('scratch' in message) return takeBackScratch(message.scratch);
  const task = message;
  decoding++;
  void decode(task).then(({ outcome, transfer, inflated }) => {
    port.postMessage(outcome, transfer);
    if (inflated !== undefined) letGo(inflated);
    decoding--;
    idle.refresh();
  });
});

/**
 * Frees an inflated body as soon as its outcome is posted (nothing reads it after): its buffer
 * lived through the whole decoding, long enough to be promoted, and this thread's old generation
 * is so small that a full collection came only when tens of MiB of such buffers had piled up (up
 * to 68 MiB at full rate).
 */
function letGo(bytes: Buffer): void {
  const buffer = bytes.buffer;
  if (buffer instanceof ArrayBuffer && buffer.byteLength >= LET_GO_AT_LEAST) freeNow([buffer]);
}

/** Smaller buffers are few and cheap to leave to the collector. */
const LET_GO_AT_LEAST = 256 * 1024;

async function decode(task: DecodeTask): Promise<{ outcome: DecodeOutcome; transfer: ArrayBuffer[]; inflated?: Buffer }> {
  // What this thread decompresses counts against the same cap as the request's received bytes.
  const claim = inflight?.claim(task.claimed, share);
  let inflated: Buffer | undefined;
  try {
    const packer = new RecordPacker(expectedDecodedBytes(task.received));
    const batch = await decodeReceivedBody(task.received, task.receivedAtMs, {
      ...data.options,
      blocking: true,
      packer,
      decodedBytes: (bytes) => (inflated = bytes),
      ...(claim ? { reserve: (bytes: number) => claim.add(bytes) } : {}),
    });
    const { packed, transfer, lent } = packer.finish();
    return { outcome: { id: task.id, ok: true, packed, lent, malformed: batch.malformed, withoutText: batch.withoutText, format: batch.format }, transfer, ...(inflated ? { inflated } : {}) };
  } catch (error) {
    return { outcome: { id: task.id, ok: false, error: describeError(error) }, transfer: [], ...(inflated ? { inflated } : {}) };
  } finally {
    claim?.release();
  }
}

/** A body's size once decoded: a gzip body's trailer states it; any other is taken as it is. */
function expectedDecodedBytes(received: ReceivedBody): number {
  const codings = parseContentEncoding(received.contentEncoding);
  return (codings.length === 1 && codings[0] === 'gzip' ? gzipStatedSize(received.body) : undefined) ?? received.body.byteLength;
}
