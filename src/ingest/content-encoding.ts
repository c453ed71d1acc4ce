import { createGunzip, createInflate, createInflateRaw, gunzipSync, inflateRawSync, inflateSync, type Gunzip, type Inflate, type InflateRaw, type ZlibOptions } from 'node:zlib';
import zstd from 'zstd-napi/binding.js';
import { badBody, bodyTooLarge, unsupportedEncoding } from './errors.js';
import { decodeSnappy } from './snappy.js';
import { TimeSlicer } from './time-slice.js';

export const DEFAULT_MAX_DECODED_BYTES = 32 * 1024 * 1024;
export const DEFAULT_MAX_ZSTD_WINDOW_BYTES = 8 * 1024 * 1024;

type Coding = 'gzip' | 'deflate' | 'zstd' | 'snappy' | 'identity';
type ActiveCoding = Exclude<Coding, 'identity'>;

const CODING_OF: Readonly<Record<string, Coding>> = {
  gzip: 'gzip',
  'x-gzip': 'gzip',
  deflate: 'deflate',
  zstd: 'zstd',
  snappy: 'snappy',
  identity: 'identity',
};

export interface DecodeEncodingOptions {
  /** Largest output of each stage (413 past it). */
  maxBytes: number;
  /** Largest window a zstd frame may ask for (400 past it, before anything is allocated). */
  maxZstdWindowBytes?: number;
  /** Called for every decoded chunk before it is kept (bytes in flight); throws to refuse. */
  reserve?: (bytes: number) => void;
  /**
   * Decoding runs on a thread of its own (DecodePool), where nothing else waits for a turn: every
   * stage runs to its end without yielding, and zlib inflates on this thread instead of in round
   * trips to libuv's thread pool. Never on the event loop.
   */
  blocking?: boolean;
}

/**
 * Parses a `Content-Encoding` header into the codings to undo, in the order to undo them (the
 * header lists them in the order they were applied). Throws 415 for any unknown coding before any
 * work is done.
 */
export function parseContentEncoding(header: string | undefined): ActiveCoding[] {
  if (header === undefined) return [];
  const codings: ActiveCoding[] = [];
  for (const token of header.split(',')) {
    const name = token.trim().toLowerCase();
    if (name === '') continue;
    const coding = CODING_OF[name];
    if (coding === undefined) throw unsupportedEncoding(name);
    if (coding !== 'identity') codings.push(coding);
  }
  return codings.reverse();
}

/**
 * Undoes every `Content-Encoding` of the body. Each stage stops as soon as its output would pass
 * `maxBytes`, so a compression bomb costs at most `maxBytes` of memory and the time to produce it
 * (413). Corrupt compressed data is a 400 naming the coding. zlib runs on libuv's thread pool and
 * zstd and snappy in slices of a few milliseconds, so no body holds the event loop.
 */
export async function decodeContentEncoding(
  body: Buffer,
  header: string | undefined,
  limits: number | DecodeEncodingOptions = DEFAULT_MAX_DECODED_BYTES,
): Promise<Buffer> {
  const options = typeof limits === 'number' ? { maxBytes: limits } : limits;
  let data = body;
  for (const coding of parseContentEncoding(header)) {
    data = await undo(coding, data, options);
  }
  return data;
}

async function undo(coding: ActiveCoding, data: Buffer, options: DecodeEncodingOptions): Promise<Buffer> {
  switch (coding) {
    case 'gzip':
      if (options.blocking === true) return inflateHere('gzip', gunzipSync, data, options, gzipOutputChunk(data, options.maxBytes));
      return zlibStage('gzip', createGunzip(INFLATE_OPTIONS), data, options);
    case 'deflate':
      // RFC 9110 deflate is zlib-wrapped (Vector's `zlib`), but some clients send a raw deflate stream.
      if (options.blocking === true) return inflateHere('deflate', hasZlibHeader(data) ? inflateSync : inflateRawSync, data, options);
      return zlibStage('deflate', hasZlibHeader(data) ? createInflate(INFLATE_OPTIONS) : createInflateRaw(INFLATE_OPTIONS), data, options);
    case 'zstd':
      return decodeZstd(data, options);
    case 'snappy':
      return decodeSnappy(data, { maxBytes: options.maxBytes, reserve: options.reserve });
  }
}

