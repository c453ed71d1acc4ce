import { malformedRecord, recordFromObject, recordFromText, safeStringify } from '../normalize.js';
import type { LogRecord } from '../record.js';

/** What a body decodes to: every record, how many were kept as raw text, and how many had no text field. */
export interface DecodedBatch {
  records: LogRecord[];
  malformed: number;
  withoutText: number;
}

/** Collects one body's records; the formats share its rules for values that are not records. */
export class BatchBuilder {
  readonly records: LogRecord[] = [];
  malformed = 0;

  constructor(readonly receivedAtMs: number) {}

  /**
   * One decoded value: an object is a record, a string is a message (Vector's opt-in log namespace
   * sends bare strings), anything else is kept as raw text and counted as malformed.
   */
  addValue(value: unknown, transportTimeUs?: number): void {
    if (isPlainRecord(value)) {
      this.records.push(recordFromObject(value, this.receivedAtMs, transportTimeUs));
    } else if (typeof value === 'string') {
      const record = recordFromText(value, this.receivedAtMs);
      if (record !== null) this.records.push(record);
    } else {
      this.addMalformed(safeStringify(value));
    }
  }

  addMalformed(text: string): void {
    this.records.push(malformedRecord(text, this.receivedAtMs));
    this.malformed++;
  }

  addTextLine(line: string): void {
    const record = recordFromText(line, this.receivedAtMs);
    if (record !== null) this.records.push(record);
  }

  result(): DecodedBatch {
    let withoutText = 0;
    for (const record of this.records) if (record.withoutText === true) withoutText++;
    return { records: this.records, malformed: this.malformed, withoutText };
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
