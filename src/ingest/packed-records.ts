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
import { journalPosition, SERVICE_NAMES, streamKeyOf, type LogRecord } from './record.js';

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
const FIRST_CAPACITY = 1024;
const FIRST_MESSAGE_BYTES = 256 * 1024;
/** A scratch set grown past this (a body of 8 MiB of messages or more) is let go after use, not kept. */
const MAX_KEPT_MESSAGE_BYTES = 16 * 1024 * 1024;

/**
 * Where a packer writes: columns and message bytes that grow as needed, kept from one body to the
 * next (a new set per body left the arrays it outgrew for the decoding thread's next full
 * collection: tens of MiB of RSS under load).
 *
 * A body's columns leave in the scratch set itself when it uses at least a third of it (transferred,
 * no copy), and the main thread hands the set back once the engine has taken the batch
 * (PackedBatch#release): copying the columns out at their exact size cost ~0.45 s of the decoding
 * thread per 1M records (fresh pages, with glibc's mmap threshold kept at 128 KiB), and the copies
 * were then garbage on the main thread, promoted while the batch waited, until a full collection.
 * A set less used is copied out as before and stays (LENT_AT_MOST_TIMES_USED).
 */
class Scratch {
  constructor(
    public time: Float64Array,
    public sourceUs: Float64Array,
    public position: Float64Array,
    public flags: Uint8Array,
    public origin: Uint32Array,
    public messageEnds: Uint32Array,
    public messageBytes: Buffer,
  ) {}

  /** A set made of columnBuffers() that came back; undefined when they are not such a set. */
  static fromBuffers(buffers: readonly unknown[]): Scratch | undefined {
    if (buffers.length !== 7 || !buffers.every((buffer) => buffer instanceof ArrayBuffer && buffer.byteLength > 0)) return undefined;
    const [time, sourceUs, position, flags, origin, messageEnds, messageBytes] = buffers as ArrayBuffer[];
    const scratch = new Scratch(
      new Float64Array(time as ArrayBuffer),
      new Float64Array(sourceUs as ArrayBuffer),
      new Float64Array(position as ArrayBuffer),
      new Uint8Array(flags as ArrayBuffer),
      new Uint32Array(origin as ArrayBuffer),
      new Uint32Array(messageEnds as ArrayBuffer),
      Buffer.from(messageBytes as ArrayBuffer),
    );
    const capacity = scratch.time.length;
    return [scratch.sourceUs, scratch.position, scratch.flags, scratch.origin, scratch.messageEnds].every((column) => column.length === capacity) ? scratch : undefined;
  }

