import type { RecordBatch, RecordPacker } from './packed-records.js';
import { decodeContentEncoding, type DecodeEncodingOptions } from './content-encoding.js';
import { BatchBuilder, type DecodedBatch, type DecodeLimits } from './formats/batch.js';
import { decodeJsonBody } from './formats/json.js';
import { decodeMsgpack } from './formats/msgpack.js';
import { decodeNdjson } from './formats/ndjson.js';
import { decodeTextLines } from './formats/text-lines.js';
import { DEFAULT_SLICE_MS, TimeSlicer } from './time-slice.js';

export type { DecodedBatch, DecodeLimits } from './formats/batch.js';

/** A request body as it arrived, with the headers that say how to read it. */
export interface ReceivedBody {
  body: Uint8Array;
  contentType: string | undefined;
  contentEncoding: string | undefined;
}

/** A decoded batch on its way to the engine, with what the journal keeps of it. */
export interface SubmittedBatch {
  records: RecordBatch;
  receivedAt: number;
  /** The body the records came from; without it the journal keeps the records themselves. */
  received?: ReceivedBody;
  /** The journal write of `received` started while it was being decoded, if one was. */
  journaled?: EarlyJournalWrite;
}

/**
 * A body's journal write, started as soon as the body was received so that it runs while the body
 * is decoded instead of after (Pipeline.journalBody). Whoever started it either submits the batch
 * with it or abandons it.
 */
export interface EarlyJournalWrite {
  /** Settles when the write has ended, however: the body must be held (and counted) until then. */
  readonly ended: Promise<void>;
  /** The body will not be submitted (refused, or no records): its batch is not replayed as accepted. Once submitted, a no-op. */
  abandon(): void;
}

export type BodyFormat = 'json' | 'ndjson' | 'msgpack' | 'text';

/** A decoded body and the shape it was read as (`empty` for a body without bytes). */
export interface DecodedBody extends DecodedBatch {
  format: BodyFormat | 'empty';
}

/** A decoded body as ingest takes it: its records may still be a decoding thread's columns (PackedBatch). */
export interface IngestedBody extends Omit<DecodedBody, 'records'> {
  records: RecordBatch;
}

const DECLARED: Readonly<Record<string, BodyFormat>> = {
  'application/json': 'json',
  'text/json': 'json',
  'application/x-ndjson': 'ndjson',
  'application/ndjson': 'ndjson',
  'application/jsonl': 'ndjson',
  'application/x-jsonlines': 'ndjson',
  'application/jsonlines': 'ndjson',
  'application/json-seq': 'ndjson',
  'application/msgpack': 'msgpack',
  'application/x-msgpack': 'msgpack',
  'application/vnd.msgpack': 'msgpack',
};

/** The media type without parameters, lower-cased; '' when absent. */
export function mediaTypeOf(contentType: string | undefined): string {
  if (contentType === undefined) return '';
  const semicolon = contentType.indexOf(';');
  return (semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
}

function declaredFormat(mediaType: string): BodyFormat | undefined {
  const known = DECLARED[mediaType];
  if (known !== undefined) return known;
  if (mediaType.endsWith('+json')) return 'json';
  if (mediaType.startsWith('text/')) return 'text';
  return undefined;
}

function firstSignificantByte(body: Uint8Array): number {
  let index = 0;
  // UTF-8 BOM
  if (body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) index = 3;
  while (index < body.length) {
    const byte = body[index] as number;
    if (byte !== 0x20 && byte !== 0x0a && byte !== 0x0d && byte !== 0x09) return byte;
    index++;
  }
  return -1;
}

function looksLikeJson(byte: number): boolean {
  return byte === 0x5b /* [ */ || byte === 0x7b /* { */;
}

/** fixmap, fixarray, array16/32, map16/32: how every msgpack record stream starts. */
function looksLikeMsgpack(byte: number): boolean {
  return (byte >= 0x80 && byte <= 0x9f) || (byte >= 0xdc && byte <= 0xdf);
}

function sniff(byte: number): BodyFormat {
  if (looksLikeJson(byte)) return 'json';
  if (looksLikeMsgpack(byte)) return 'msgpack';
  return 'text';
}

/**
 * Picks the body's format from its Content-Type, and sniffs when the type is missing, generic
 * (`application/octet-stream`, `* /*`, curl's form type) or contradicted by the first byte (a JSON
 * label on text lines; NDJSON keeps its label, each bad line counted). Fluent Bit labels `json_stream` as application/json; the JSON decoder copes.
 */
export function chooseFormat(body: Uint8Array, contentType: string | undefined): BodyFormat {
  const byte = firstSignificantByte(body);
  const declared = declaredFormat(mediaTypeOf(contentType));
  switch (declared) {
    case 'json':
      return looksLikeJson(byte) || byte === 0x22 /* " */ ? 'json' : sniff(byte);
    case 'ndjson':
      // Lines stand alone: a bad first line is one malformed record, not a reason to re-guess.
      return looksLikeMsgpack(byte) ? 'msgpack' : 'ndjson';
    case 'msgpack':
      return looksLikeMsgpack(byte) ? 'msgpack' : sniff(byte);
    case 'text':
      return 'text';
    case undefined:
      return sniff(byte);
  }
}

/**
 * Decodes a whole (already decompressed) body into records, in slices of a few milliseconds. Bad
 * parts inside a batch become raw text records counted in `malformed`, as do lines, values and
 * records over the limits; a body that cannot be decoded at all throws a LeakwatchError (400,
 * with `where`), one with more than `maxRecords` records a 413.
 */
export async function decodeBody(
  body: Buffer,
  contentType: string | undefined,
  receivedAtMs: number,
  limits: Partial<DecodeLimits> = {},
  { blocking = false, packer }: { blocking?: boolean; packer?: RecordPacker } = {},
): Promise<DecodedBody> {
  // On a decoding thread a slice would only let another body's decoding in between (DecodeEncodingOptions.blocking).
  const batch = new BatchBuilder(receivedAtMs, limits, new TimeSlicer(blocking ? Number.POSITIVE_INFINITY : DEFAULT_SLICE_MS), packer);
  if (body.length === 0) return { ...batch.result(), format: 'empty' };
  const format = chooseFormat(body, contentType);
  return { ...(await decodeAs(format, body, batch)), format };
}

function decodeAs(format: BodyFormat, body: Buffer, batch: BatchBuilder): Promise<DecodedBatch> {
  switch (format) {
    case 'msgpack':
      return decodeMsgpack(body, batch);
    case 'json':
      return decodeJsonBody(body, batch);
    case 'ndjson':
      return decodeNdjson(body, batch);
    case 'text':
      return decodeTextLines(body, batch);
  }
}

/**
 * A body as received to records: its content encoding undone, then its format decoded. The ingest
 * route and the journal replay both come here, so that a replay builds the records the first
 * reading built (the same receivedAtMs, the same limits).
 */
export async function decodeReceivedBody(
  received: ReceivedBody,
  receivedAtMs: number,
  options: DecodeEncodingOptions & { limits?: Partial<DecodeLimits>; packer?: RecordPacker; decodedBytes?: (bytes: Buffer) => void },
): Promise<DecodedBody> {
  const raw = Buffer.isBuffer(received.body) ? received.body : Buffer.from(received.body.buffer, received.body.byteOffset, received.body.byteLength);
  const decoded = await decodeContentEncoding(raw, received.contentEncoding, options);
  if (decoded !== raw) options.decodedBytes?.(decoded);
  return decodeBody(decoded, received.contentType, receivedAtMs, options.limits, { blocking: options.blocking, packer: options.packer });
}
