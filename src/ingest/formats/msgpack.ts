import { Decoder, ExtensionCodec } from '@msgpack/msgpack';
import { badBody } from '../errors.js';
import { epochNumberToUs } from '../timestamps.js';
import { type BatchBuilder, isPlainRecord, type DecodedBatch } from './batch.js';

/**
 * A stream of msgpack values with no outer array:
 * - Fluent Bit v2 chunks (since 2.1): `[[time, metadata], record]`; group markers (time -1/-2) skipped;
 * - Fluent Bit v1 chunks: `[time, record]`;
 * - Fluentd `<format> @type msgpack`: plain record maps;
 * - Fluentd forward-style `[tag, time, record]` and `[tag, [[time, record], ...]]`, for curl users.
 * Time is ext type 0 (EventTime: u32 seconds, u32 nanoseconds), an integer or a float (seconds).
 */
export async function decodeMsgpack(original: Uint8Array, batch: BatchBuilder): Promise<DecodedBatch> {
  if (original.length === 0) return batch.result();
  const body = withoutProtoKeys(original);
  const limit = body.length;
  const decoder = new Decoder({
    extensionCodec: EVENT_TIME_CODEC,
    // No container or string can be longer than the body; this stops a bogus 2^32 length up front.
    maxArrayLength: limit,
    maxMapLength: limit,
    maxStrLength: limit,
    maxBinLength: limit,
    maxExtLength: limit,
    mapKeyConverter: (key: unknown) => (typeof key === 'string' || typeof key === 'number' ? key : String(key)),
  });
  let values = 0;
  let consumed = 0;
  try {
    for (const value of decoder.decodeMulti(body)) {
      const start = consumed;
      consumed = decoderPosition(decoder, consumed);
      values++;
      if (consumed - start > batch.limits.maxLineBytes) {
        const head = Buffer.from(body.buffer, body.byteOffset + start, Math.min(consumed - start, MAX_RAW_TAIL)).toString('utf8');
        batch.addMalformed(`msgpack value of ${consumed - start} bytes at byte ${start}, over --max-line-bytes (${batch.limits.maxLineBytes}): ${head}`);
      } else {
        addEvent(batch, value);
      }
      await batch.yieldIfDue();
    }
  } catch (error) {
    const message = (error as Error).message;
    if (values === 0) {
      throw badBody(`msgpack body cannot be decoded at its first value: ${message}`, { stage: 'msgpack', byteOffset: 0 });
    }
    // The records before the damage stand; the rest is kept (bounded) as one raw record.
    const rest = Buffer.from(body.buffer, body.byteOffset + consumed, Math.min(body.length - consumed, MAX_RAW_TAIL));
    batch.addMalformed(`undecodable msgpack at byte ${consumed} (${message}): ${rest.toString('utf8')}`);
  }
  return batch.result();
}

const MAX_RAW_TAIL = 64 * 1024;

/** The key `__proto__` as a msgpack fixstr and as a str8. */
const PROTO_KEYS = [Buffer.from([0xa9, ...Buffer.from('__proto__')]), Buffer.from([0xd9, 0x09, ...Buffer.from('__proto__')])];
const PROTO_KEY_RENAMED = Buffer.from('__PROTO__');

/**
 * @msgpack/msgpack refuses a map with a `__proto__` key (prototype pollution), which would cost the
 * rest of the batch; such a key is spelt `__PROTO__` instead (same length, so nothing else moves).
 * The body is copied only when it holds the key.
 */
function withoutProtoKeys(body: Uint8Array): Uint8Array {
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (!PROTO_KEYS.some((key) => bytes.includes(key))) return body;
  const copy = Buffer.from(bytes);
  for (const key of PROTO_KEYS) {
    for (let at = copy.indexOf(key); at >= 0; at = copy.indexOf(key, at + key.length)) {
      PROTO_KEY_RENAMED.copy(copy, at + key.length - PROTO_KEY_RENAMED.length);
    }
  }
  return copy;
}

/**
 * Where the decoder stopped after the last complete value. `pos` is private in the library's
 * types but is the documented way its own stream decoder resumes; read it defensively.
 */
function decoderPosition(decoder: Decoder, fallback: number): number {
  const pos = (decoder as unknown as { pos?: unknown }).pos;
  return typeof pos === 'number' ? pos : fallback;
}

class EventTime {
  constructor(readonly us: number) {}
}

const EVENT_TIME_CODEC = new ExtensionCodec();
EVENT_TIME_CODEC.register({
  type: 0,
  encode: () => null,
  decode: (data: Uint8Array) => {
    if (data.length !== 8) return null;
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    return new EventTime(view.getUint32(0) * 1e6 + Math.floor(view.getUint32(4) / 1000));
  },
});

function eventTimeToUs(time: unknown): number | undefined {
  if (time instanceof EventTime) return time.us;
  if (time instanceof Date) return time.getTime() * 1000;
  if (typeof time === 'number') return epochNumberToUs(time);
  if (typeof time === 'bigint') return epochNumberToUs(Number(time));
  return undefined;
}

/** Fluent Bit group start/end markers carry these times instead of a real one. */
function isGroupMarker(time: unknown): boolean {
  return time === -1 || time === -2 || time === -1n || time === -2n;
}

function addEvent(batch: BatchBuilder, value: unknown): void {
  if (!Array.isArray(value)) {
    batch.addValue(value);
    return;
  }
  const [head, second, third] = value as unknown[];
  if (value.length === 2 && isPlainRecord(second)) {
    // v2: [[time, metadata], record]; v1: [time, record]
    const time = Array.isArray(head) ? (head as unknown[])[0] : head;
    if (isGroupMarker(time)) return;
    batch.addValue(second, eventTimeToUs(time));
    return;
  }
  if (typeof head === 'string' && value.length === 3 && isPlainRecord(third)) {
    batch.addValue(third, eventTimeToUs(second));
    return;
  }
  if (typeof head === 'string' && value.length >= 2 && Array.isArray(second)) {
    // Forward mode entries are [time, record]; nothing deeper is followed (no recursion on input).
    for (const entry of second as unknown[]) {
      if (Array.isArray(entry) && entry.length === 2 && isPlainRecord(entry[1])) batch.addValue(entry[1], eventTimeToUs(entry[0]));
      else batch.addValue(entry);
    }
    return;
  }
  batch.addValue(value);
}
