import { promisify } from 'node:util';
import { gunzip, inflate, inflateRaw, type ZlibOptions } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import * as snappy from 'snappyjs';
import { isLeakwatchError } from '../errors.js';
import { badBody, bodyTooLarge, unsupportedEncoding } from './errors.js';

export const DEFAULT_MAX_DECODED_BYTES = 32 * 1024 * 1024;

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

const gunzipAsync = promisify<Buffer, ZlibOptions, Buffer>(gunzip);
const inflateAsync = promisify<Buffer, ZlibOptions, Buffer>(inflate);
const inflateRawAsync = promisify<Buffer, ZlibOptions, Buffer>(inflateRaw);

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
 * (413). Corrupt compressed data is a 400 naming the coding.
 */
export async function decodeContentEncoding(
  body: Buffer,
  header: string | undefined,
  maxBytes: number = DEFAULT_MAX_DECODED_BYTES,
): Promise<Buffer> {
  let data = body;
  for (const coding of parseContentEncoding(header)) {
    data = await undo(coding, data, maxBytes);
  }
  return data;
}

async function undo(coding: ActiveCoding, data: Buffer, maxBytes: number): Promise<Buffer> {
  switch (coding) {
    case 'gzip':
      return zlibStage('gzip', () => gunzipAsync(data, { maxOutputLength: maxBytes }), maxBytes);
    case 'deflate':
      // RFC 9110 deflate is zlib-wrapped (Vector's `zlib`), but some clients send a raw deflate stream.
      return hasZlibHeader(data)
        ? zlibStage('deflate', () => inflateAsync(data, { maxOutputLength: maxBytes }), maxBytes)
        : zlibStage('deflate', () => inflateRawAsync(data, { maxOutputLength: maxBytes }), maxBytes);
    case 'zstd':
      return decodeZstd(data, maxBytes);
    case 'snappy':
      return decodeSnappy(data, maxBytes);
  }
}

function hasZlibHeader(data: Buffer): boolean {
  if (data.length < 2) return false;
  const cmf = data[0] as number;
  const flg = data[1] as number;
  return (cmf & 0x0f) === 8 && (cmf >> 4) <= 7 && ((cmf << 8) | flg) % 31 === 0;
}

async function zlibStage(stage: string, run: () => Promise<Buffer>, maxBytes: number): Promise<Buffer> {
  try {
    return await run();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') throw bodyTooLarge(maxBytes, `after content-encoding ${stage}`);
    throw badBody(`invalid ${stage} data: ${(error as Error).message}`, { stage: `content-encoding:${stage}` });
  }
}

/** fzstd decodes synchronously; feeding it slices lets the size check stop a bomb early. */
function decodeZstd(data: Buffer, maxBytes: number): Buffer {
  const SLICE = 64 * 1024;
  const parts: Uint8Array[] = [];
  let total = 0;
  const decompressor = new ZstdDecompress((chunk) => {
    total += chunk.length;
    if (total > maxBytes) throw bodyTooLarge(maxBytes, 'after content-encoding zstd');
    parts.push(chunk);
  });
  try {
    if (data.length === 0) throw new Error('empty zstd stream');
    for (let offset = 0; offset < data.length; offset += SLICE) {
      const end = Math.min(offset + SLICE, data.length);
      decompressor.push(data.subarray(offset, end), end === data.length);
    }
  } catch (error) {
    if (isLeakwatchError(error)) throw error;
    throw badBody(`invalid zstd data: ${(error as Error).message}`, { stage: 'content-encoding:zstd' });
  }
  return Buffer.concat(parts, total);
}

const SNAPPY_FRAMED_MAGIC = Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59]);

/** Vector and Fluent Bit send a raw snappy block; the framing format is accepted too. */
function decodeSnappy(data: Buffer, maxBytes: number): Buffer {
  if (data.subarray(0, SNAPPY_FRAMED_MAGIC.length).equals(SNAPPY_FRAMED_MAGIC)) return decodeSnappyFramed(data, maxBytes);
  return decodeSnappyBlock(data, maxBytes, 0);
}

function decodeSnappyBlock(block: Uint8Array, maxBytes: number, byteOffset: number): Buffer {
  const declared = readVarint32(block);
  if (declared === undefined) {
    throw badBody('invalid snappy block: bad length header', { stage: 'content-encoding:snappy', byteOffset });
  }
  if (declared > maxBytes) throw bodyTooLarge(maxBytes, `snappy block declares ${declared} bytes`);
  try {
    const out = snappy.uncompress(block, maxBytes);
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  } catch (error) {
    throw badBody(`invalid snappy data: ${(error as Error).message}`, { stage: 'content-encoding:snappy', byteOffset });
  }
}

function readVarint32(bytes: Uint8Array): number | undefined {
  let value = 0;
  for (let index = 0; index < 5 && index < bytes.length; index++) {
    const byte = bytes[index] as number;
    value += (byte & 0x7f) * 2 ** (7 * index);
    if ((byte & 0x80) === 0) return value;
  }
  return undefined;
}

function decodeSnappyFramed(data: Buffer, maxBytes: number): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  let offset = 0;
  while (offset < data.length) {
    if (offset + 4 > data.length) throw badBody('truncated snappy frame header', { stage: 'content-encoding:snappy', byteOffset: offset });
    const type = data[offset] as number;
    const length = data.readUIntLE(offset + 1, 3);
    const start = offset + 4;
    const end = start + length;
    if (end > data.length) throw badBody('truncated snappy frame', { stage: 'content-encoding:snappy', byteOffset: offset });
    // 0x00 compressed and 0x01 uncompressed chunks start with a 4-byte masked CRC (not checked:
    // TCP and the shipper already protect the bytes, and a bad chunk still fails to decode).
    if (type === 0x00 || type === 0x01) {
      if (length < 4) throw badBody('snappy chunk too short', { stage: 'content-encoding:snappy', byteOffset: offset });
      const chunk =
        type === 0x00 ? decodeSnappyBlock(data.subarray(start + 4, end), maxBytes - total, start + 4) : data.subarray(start + 4, end);
      total += chunk.length;
      if (total > maxBytes) throw bodyTooLarge(maxBytes, 'after content-encoding snappy');
      parts.push(chunk);
    } else if (type >= 0x02 && type <= 0x7f) {
      throw badBody(`unskippable snappy chunk type ${type}`, { stage: 'content-encoding:snappy', byteOffset: offset });
    }
    offset = end;
  }
  return Buffer.concat(parts, total);
}
