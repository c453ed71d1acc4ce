/**
 * Records as columns, for handing a decoded batch from a decoding thread to the main one: a
 * structured clone of 30,000 record objects costs the receiving thread about as much as decoding
 * them did, while typed arrays move without a copy and each origin (host, service, pid) is sent
 * once.
 *
 * The decoding thread packs each record as the decoder makes it (RecordPacker), messages as UTF-8
 * into one growing buffer. Nothing of a record then outlives its own decoding step there: before,
 * a body's records and messages were all alive until the body was done, so the young generation's
 * collections copied each of them twice and the rest was left for the old one to collect.
 */
import { streamKeyOf, type LogRecord } from './record.js';

export interface PackedRecords {
  count: number;
  time: Float64Array;
  /** NaN where the record has none. */
  sourceUs: Float64Array;
  /** NaN where the record has none. */
  position: Float64Array;
  /** MALFORMED | WITHOUT_TEXT */
  flags: Uint8Array;
  /** Index into `origins`. */
  origin: Uint32Array;
  origins: Array<[host: string, service: string, pid: string]>;
  /** Every message as UTF-8, one after the other; message i ends at messageEnds[i]. */
  messageBytes: Uint8Array;
  messageEnds: Uint32Array;
  /** Whether every message is ASCII (then read back byte for character, the fastest way). */
  messagesAscii: boolean;
  /** Messages UTF-8 cannot carry exactly (a lone surrogate, which JSON's `\ud800` can make): sent as strings. */
  oddMessages: Array<[index: number, message: string]>;
  /** The few records that keep the shipper's object (metrics snapshots, records without text). */
  fields: Array<[index: number, fields: Record<string, unknown>]>;
}

const MALFORMED = 1;
const WITHOUT_TEXT = 2;
const FIRST_CAPACITY = 256;
const FIRST_MESSAGE_BYTES = 64 * 1024;

/** Collects records into columns one at a time; `finish()` hands them over with what to transfer. */
export class RecordPacker {
  private count = 0;
  private time = new Float64Array(FIRST_CAPACITY);
  private sourceUs = new Float64Array(FIRST_CAPACITY);
  private position = new Float64Array(FIRST_CAPACITY);
  private flags = new Uint8Array(FIRST_CAPACITY);
  private origin = new Uint32Array(FIRST_CAPACITY);
  private messageEnds = new Uint32Array(FIRST_CAPACITY);
  // Its own ArrayBuffer (not Node's shared pool): it is transferred whole.
  private messageBytes = Buffer.allocUnsafeSlow(FIRST_MESSAGE_BYTES);
  private messageLength = 0;
  private messagesAscii = true;
  private readonly origins: Array<[string, string, string]> = [];
  private readonly originIndex = new Map<string, number>();
  private readonly oddMessages: Array<[number, string]> = [];
  private readonly fields: Array<[number, Record<string, unknown>]> = [];

  get size(): number {
    return this.count;
  }

  add(record: LogRecord): void {
    const index = this.count;
    if (index === this.time.length) this.growColumns();
    this.time[index] = record.time;
    this.sourceUs[index] = record.sourceUs ?? Number.NaN;
    this.position[index] = record.position ?? Number.NaN;
    this.flags[index] = (record.malformed === true ? MALFORMED : 0) | (record.withoutText === true ? WITHOUT_TEXT : 0);
    let origin = this.originIndex.get(record.stream);
    if (origin === undefined) {
      origin = this.origins.length;
      this.originIndex.set(record.stream, origin);
      this.origins.push([record.host, record.service, record.pid]);
    }
    this.origin[index] = origin;
    this.addMessage(index, record.message);
    if (record.fields !== undefined) this.fields.push([index, record.fields]);
    this.count = index + 1;
  }

