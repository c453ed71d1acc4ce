/**
 * Snappy, checked: the raw block format Vector and Fluent Bit send, and the framing format
 * (https://github.com/google/snappy/blob/main/format_description.txt and framing_format.txt).
 * Written here because the JavaScript decoder on npm (snappyjs) fills a truncated block's missing
 * tail with NULs, writes past no bound and checks no CRC, and the native one (`snappy`) is a Rust
 * addon distributed as prebuilt binaries only. A block is walked once to check it and measure its
 * output before anything is allocated; a body that is not snappy at all is a 400, never a 413.
 */
import { badBody, bodyTooLarge } from './errors.js';
import { TimeSlicer } from './time-slice.js';

export interface SnappyOptions {
  maxBytes: number;
  /** Called before the output is allocated (bytes in flight); may throw to refuse. */
  reserve?: (bytes: number) => void;
  slicer?: TimeSlicer;
}

const STAGE = 'content-encoding:snappy';
const FRAMED_MAGIC = Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59]);
/** The framing format's limit on one chunk's uncompressed data. */
const MAX_FRAMED_CHUNK = 65536;
/** The most output one input byte can make: a 3-byte copy tag makes 64 bytes. */
const MAX_EXPANSION = 64 / 3;

export function isFramedSnappy(data: Uint8Array): boolean {
  return Buffer.from(data.buffer, data.byteOffset, Math.min(data.byteLength, FRAMED_MAGIC.length)).equals(FRAMED_MAGIC);
}

export async function decodeSnappy(data: Buffer, options: SnappyOptions): Promise<Buffer> {
  const slicer = options.slicer ?? new TimeSlicer();
  return isFramedSnappy(data) ? decodeFramed(data, options, slicer) : decodeBlock(data, options, slicer, 0);
}

function invalid(message: string, byteOffset: number): Error {
  return badBody(`invalid snappy data: ${message}`, { stage: STAGE, byteOffset });
}

function readVarint32(bytes: Uint8Array): { value: number; length: number } | undefined {
  let value = 0;
  for (let index = 0; index < 5 && index < bytes.length; index++) {
    const byte = bytes[index] as number;
    value += (byte & 0x7f) * 2 ** (7 * index);
    if ((byte & 0x80) === 0) return value <= 0xffffffff ? { value, length: index + 1 } : undefined;
  }
  return undefined;
}

/**
 * Runs the block's tags from `start`: with `out` null it only checks them and returns the output
 * length; with `out` it also writes. Every literal and copy is bounds-checked.
 */
async function runTags(block: Uint8Array, start: number, out: Buffer | null, limit: number, slicer: TimeSlicer, baseOffset: number): Promise<number> {
  let pos = start;
  let outPos = 0;
  let tags = 0;
  while (pos < block.length) {
    const tagAt = pos;
    const tag = block[pos++] as number;
    let length: number;
    if ((tag & 3) === 0) {
      length = (tag >>> 2) + 1;
      if (length > 60) {
        const extra = length - 60;
        if (pos + extra > block.length) throw invalid('literal length runs past the end', baseOffset + tagAt);
        length = 0;
        for (let i = 0; i < extra; i++) length += (block[pos + i] as number) * 2 ** (8 * i);
        length += 1;
        pos += extra;
      }
      if (pos + length > block.length) throw invalid(`literal of ${length} bytes runs past the end (truncated?)`, baseOffset + tagAt);
      if (outPos + length > limit) throw invalid('output longer than the block declares', baseOffset + tagAt);
      if (out) out.set(block.subarray(pos, pos + length), outPos);
      pos += length;
      outPos += length;
    } else {
      let offset: number;
      if ((tag & 3) === 1) {
        if (pos + 1 > block.length) throw invalid('copy runs past the end (truncated?)', baseOffset + tagAt);
        length = ((tag >>> 2) & 7) + 4;
        offset = ((tag >>> 5) << 8) | (block[pos] as number);
        pos += 1;
      } else if ((tag & 3) === 2) {
        if (pos + 2 > block.length) throw invalid('copy runs past the end (truncated?)', baseOffset + tagAt);
        length = (tag >>> 2) + 1;
        offset = (block[pos] as number) | ((block[pos + 1] as number) << 8);
        pos += 2;
      } else {
        if (pos + 4 > block.length) throw invalid('copy runs past the end (truncated?)', baseOffset + tagAt);
        length = (tag >>> 2) + 1;
        offset = ((block[pos] as number) | ((block[pos + 1] as number) << 8) | ((block[pos + 2] as number) << 16) | ((block[pos + 3] as number) << 24)) >>> 0;
        pos += 4;
      }
      if (offset === 0 || offset > outPos) throw invalid(`copy from ${offset} bytes back, before the start of the output`, baseOffset + tagAt);
      if (outPos + length > limit) throw invalid('output longer than the block declares', baseOffset + tagAt);
      if (out) {
        if (offset >= length) out.copyWithin(outPos, outPos - offset, outPos - offset + length);
        // An overlapping copy repeats the last `offset` bytes: byte by byte, as the format means.
        else for (let i = 0; i < length; i++) out[outPos + i] = out[outPos - offset + i] as number;
      }
      outPos += length;
    }
    if ((++tags & 4095) === 0) await slicer.yieldIfDue();
  }
  return outPos;
}

