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
  batch.refuseIfCertainlyOver(valueEnds(original, batch.limits.maxLineBytes), original.length);
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

/**
 * The byte after each top-level value, negated for one that may not make exactly one record
 * (BatchBuilder#refuseIfCertainlyOver): a string (a blank line makes none) or an array (a Fluent
 * Bit group marker makes none, a forward-mode entry list any number). Stops at a value that does
 * not end in the body.
 */
function* valueEnds(body: Uint8Array, maxLineBytes: number): Generator<number> {
  let index = 0;
  while (index < body.length) {
    const end = msgpackValueEnd(body, index);
    if (end < 0) return;
    const head = body[index] as number;
    const stringOrArray = (head >= 0x90 && head <= 0xbf) || (head >= 0xd9 && head <= 0xdb) || head === 0xdc || head === 0xdd;
    yield !stringOrArray || end - index > maxLineBytes ? end : -end;
    index = end;
  }
}

/**
 * The index after the msgpack value at `start`, or -1 when it does not end in the body or uses the
 * one byte msgpack never does (0xc1). Walks without recursion: `pending` counts the values still
 * to skip, so a deep or bogus container costs no stack, only its bytes.
 */
export function msgpackValueEnd(body: Uint8Array, start: number): number {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let index = start;
  let pending = 1;
  while (pending > 0) {
    if (index >= body.length) return -1;
    const head = body[index] as number;
    pending--;
    if (head <= 0x7f || head >= 0xe0) {
      index += 1; // fixint
    } else if (head <= 0x8f) {
      pending += 2 * (head & 0x0f); // fixmap
      index += 1;
    } else if (head <= 0x9f) {
      pending += head & 0x0f; // fixarray
      index += 1;
    } else if (head <= 0xbf) {
      index += 1 + (head & 0x1f); // fixstr
    } else if ((MSGPACK_FIXED_SIZES[head - 0xc0] as number) > 0) {
      index += MSGPACK_FIXED_SIZES[head - 0xc0] as number;
    } else {
      const sizeBytes = MSGPACK_SIZE_BYTES[head - 0xc0] as number;
      if (sizeBytes === 0 || index + 1 + sizeBytes > body.length) return -1; // 0xc1, or cut short
      const size = sizeBytes === 1 ? view.getUint8(index + 1) : sizeBytes === 2 ? view.getUint16(index + 1) : view.getUint32(index + 1);
      index += 1 + sizeBytes;
      if (head === 0xdc || head === 0xdd) pending += size; // array16/32
      else if (head === 0xde || head === 0xdf) pending += 2 * size; // map16/32
      else index += size + (head >= 0xc7 && head <= 0xc9 ? 1 : 0); // bin, str, ext (its type byte)
    }
  }
  return index <= body.length ? index : -1;
}

/** Whole sizes of the types 0xc0-0xdf that have one (nil, booleans, numbers, fixext); 0 for the rest. */
const MSGPACK_FIXED_SIZES = [
  1, 0, 1, 1, 0, 0, 0, 0, 0, 0, // c0 nil, c1 never used, c2 false, c3 true, c4-c9 bin/ext
  5, 9, // ca float32, cb float64
  2, 3, 5, 9, 2, 3, 5, 9, // cc-cf uint, d0-d3 int
  3, 4, 6, 10, 18, // d4-d8 fixext 1, 2, 4, 8, 16 (type byte + data)
  0, 0, 0, 0, 0, 0, 0, // d9-db str, dc-dd array, de-df map
];

/** For the types 0xc0-0xdf that carry a size: how many bytes it takes (bin, ext, str, array, map); 0 for the rest. */
const MSGPACK_SIZE_BYTES = [
  0, 0, 0, 0, 1, 2, 4, 1, 2, 4, // c4-c6 bin, c7-c9 ext
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ca-d8 fixed sizes
  1, 2, 4, 2, 4, 2, 4, // d9-db str, dc-dd array, de-df map
];

/** The key `__proto__` as a msgpack fixstr, and as the str8, str16 and str32 an encoder may also write. */
const PROTO_KEYS = [[0xa9], [0xd9, 0x09], [0xda, 0x00, 0x09], [0xdb, 0x00, 0x00, 0x00, 0x09]].map((head) => Buffer.from([...head, ...Buffer.from('__proto__')]));
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
