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
  void decode(task).then(({ outcome, transfer, inflated }) => {
    port.postMessage(outcome, transfer);
    if (inflated !== undefined) letGo(inflated);
  });
});

/**
 * Frees an inflated body now rather than at this thread's next full collection: its buffer lived
 * through the whole decoding, long enough to be promoted, and this thread's old generation is so
 * small that a full collection came only when tens of MiB of such buffers had piled up (up to
 * 68 MiB at full rate). Moved into a clone that nothing refers to, the memory goes at the next
 * young collection. Only once the outcome is posted: nothing is read from it after.
 */
function letGo(bytes: Buffer): void {
  const buffer = bytes.buffer;
  if (!(buffer instanceof ArrayBuffer) || buffer.byteLength < LET_GO_AT_LEAST) return;
  try {
    structuredClone(buffer, { transfer: [buffer] });
  } catch {
    // A buffer Node marked untransferable (its pool): the collector frees it as before.
  }
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