function hasZlibHeader(data: Buffer): boolean {
  if (data.length < 2) return false;
  const cmf = data[0] as number;
  const flg = data[1] as number;
  return (cmf & 0x0f) === 8 && (cmf >> 4) <= 7 && ((cmf << 8) | flg) % 31 === 0;
}

/**
 * Output chunks of 256 KiB instead of zlib's 16 KiB: each chunk is a round trip to the thread pool
 * and an event, and at 16 KiB those cost more than inflating (32 MiB took ~350 ms, most of it
 * waiting between chunks). The cap is still checked chunk by chunk, 256 KiB past it at most.
 */
const INFLATE_OPTIONS = { chunkSize: 256 * 1024 };

/** Inflates on the thread pool, counting each output chunk as it comes; stops at the first one past the cap. */
function zlibStage(stage: string, inflater: Gunzip | Inflate | InflateRaw, data: Buffer, options: DecodeEncodingOptions): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    let total = 0;
    let settled = false;
    const fail = (error: Error): void => {
      if (settled) return;
      settled = true;
      parts.length = 0;
      inflater.destroy();
      reject(error);
    };
    inflater.on('data', (chunk: Buffer) => {
      if (settled) return;
      total += chunk.length;
      if (total > options.maxBytes) return fail(bodyTooLarge(options.maxBytes, `after content-encoding ${stage}`));
      try {
        options.reserve?.(chunk.length);
      } catch (error) {
        return fail(error as Error);
      }
      parts.push(chunk);
    });
    inflater.on('error', (error) => fail(badBody(`invalid ${stage} data: ${error.message}`, { stage: `content-encoding:${stage}` })));
    inflater.on('end', () => {
      if (settled) return;
      settled = true;
      resolve(Buffer.concat(parts, total));
    });
    inflater.end(data);
  });
}

/**
 * zlib on the calling thread (a decoding thread's), stopped by zlib itself once its output would
 * pass the cap: a bomb costs at most `maxBytes`, as on the thread pool. On a loaded two-core machine
 * the thread pool's round trips made a 0.6 MB gzip body of 25,000 lines take 200-240 ms to decode.
 */
function inflateHere(stage: string, inflate: (data: Buffer, options: ZlibOptions) => Buffer, data: Buffer, options: DecodeEncodingOptions, chunkSize = INFLATE_OPTIONS.chunkSize): Buffer {
  let output: Buffer;
  try {
    output = inflate(data, { chunkSize, maxOutputLength: options.maxBytes });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw bodyTooLarge(options.maxBytes, `after content-encoding ${stage}`);
    throw badBody(`invalid ${stage} data: ${(error as Error).message}`, { stage: `content-encoding:${stage}` });
  }
  options.reserve?.(output.length);
  return output;
}

/**
 * The output chunk for a gzip body inflated here: the size its trailer states (ISIZE, the last
 * member's length mod 2^32) plus one, so that zlib writes the whole body into one buffer that is
 * returned as it is. In 256 KiB chunks, each chunk was a buffer of its own and all were then
 * copied into one: inflating the bench's 1-10 MB bodies took twice as long. A trailer that
 * understates (several members) gets more chunks of that size, copied as before; one over the
 * cap, or none, the usual 256 KiB chunks.
 */
function gzipOutputChunk(data: Buffer, maxBytes: number): number {
  const stated = gzipStatedSize(data);
  return stated !== undefined && stated > INFLATE_OPTIONS.chunkSize && stated <= maxBytes ? stated + 1 : INFLATE_OPTIONS.chunkSize;
}

/** The size a gzip body's trailer states (ISIZE: its last member's length mod 2^32), when it has one. */
export function gzipStatedSize(data: Uint8Array): number | undefined {
  if (data.length < 18) return undefined;
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(data.byteLength - 4, true);
}

const ZSTD_OUTPUT_CHUNK = 128 * 1024;

