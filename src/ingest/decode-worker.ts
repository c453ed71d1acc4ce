/**
 * A decoding thread of the DecodePool: undoes the content encoding and decodes the body into
 * records, exactly as the main thread would (decodeReceivedBody), and sends them back packed.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { gzipStatedSize, parseContentEncoding } from './content-encoding.js';
import { decodeReceivedBody, type ReceivedBody } from './decode-body.js';
import { describeError, type DecodeOutcome, type DecodeTask, type DecodeWorkerData, type ScratchReturn } from './decode-pool.js';
import { InflightBytes } from './inflight.js';
import { RecordPacker, takeBackScratch } from './packed-records.js';
import { lowerThisThreadsPriority } from '../thread-priority.js';

lowerThisThreadsPriority();
const data = workerData as DecodeWorkerData;
const inflight = data.inflight === undefined ? undefined : InflightBytes.fromShared(data.inflight.shared, data.inflight.capacity);
const share = data.inflight === undefined ? undefined : new BigInt64Array(data.inflight.threadShare);
const port = parentPort;
if (port === null) throw new Error('decode-worker runs as a worker thread');

port.on('message', (message: DecodeTask | ScratchReturn) => {
  if ('scratch' in message) return takeBackScratch(message.scratch);
  const task = message;
  void decode(task).then(({ outcome, transfer }) => port.postMessage(outcome, transfer));
});

async function decode(task: DecodeTask): Promise<{ outcome: DecodeOutcome; transfer: ArrayBuffer[] }> {
  // What this thread decompresses counts against the same cap as the request's received bytes.
  const claim = inflight?.claim(task.claimed, share);
  try {
    const packer = new RecordPacker(expectedDecodedBytes(task.received));
    const batch = await decodeReceivedBody(task.received, task.receivedAtMs, {
      ...data.options,
      blocking: true,
      packer,
      ...(claim ? { reserve: (bytes: number) => claim.add(bytes) } : {}),
    });
    const { packed, transfer, lent } = packer.finish();
    return { outcome: { id: task.id, ok: true, packed, lent, malformed: batch.malformed, withoutText: batch.withoutText, format: batch.format }, transfer };
  } catch (error) {
    return { outcome: { id: task.id, ok: false, error: describeError(error) }, transfer: [] };
  } finally {
    claim?.release();
  }
}

/** A body's size once decoded: a gzip body's trailer states it; any other is taken as it is. */
function expectedDecodedBytes(received: ReceivedBody): number {
  const codings = parseContentEncoding(received.contentEncoding);
  return (codings.length === 1 && codings[0] === 'gzip' ? gzipStatedSize(received.body) : undefined) ?? received.body.byteLength;
}