  growColumns(): void {
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

  growMessageBytes(used: number, atLeast: number): void {
    const bigger = Buffer.allocUnsafeSlow(Math.max(this.messageBytes.length * 2, used + atLeast));
    this.messageBytes.copy(bigger, 0, 0, used);
    this.messageBytes = bigger;
  }
}

type Columns = Pick<PackedRecords, 'time' | 'sourceUs' | 'position' | 'flags' | 'origin' | 'messageEnds' | 'messageBytes'>;

/** The buffers under a scratch set's or a batch's columns, in the order Scratch.fromBuffers() reads them. */
function columnBuffers(columns: Columns): ArrayBuffer[] {
  return [columns.time, columns.sourceUs, columns.position, columns.flags, columns.origin, columns.messageEnds, columns.messageBytes].map((column) => column.buffer as ArrayBuffer);
}

/** Scratch sets not in use: one per packer at work at once, and the ones back from the main thread. */
const spareScratch: Scratch[] = [];
/**
 * A set is lent when the body uses at least this share of it (else its columns are copied out): a
 * batch then holds at most 3 bytes per byte it carries, less than the engine's queue counts for it
 * (two per message character and 96 per record).
 */
const LENT_AT_MOST_TIMES_USED = 3;
/** Sets kept for reuse: a few batches are in the engine's queue at once; more come back only after a burst. */
const MAX_SPARE_SCRATCH = 6;

/**
 * Messages' share of a body's bytes, roughly: ~35% in a Vector JSON array of journald records
 * (field names and the other fields are the rest), more in leaner formats. Only sizes a new
 * scratch set: a body whose messages need more grows it.
 */
const MESSAGE_SHARE = 0.4;
/** Bytes a record takes in a body, about (a short journald record in JSON): sizes a new set's columns, which grow if there are more. */
const RECORD_BYTES_AT_LEAST = 256;

/** A new set for a body of about `messageBytes` of messages. */
function newScratch(messageBytes: number): Scratch {
  // Whole quarter MiB and whole thousands of records, not powers of two: a set sized for a body must be lent for it.
  const bytes = Math.max(FIRST_MESSAGE_BYTES, Math.min(MAX_KEPT_MESSAGE_BYTES, Math.ceil(messageBytes / FIRST_MESSAGE_BYTES) * FIRST_MESSAGE_BYTES));
  const capacity = Math.max(FIRST_CAPACITY, Math.ceil(bytes / MESSAGE_SHARE / RECORD_BYTES_AT_LEAST / FIRST_CAPACITY) * FIRST_CAPACITY);
  return new Scratch(
    new Float64Array(capacity),
    new Float64Array(capacity),
    new Float64Array(capacity),
    new Uint8Array(capacity),
    new Uint32Array(capacity),
    new Uint32Array(capacity),
    Buffer.allocUnsafeSlow(bytes),
  );
}

/** Keeps a scratch set the main thread has finished with (PackedBatch#release), for the next body. */
export function takeBackScratch(buffers: readonly unknown[]): void {
  const scratch = Scratch.fromBuffers(buffers);
  if (scratch !== undefined && spareScratch.length < MAX_SPARE_SCRATCH && scratch.messageBytes.length <= MAX_KEPT_MESSAGE_BYTES) spareScratch.push(scratch);
}

/** Empties the spare sets; their buffers, to be freed (nothing uses them after). */
export function takeAllSpareScratch(): ArrayBuffer[] {
  return spareScratch.splice(0).flatMap((scratch) => columnBuffers(scratch));
}

/** Collects records into columns one at a time; `finish()` hands them over with what to transfer. */
export class RecordPacker {
  private count = 0;
  private readonly scratch: Scratch;
  private messageLength = 0;
  private messagesAscii = true;
  private readonly origins: Array<[string, string, string]> = [];
  private readonly originIndex = new Map<string, number>();
  private readonly oddMessages: Array<[number, string]> = [];
  private readonly fields: Array<[number, Record<string, unknown>]> = [];

  /**
   * `expectedBytes`: the body's size once its content coding is undone, when known. The spare set
   * that fits its messages best is taken (one the body uses enough of is lent, not copied), or a
   * new one sized for them, so that it does not grow from nothing a doubling at a time.
   */
  constructor(expectedBytes?: number) {
    const messages = expectedBytes === undefined ? 0 : Math.ceil(expectedBytes * MESSAGE_SHARE);
    let best = -1;
    for (let index = 0; index < spareScratch.length; index++) {
      const size = (spareScratch[index] as Scratch).messageBytes.length;
      // Not one much larger than the body needs: it would be copied out, not lent (finish()).
      if (size >= messages && size <= 2 * messages + FIRST_MESSAGE_BYTES && (best < 0 || size < (spareScratch[best] as Scratch).messageBytes.length)) best = index;
    }
    this.scratch = best >= 0 ? (spareScratch.splice(best, 1)[0] as Scratch) : newScratch(messages);
  }

  get size(): number {
    return this.count;
  }

  add(record: LogRecord): void {
    const index = this.count;
    const scratch = this.scratch;
    if (index === scratch.time.length) scratch.growColumns();
    scratch.time[index] = record.time;
    scratch.sourceUs[index] = record.sourceUs ?? Number.NaN;
    scratch.position[index] = record.position ?? Number.NaN;
    scratch.flags[index] = (record.malformed === true ? MALFORMED : 0) | (record.withoutText === true ? WITHOUT_TEXT : 0);
    let origin = this.originIndex.get(record.stream);
    if (origin === undefined) {
      origin = this.origins.length;
      this.originIndex.set(record.stream, origin);
      this.origins.push([record.host, record.service, record.pid]);
    }
    scratch.origin[index] = origin;
    this.addMessage(index, record.message);
    if (record.fields !== undefined) this.fields.push([index, record.fields]);
    this.count = index + 1;
  }