/** The zstd window limit as the decoder's windowLogMax (libzstd accepts 10 to 31). */
function windowLogFor(bytes: number): number {
  return Math.min(31, Math.max(10, Math.floor(Math.log2(bytes))));
}

/** Why libzstd refused the input: a frame asking for a window over the limit, or data that is no valid zstd. */
export class ZstdInputError extends Error {
  override readonly name = 'ZstdInputError';
  constructor(
    readonly kind: 'window' | 'corrupt',
    message: string,
    /** Bytes of the input consumed before the failure. */
    readonly byteOffset: number,
  ) {
    super(message);
  }
}

/**
 * libzstd (zstd-napi) in streaming mode, fed piece by piece: a frame asking for a window over the
 * limit is refused from its header, before anything is allocated; content checksums are verified
 * when the frame carries one; output comes in fixed chunks (no copying of what was already decoded).
 */
export class ZstdStreamDecoder {
  private readonly context = new zstd.DCtx();
  private pending = 0;
  private consumedTotal = 0;

  constructor(readonly maxWindowBytes: number = DEFAULT_MAX_ZSTD_WINDOW_BYTES) {
    this.context.setParameter(zstd.DParameter.windowLogMax, windowLogFor(maxWindowBytes));
  }

  /** The decoded chunks of the next piece of input; throws ZstdInputError. */
  *decode(piece: Uint8Array): Generator<Buffer> {
    let input = piece;
    let produced = 0;
    do {
      const out = Buffer.allocUnsafe(ZSTD_OUTPUT_CHUNK);
      let consumed: number;
      try {
        [this.pending, produced, consumed] = this.context.decompressStream(out, input);
      } catch (error) {
        const message = (error as Error).message;
        const offset = this.consumedTotal + piece.length - input.length;
        if (/too much memory/i.test(message)) {
          throw new ZstdInputError('window', `zstd frame asks for a window larger than ${this.maxWindowBytes} bytes`, offset);
        }
        throw new ZstdInputError('corrupt', `invalid zstd data: ${message}`, offset);
      }
      input = input.subarray(consumed);
      // A short last chunk is copied so that it does not pin a whole output buffer.
      if (produced > 0) yield produced < ZSTD_OUTPUT_CHUNK / 4 ? Buffer.from(out.subarray(0, produced)) : out.subarray(0, produced);
      if (consumed === 0 && produced === 0) break;
    } while (input.length > 0 || produced === ZSTD_OUTPUT_CHUNK);
    this.consumedTotal += piece.length - input.length;
  }

  /** Throws when the input ended inside a frame (a truncated file or body). */
  end(): void {
    if (this.pending !== 0) throw new ZstdInputError('corrupt', 'invalid zstd data: the stream ends inside a frame (truncated?)', this.consumedTotal);
  }
}

/**
 * A body's zstd frames, decoded in slices of a few milliseconds (the loop yields between output
 * chunks) and refused past `maxBytes` of output.
 */
async function decodeZstd(data: Buffer, options: DecodeEncodingOptions): Promise<Buffer> {
  const stage = 'content-encoding:zstd';
  if (data.length === 0) throw badBody('invalid zstd data: empty stream', { stage });
  const maxWindow = options.maxZstdWindowBytes ?? DEFAULT_MAX_ZSTD_WINDOW_BYTES;
  const decoder = new ZstdStreamDecoder(maxWindow);
  const slicer = new TimeSlicer();
  const parts: Buffer[] = [];
  let total = 0;
  try {
    for (const part of decoder.decode(data)) {
      total += part.length;
      if (total > options.maxBytes) throw bodyTooLarge(options.maxBytes, 'after content-encoding zstd');
      options.reserve?.(part.length);
      parts.push(part);
      await slicer.yieldIfDue();
    }
    decoder.end();
  } catch (error) {
    if (!(error instanceof ZstdInputError)) throw error;
    const message = error.kind === 'window' ? `${error.message} (--max-zstd-window)` : error.message;
    throw badBody(message, { stage, byteOffset: error.kind === 'corrupt' && /truncated/.test(error.message) ? data.length : error.byteOffset });
  }
  return Buffer.concat(parts, total);
}
