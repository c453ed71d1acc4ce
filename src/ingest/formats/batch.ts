import { DEFAULTS } from '../../config.js';
import { tooManyRecords } from '../errors.js';
import { malformedRecord, recordFromObject, recordFromText, safeStringify } from '../normalize.js';
import type { RecordPacker } from '../packed-records.js';
import type { LogRecord } from '../record.js';
import { TimeSlicer } from '../time-slice.js';

/** What a body decodes to: every record, how many were kept as raw text or cut, and how many had no text field. */
export interface DecodedBatch {
  records: LogRecord[];
  malformed: number;
  withoutText: number;
}

/** The bounds of one body's decoding (the --max-* settings). */
export interface DecodeLimits {
  /** More records than this: the body is refused (413). */
  maxRecords: number;
  /** A longer line (text, NDJSON) or value (JSON, msgpack) is kept cut, as raw text, counted malformed. */
  maxLineBytes: number;
  /** A longer message is cut; its record is counted malformed. */
  maxMessageBytes: number;
  /** A record nested deeper is kept as raw text, counted malformed. */
  maxDepth: number;
}

export const DEFAULT_DECODE_LIMITS: Readonly<DecodeLimits> = {
  maxRecords: DEFAULTS.maxRecords,
  maxLineBytes: DEFAULTS.maxLineBytes,
  maxMessageBytes: DEFAULTS.maxMessageBytes,
  maxDepth: DEFAULTS.maxDepth,
};

/** The first `maxBytes` bytes of `text` as UTF-8, never splitting a character. */
export function cutToBytes(text: string, maxBytes: number): string {
  // Fast path: even at 3 bytes per UTF-16 unit it fits.
  if (text.length * 3 <= maxBytes) return text;
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
  return bytes.toString('utf8', 0, end);
}

/**
 * Whether `value` nests objects/arrays more than `maxDepth` deep. Recursion stops at maxDepth + 1
 * levels whatever the value's own depth, so a hostile depth cannot overflow the stack.
 */
export function nestsDeeperThan(value: unknown, maxDepth: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  return maxDepth < 1 || deeperBelow(value, maxDepth - 1);
}

/** Whether a child of `container` nests more than `levelsLeft` deep (for...in: no array of values per record). */
function deeperBelow(container: object, levelsLeft: number): boolean {
  if (container instanceof Uint8Array) return false;
  const values = container as Record<string, unknown>;
  for (const key in values) {
    const child = values[key];
    if (child === null || typeof child !== 'object') continue;
    if (levelsLeft < 1 || deeperBelow(child, levelsLeft - 1)) return true;
  }
  return false;
}

/** Bytes of a body counted before deciding whether to count the rest (BatchBuilder#refuseIfCertainlyOver). */
const CERTAIN_SAMPLE_BYTES = 64 * 1024;

/**
 * Collects one body's records; the formats share its rules for values that are not records and
 * its limits. The decoders call `yieldIfDue()` in their loops so that a large body is decoded in
 * slices and the event loop keeps answering other requests. With a packer (a decoding thread),
 * each record goes into it as it is made and `records` stays empty.
 */
export class BatchBuilder {
  readonly records: LogRecord[] = [];
  malformed = 0;
  private withoutText = 0;
  readonly limits: DecodeLimits;
  private readonly slicer: TimeSlicer;

  constructor(
    readonly receivedAtMs: number,
    limits: Partial<DecodeLimits> = {},
    slicer: TimeSlicer = new TimeSlicer(),
    private readonly packer?: RecordPacker,
  ) {
    this.limits = { ...DEFAULT_DECODE_LIMITS, ...limits };
    this.slicer = slicer;
  }

  /** Records so far. */
  get count(): number {
    return this.packer === undefined ? this.records.length : this.packer.size;
  }

  yieldIfDue(): Promise<void> | undefined {
    return this.slicer.due() ? this.slicer.pause() : undefined;
  }