  /**
   * The columns, in buffers of their own to transfer; the packer is done with. `lent` is true when
   * they are the scratch set itself (hand its buffers back with takeBackScratch), false when they
   * were copied out at their exact size.
   */
  finish(): { packed: PackedRecords; transfer: ArrayBuffer[]; lent: boolean } {
    const { count, scratch } = this;
    const lend = count >= scratch.time.length / LENT_AT_MOST_TIMES_USED && this.messageLength >= scratch.messageBytes.length / LENT_AT_MOST_TIMES_USED;
    const cut = <T extends Float64Array | Uint32Array | Uint8Array>(column: T, length: number): T => (lend ? (column.subarray(0, length) as T) : (column.slice(0, length) as T));
    const packed: PackedRecords = {
      count,
      time: cut(scratch.time, count),
      sourceUs: cut(scratch.sourceUs, count),
      position: cut(scratch.position, count),
      flags: cut(scratch.flags, count),
      origin: cut(scratch.origin, count),
      origins: this.origins,
      // A copy in an ArrayBuffer of its own: a small Buffer may be a view of Node's shared pool.
      messageBytes: lend ? scratch.messageBytes.subarray(0, this.messageLength) : new Uint8Array(scratch.messageBytes.subarray(0, this.messageLength)),
      messageEnds: cut(scratch.messageEnds, count),
      messagesAscii: this.messagesAscii,
      oddMessages: this.oddMessages,
      fields: this.fields,
    };
    if (!lend && scratch.messageBytes.length <= MAX_KEPT_MESSAGE_BYTES) spareScratch.push(scratch);
    return { packed, transfer: columnBuffers(packed), lent: lend };
  }

  private addMessage(index: number, message: string): void {
    const scratch = this.scratch;
    if (!message.isWellFormed()) {
      this.oddMessages.push([index, message]);
      scratch.messageEnds[index] = this.messageLength;
      return;
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    if (this.messageLength + message.length * 3 > scratch.messageBytes.length) scratch.growMessageBytes(this.messageLength, message.length * 3);
    const written = scratch.messageBytes.write(message, this.messageLength, 'utf8');
    if (written !== message.length) this.messagesAscii = false;
    this.messageLength += written;
    scratch.messageEnds[index] = this.messageLength;
  }
}

/**
 * A decoding thread's batch on the main thread, unpacked a slice at a time as the engine takes it.
 * Unpacked at once, a body's records waited in the engine's queue (tens of thousands at full rate)
 * long enough to be promoted: half of what the main heap promoted per line (186 of 368 bytes).
 */
export class PackedBatch {
  readonly length: number;
  /** Its journal batch, once journaled: each record unpacked gets it and its journal position. */
  seq: number | undefined;
  private readonly streams: Array<{ host: string; service: string; pid: string; stream: string }>;
  private readonly bytes: Buffer;
  private readonly encoding: 'latin1' | 'utf8';
  private readonly oddMessages: Map<number, string> | undefined;
  private readonly fields: Map<number, Record<string, unknown>> | undefined;
  private released = false;

  /** `giveBack` takes the columns' buffers when they are a decoding thread's scratch set, lent (RecordPacker#finish). */
  constructor(
    private readonly packed: PackedRecords,
    private readonly giveBack?: (buffers: ArrayBuffer[]) => void,
  ) {
    this.length = packed.count;
    this.streams = packed.origins.map(([host, service, pid]) => ({ host, service: SERVICE_NAMES.of(service), pid, stream: streamKeyOf(host, service, pid) }));
    this.bytes = Buffer.from(packed.messageBytes.buffer, packed.messageBytes.byteOffset, packed.messageBytes.byteLength);
    this.encoding = packed.messagesAscii ? 'latin1' : 'utf8';
    this.oddMessages = packed.oddMessages.length === 0 ? undefined : new Map(packed.oddMessages);
    this.fields = packed.fields.length === 0 ? undefined : new Map(packed.fields);
  }