  finish(): { packed: PackedRecords; transfer: ArrayBuffer[] } {
    const count = this.count;
    const packed: PackedRecords = {
      count,
      time: this.time.subarray(0, count),
      sourceUs: this.sourceUs.subarray(0, count),
      position: this.position.subarray(0, count),
      flags: this.flags.subarray(0, count),
      origin: this.origin.subarray(0, count),
      origins: this.origins,
      messageBytes: this.messageBytes.subarray(0, this.messageLength),
      messageEnds: this.messageEnds.subarray(0, count),
      messagesAscii: this.messagesAscii,
      oddMessages: this.oddMessages,
      fields: this.fields,
    };
    const transfer = [packed.time, packed.sourceUs, packed.position, packed.flags, packed.origin, packed.messageBytes, packed.messageEnds].map((column) => column.buffer as ArrayBuffer);
    return { packed, transfer };
  }

  private addMessage(index: number, message: string): void {
    if (!message.isWellFormed()) {
      this.oddMessages.push([index, message]);
      this.messageEnds[index] = this.messageLength;
      return;
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    if (this.messageLength + message.length * 3 > this.messageBytes.length) this.growMessageBytes(message.length * 3);
    const written = this.messageBytes.write(message, this.messageLength, 'utf8');
    if (written !== message.length) this.messagesAscii = false;
    this.messageLength += written;
    this.messageEnds[index] = this.messageLength;
  }

  private growColumns(): void {
    const capacity = this.time.length * 2;
    const grown = <T extends Float64Array | Uint32Array | Uint8Array>(column: T, make: (length: number) => T): T => {
      const bigger = make(capacity);
      bigger.set(column);
      return bigger;
    };
    this.time = grown(this.time, (length) => new Float64Array(length));
    this.sourceUs = grown(this.sourceUs, (length) => new Float64Array(length));
    this.position = grown(this.position, (length) => new Float64Array(length));
    this.flags = grown(this.flags, (length) => new Uint8Array(length));
    this.origin = grown(this.origin, (length) => new Uint32Array(length));
    this.messageEnds = grown(this.messageEnds, (length) => new Uint32Array(length));
  }

  private growMessageBytes(atLeast: number): void {
    const bigger = Buffer.allocUnsafeSlow(Math.max(this.messageBytes.length * 2, this.messageLength + atLeast));
    this.messageBytes.copy(bigger, 0, 0, this.messageLength);
    this.messageBytes = bigger;
  }
}

export function packRecords(records: readonly LogRecord[]): { packed: PackedRecords; transfer: ArrayBuffer[] } {
  const packer = new RecordPacker();
  for (const record of records) packer.add(record);
  return packer.finish();
}

/** The records again, with the same properties as the decoder made (absent ones left out). */
export function unpackRecords(packed: PackedRecords): LogRecord[] {
  const streams = packed.origins.map(([host, service, pid]) => ({ host, service, pid, stream: streamKeyOf(host, service, pid) }));
  const bytes = Buffer.from(packed.messageBytes.buffer, packed.messageBytes.byteOffset, packed.messageBytes.byteLength);
  const encoding = packed.messagesAscii ? 'latin1' : 'utf8';
  const records = new Array<LogRecord>(packed.count);
  let messageStart = 0;
  for (let index = 0; index < packed.count; index++) {
    const origin = streams[packed.origin[index] as number] as { host: string; service: string; pid: string; stream: string };
    const messageEnd = packed.messageEnds[index] as number;
    const record: LogRecord = {
      time: packed.time[index] as number,
      host: origin.host,
      service: origin.service,
      pid: origin.pid,
      stream: origin.stream,
      message: bytes.toString(encoding, messageStart, messageEnd),
    };
    messageStart = messageEnd;
    const sourceUs = packed.sourceUs[index] as number;
    if (sourceUs === sourceUs) record.sourceUs = sourceUs;
    const position = packed.position[index] as number;
    if (position === position) record.position = position;
    const flags = packed.flags[index] as number;
    if ((flags & MALFORMED) !== 0) record.malformed = true;
    if ((flags & WITHOUT_TEXT) !== 0) record.withoutText = true;
    records[index] = record;
  }
  for (const [index, message] of packed.oddMessages) (records[index] as LogRecord).message = message;
  for (const [index, fields] of packed.fields) (records[index] as LogRecord).fields = fields;
  return records;
}