  /**
   * Refuses (413) a body that certainly makes more than --max-records records, found on its bytes
   * before a record is built. Without it, a few KB of gzip inflating to 32 MiB of `{}` was refused
   * only once 250,000 records were made (~0.4 s of a decoding thread). `valueEnds` yields, in
   * order, the byte after each value: positive for a value sure to make a record, negative (its
   * end, negated) for one that may make none or several (the format's decoder knows which). A body
   * whose first CERTAIN_SAMPLE_BYTES project no more than the cap is not scanned further: an
   * ordinary body costs a scan of its first 64 KiB.
   */
  refuseIfCertainlyOver(valueEnds: Iterable<number>, bodyLength: number): void {
    const limit = this.limits.maxRecords;
    // A record takes at least one byte (an empty msgpack map).
    if (bodyLength <= limit) return;
    let count = 0;
    for (const signedEnd of valueEnds) {
      if (signedEnd > 0 && ++count > limit) throw tooManyRecords(limit);
      const end = Math.abs(signedEnd);
      if (end >= CERTAIN_SAMPLE_BYTES && (count / end) * bodyLength <= limit) return;
    }
  }

  /**
   * One decoded value: an object is a record, a string is a message (Vector's opt-in log namespace
   * sends bare strings), anything else is kept as raw text and counted as malformed. `source` is
   * the value's text as sent (or how to get it), when the format has it, for the raw record of a
   * value too deep.
   */
  addValue(value: unknown, transportTimeUs?: number, source?: string | (() => string)): void {
    if (nestsDeeperThan(value, this.limits.maxDepth)) {
      const text = typeof source === 'function' ? source() : source;
      this.addMalformed(text ?? `[a value nested more than ${this.limits.maxDepth} levels deep (--max-depth)]`);
    } else if (isPlainRecord(value)) {
      this.push(recordFromObject(value, this.receivedAtMs, transportTimeUs));
    } else if (typeof value === 'string') {
      this.addTextLine(value);
    } else {
      this.addMalformed(safeStringify(value));
    }
  }

  addMalformed(text: string): void {
    this.malformed++;
    this.push(malformedRecord(this.cutLine(text), this.receivedAtMs), true);
  }

  addTextLine(line: string): void {
    const cut = this.cutLine(line);
    if (cut !== line) {
      this.addMalformed(cut);
      return;
    }
    const record = recordFromText(line, this.receivedAtMs);
    if (record !== null) this.push(record);
  }

  /** Whether a line or value of this many UTF-16 units may be over --max-line-bytes (then `cutLine` decides). */
  mayBeTooLong(length: number): boolean {
    return length > this.limits.maxLineBytes / 3;
  }

  result(): DecodedBatch {
    return { records: this.records, malformed: this.malformed, withoutText: this.withoutText };
  }

  private cutLine(text: string): string {
    return this.mayBeTooLong(text.length) ? cutToBytes(text, this.limits.maxLineBytes) : text;
  }

  private push(record: LogRecord, counted = false): void {
    if (this.count >= this.limits.maxRecords) throw tooManyRecords(this.limits.maxRecords);
    if (record.message.length * 3 > this.limits.maxMessageBytes) {
      const cut = cutToBytes(record.message, this.limits.maxMessageBytes);
      if (cut !== record.message) {
        record.message = cut;
        if (!counted && record.malformed !== true) {
          record.malformed = true;
          this.malformed++;
        }
      }
    }
    if (record.withoutText === true) this.withoutText++;
    if (this.packer === undefined) this.records.push(record);
    else this.packer.add(record);
  }
}

export function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Uint8Array) && !(value instanceof Date);
}

/** 1-based line and byte offset of a string index, for error answers (computed only on error). */
export function locate(text: string, index: number): { byteOffset: number; line: number } {
  let line = 1;
  for (let at = text.indexOf('\n'); at >= 0 && at < index; at = text.indexOf('\n', at + 1)) line++;
  return { byteOffset: Buffer.byteLength(text.slice(0, index)), line };
}