  /** Records [start, end), with the same properties as the decoder made (absent ones left out). */
  slice(start = 0, end = this.length): LogRecord[] {
    // Its columns may be in another thread by now: reading them would make empty records silently.
    if (this.released) throw new Error('a PackedBatch was read after release()');
    const packed = this.packed;
    const from = Math.max(0, start);
    const to = Math.min(this.length, end);
    const records = new Array<LogRecord>(Math.max(0, to - from));
    let messageStart = from === 0 ? 0 : (packed.messageEnds[from - 1] as number);
    const seq = this.seq;
    for (let index = from; index < to; index++) {
      const origin = this.streams[packed.origin[index] as number] as { host: string; service: string; pid: string; stream: string };
      const messageEnd = packed.messageEnds[index] as number;
      const time = packed.time[index] as number;
      const message = this.oddMessages?.get(index) ?? this.bytes.toString(this.encoding, messageStart, messageEnd);
      messageStart = messageEnd;
      const sourceUs = packed.sourceUs[index] as number;
      const position = packed.position[index] as number;
      const flags = packed.flags[index] as number;
      const fields = this.fields?.get(index);
      // The usual journaled record (a source clock, nothing else optional) made whole at once: added
      // one by one, its last three properties went to an array of their own (40 bytes a record, and
      // a held record lives two seconds).
      if (seq !== undefined && sourceUs === sourceUs && position !== position && flags === 0 && fields === undefined) {
        records[index - from] = { time, host: origin.host, service: origin.service, pid: origin.pid, stream: origin.stream, message, sourceUs, seq, journalPos: journalPosition(seq, index) };
        continue;
      }
      const record: LogRecord = { time, host: origin.host, service: origin.service, pid: origin.pid, stream: origin.stream, message };
      if (sourceUs === sourceUs) record.sourceUs = sourceUs;
      if (position === position) record.position = position;
      if ((flags & MALFORMED) !== 0) record.malformed = true;
      if ((flags & WITHOUT_TEXT) !== 0) record.withoutText = true;
      if (fields !== undefined) record.fields = fields;
      if (seq !== undefined) {
        record.seq = seq;
        record.journalPos = journalPosition(seq, index);
      }
      records[index - from] = record;
    }
    return records;
  }

  /** Its columns are a decoding thread's scratch set, to go back to it on release(). */
  get lent(): boolean {
    return this.giveBack !== undefined;
  }

  /**
   * Every record has been unpacked and nothing will read the batch again: lent columns go back to
   * their decoding thread for its next body. Nothing is read from the batch after this.
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.giveBack?.(columnBuffers(this.packed));
  }

  /** Records without a text field leakwatch reads. */
  get withoutTextCount(): number {
    let count = 0;
    const flags = this.packed.flags;
    for (let index = 0; index < flags.length; index++) if (((flags[index] as number) & WITHOUT_TEXT) !== 0) count++;
    return count;
  }

  /** The shipper's object of the first record without a text field, if any. */
  firstFieldsWithoutText(): Record<string, unknown> | undefined {
    const flags = this.packed.flags;
    for (let index = 0; index < flags.length; index++) if (((flags[index] as number) & WITHOUT_TEXT) !== 0) return this.fields?.get(index);
    return undefined;
  }

  /**
   * The length of record `index`'s message and stream key, for size estimates: the message's UTF-8
   * bytes, which are its characters where it is ASCII and at least as many elsewhere.
   */
  messageAndStreamLength(index: number): number {
    const packed = this.packed;
    const start = index === 0 ? 0 : (packed.messageEnds[index - 1] as number);
    const odd = this.oddMessages?.get(index);
    const message = odd !== undefined ? odd.length : (packed.messageEnds[index] as number) - start;
    return message + (this.streams[packed.origin[index] as number] as { stream: string }).stream.length;
  }

  /** The shipper's object of record `index`, where it was kept. */
  fieldsAt(index: number): Record<string, unknown> | undefined {
    return this.fields?.get(index);
  }
}

/** Records as a body decoded to: an array, or a decoding thread's columns unpacked as the engine takes them. */
export type RecordBatch = LogRecord[] | PackedBatch;

/** Every record of a batch as an array (unpacking a packed one whole), for whoever needs them all at once. */
export function allRecords(batch: RecordBatch): LogRecord[] {
  return batch instanceof PackedBatch ? batch.slice() : batch;
}