async function decodeBlock(block: Uint8Array, options: SnappyOptions, slicer: TimeSlicer, baseOffset: number, maxDeclared = Number.POSITIVE_INFINITY): Promise<Buffer> {
  const header = readVarint32(block);
  if (header === undefined) throw invalid('bad length header', baseOffset);
  const declared = header.value;
  const payload = block.length - header.length;
  // A length that the rest of the body could not make, however well compressed: not snappy.
  if (declared > payload * MAX_EXPANSION) {
    throw invalid(`the block declares ${declared} bytes, which ${payload} bytes of snappy cannot hold (is the body really snappy-compressed?)`, baseOffset);
  }
  if (declared > maxDeclared) throw invalid(`a framed chunk declares ${declared} bytes, over the format's ${maxDeclared}`, baseOffset);
  const produced = await runTags(block, header.length, null, declared, slicer, baseOffset);
  if (produced !== declared) throw invalid(`the block declares ${declared} bytes but holds ${produced} (truncated?)`, baseOffset);
  if (declared > options.maxBytes) throw bodyTooLarge(options.maxBytes, 'after content-encoding snappy');
  options.reserve?.(declared);
  const out = Buffer.allocUnsafe(declared);
  await runTags(block, header.length, out, declared, slicer, baseOffset);
  return out;
}

async function decodeFramed(data: Buffer, options: SnappyOptions, slicer: TimeSlicer): Promise<Buffer> {
  const parts: Buffer[] = [];
  let total = 0;
  let offset = 0;
  while (offset < data.length) {
    if (offset + 4 > data.length) throw invalid('truncated frame header', offset);
    const type = data[offset] as number;
    const length = data.readUIntLE(offset + 1, 3);
    const start = offset + 4;
    const end = start + length;
    if (end > data.length) throw invalid('truncated frame', offset);
    if (type === 0x00 || type === 0x01) {
      if (length < 4) throw invalid('chunk too short for its checksum', offset);
      const remaining = { ...options, maxBytes: options.maxBytes - total };
      const chunk =
        type === 0x00
          ? await decodeBlock(data.subarray(start + 4, end), remaining, slicer, start + 4, MAX_FRAMED_CHUNK)
          : data.subarray(start + 4, end);
      if (chunk.length > MAX_FRAMED_CHUNK) throw invalid(`an uncompressed chunk of ${chunk.length} bytes, over the format's ${MAX_FRAMED_CHUNK}`, offset);
      if (maskedCrc32c(chunk) !== data.readUInt32LE(start)) throw invalid('chunk checksum (CRC-32C) does not match its data', offset);
      total += chunk.length;
      if (total > options.maxBytes) throw bodyTooLarge(options.maxBytes, 'after content-encoding snappy');
      if (type === 0x01) options.reserve?.(chunk.length);
      parts.push(chunk);
    } else if (type === 0xff) {
      if (!data.subarray(offset, end).equals(FRAMED_MAGIC)) throw invalid('bad stream identifier', offset);
    } else if (type >= 0x02 && type <= 0x7f) {
      throw invalid(`unskippable chunk type ${type}`, offset);
    }
    // 0x80-0xfe: skippable (0xfe is padding).
    offset = end;
    await slicer.yieldIfDue();
  }
  return Buffer.concat(parts, total);
}

/** CRC-32C (Castagnoli), table-driven: the checksum the framing format uses. */
const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = (CRC32C_TABLE[(crc ^ (bytes[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** The framing format stores the CRC rotated and offset ("masked"), so that CRCs of CRCs stay useful. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}
