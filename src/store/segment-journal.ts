/**
 * The ingest journal's batches, appended to segment files in the data folder (`journal/`). A batch
 * is a request body as received (or, for batches built in process, its records as JSON), written
 * before ingest answers 200: the operating system has it from then on, as it has a SQLite commit
 * with synchronous=NORMAL. Ingest writes on libuv's thread pool, one write at a time in seq order
 * (`appendInOrder`), so that a 10 MB body or a slow disk does not hold the event loop and a crash can
 * only tear the newest entry. Kept in SQLite, every body went through the
 * write-ahead log and then into the database file (each byte written twice), and the prune left
 * pages to reuse or vacuum; here a prune deletes whole files.
 *
 * Entry layout (little-endian): magic "LWJ1", seq (f64), receivedAt (f64), kind (u8: 0 body,
 * 1 records), content type and content encoding (u16 length + UTF-8 each, 0xffff for none), payload
 * length (u32), payload, CRC-32 of everything before it (u32). A segment is named after its first
 * seq. An entry cut short by a crash (never answered 200) is cut off at the next start.
 */
import { closeSync, existsSync, ftruncate, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, unlinkSync, writev, writevSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { LogRecord } from '../ingest/record.js';
import type { JournalBatch, JournalContent } from './store.js';

const MAGIC = 0x314a574c; // "LWJ1"
const NONE = 0xffff;
const KIND_BODY = 0;
const KIND_RECORDS = 1;
/** A new segment is started past this size, so that a prune can delete most of the journal. */
const SEGMENT_BYTES = 64 * 1024 * 1024;
const SEGMENT_SUFFIX = '.seg';

const writevAsync = promisify(writev);
const writevAt = async (fd: number, parts: Buffer[], position: number): Promise<number> => (await writevAsync(fd, parts, position)).bytesWritten;
const truncateTo = promisify(ftruncate);

interface Segment {
  firstSeq: number;
  path: string;
}

/** A batch encoded for the journal. */
interface Entry {
  seq: number;
  parts: Buffer[];
  bytes: number;
}

function shortWrite(): Error {
  return Object.assign(new Error('no space left on device (short write)'), { code: 'ENOSPC' });
}

export class SegmentJournal {
  private readonly segments: Segment[] = [];
  private fd: number | undefined;
  private size = 0;
  /** The newest seq handed out; with writes in flight, newer than the newest written. */
  private lastSeq: number;
  /** The end of the chain of writes in flight (appendInOrder); each starts when the one before has ended. */
  private writes: Promise<void> = Promise.resolve();
  private writesInFlight = 0;
  private closed = false;
  /** The segment a replay read last, parsed. */
  private lastRead: { path: string; entries: JournalBatch[] } | undefined;

  /** `seqFloor`: the newest seq known from elsewhere (the checkpoint), below which no new batch may be numbered. */
  constructor(
    private readonly dir: string,
    seqFloor = 0,
    private readonly segmentBytes = SEGMENT_BYTES,
  ) {
    mkdirSync(dir, { recursive: true });
    for (const name of readdirSync(dir)) {
      if (!name.endsWith(SEGMENT_SUFFIX)) continue;
      const firstSeq = Number(name.slice(0, -SEGMENT_SUFFIX.length));
      if (Number.isSafeInteger(firstSeq)) this.segments.push({ firstSeq, path: join(dir, name) });
    }
    this.segments.sort((a, b) => a.firstSeq - b.firstSeq);
    this.lastSeq = Math.max(seqFloor, this.repairLastSegment());
  }

  /** No batch is numbered at or below `seq` from now on (seqs a checkpoint or an older journal used). */
  raiseFloor(seq: number): void {
    this.lastSeq = Math.max(this.lastSeq, seq);
  }

  /** The newest seq handed out (or the floor it started from). */
  get newestSeq(): number {
    return this.lastSeq;
  }

  /**
   * Appends a batch now, on the calling thread; returns its seq. For start-up (batches moved from an
   * older journal, with their seqs) and tools: ingest uses appendInOrder. Throws the file system's
   * error (ENOSPC...) with nothing half-written left behind.
   */
  append(receivedAt: number, content: JournalContent, seq = this.lastSeq + 1): number {
    if (this.writesInFlight > 0) throw new Error('journal: a write is in flight; appendInOrder keeps the order');
    if (seq <= this.lastSeq) throw new Error(`journal seq ${seq} is not after ${this.lastSeq}`);
    const entry = this.entryFor(receivedAt, content, seq);
    const fd = this.fdFor(entry);
    try {
      let written = writevSync(fd, entry.parts, this.size);
      // writev may write less than asked (a signal, a nearly full disk): finish or fail.
      while (written < entry.bytes) {
        const more = writevSync(fd, [Buffer.concat(entry.parts).subarray(written)], this.size + written);
        if (more === 0) throw shortWrite();
        written += more;
      }
    } catch (error) {
      // A partial entry would hide every later one from a replay: cut it off.
      try {
        ftruncateSync(fd, this.size);
      } catch {
        // The next start cuts it off instead (its CRC does not match).
      }
      throw error;
    }
    this.wrote(entry);
    return seq;
  }

  /**
   * Appends a batch on the thread pool; resolves with its seq once the operating system has it. The
   * seq is taken now: batches are written, and their promises settle, in the order of the calls. A
   * failed write (ENOSPC...) is cut off and rejects; the writes after it go on.
   */
  appendInOrder(receivedAt: number, content: JournalContent): Promise<number> {
    if (this.closed) return Promise.reject(new Error('journal: closed'));
    const entry = this.entryFor(receivedAt, content, this.lastSeq + 1);
    this.lastSeq = entry.seq;
    this.writesInFlight++;
    const done = this.writes.then(() => this.writeEntry(entry));
    this.writes = done.then(
      () => this.writeEnded(),
      () => this.writeEnded(),
    );
    return done.then(() => entry.seq);
  }

  private async writeEntry(entry: Entry): Promise<void> {
    const fd = this.fdFor(entry);
    try {
      let written = await writevAt(fd, entry.parts, this.size);
      while (written < entry.bytes) {
        const more = await writevAt(fd, [Buffer.concat(entry.parts).subarray(written)], this.size + written);
        if (more === 0) throw shortWrite();
        written += more;
      }
    } catch (error) {
      try {
        await truncateTo(fd, this.size);
      } catch {
        // The next start cuts it off instead (its CRC does not match).
      }
      throw error;
    }
    this.wrote(entry);
  }

  private writeEnded(): void {
    this.writesInFlight--;
    // close() came while writes were in flight: the descriptor is closed after the last of them.
    if (this.closed && this.writesInFlight === 0) this.closeFile();
  }

  private entryFor(receivedAt: number, content: JournalContent, seq: number): Entry {
    const parts = encodeEntry(seq, receivedAt, content);
    return { seq, parts, bytes: parts.reduce((sum, part) => sum + part.length, 0) };
  }

  /** The descriptor the entry goes to: a new segment when the current one is full. */
  private fdFor(entry: Entry): number {
    if (this.fd === undefined || (this.size > 0 && this.size + entry.bytes > this.segmentBytes)) this.startSegment(entry.seq);
    return this.fd as number;
  }

  private wrote(entry: Entry): void {
    this.size += entry.bytes;
    this.lastSeq = Math.max(this.lastSeq, entry.seq);
    // The segment a replay read has grown.
    this.lastRead = undefined;
  }

  /**
   * Batches with seq > afterSeq, oldest first, at most `limit`. A replay reads forward a few at a
   * time: the segment last read is kept parsed (its bodies are views into it), not read again.
   */
  after(afterSeq: number, limit: number): JournalBatch[] {
    const out: JournalBatch[] = [];
    for (let index = 0; index < this.segments.length && out.length < limit; index++) {
      const segment = this.segments[index] as Segment;
      const next = this.segments[index + 1];
      if (next !== undefined && next.firstSeq <= afterSeq + 1) continue;
      for (const batch of this.entriesOf(segment)) {
        if (batch.seq <= afterSeq) continue;
        out.push(batch);
        if (out.length >= limit) break;
      }
    }
    return out;
  }

  /** Deletes the segments whose batches all have seq <= throughSeq; the active one is started anew when it is all done. */
  prune(throughSeq: number): void {
    while (this.segments.length > 0) {
      const [first, second] = this.segments as [Segment, Segment | undefined];
      const lastOfFirst = second === undefined ? this.lastSeq : second.firstSeq - 1;
      if (lastOfFirst > throughSeq) return;
      if (second === undefined) {
        // A write in flight goes to this segment's descriptor (lastSeq counts it, so this is defensive).
        if (this.writesInFlight > 0) return;
        // The active segment, all done: the next batch opens a new one.
        if (this.fd !== undefined) closeSync(this.fd);
        this.fd = undefined;
        this.size = 0;
      }
      unlinkSync(first.path);
      this.segments.shift();
      if (this.lastRead?.path === first.path) this.lastRead = undefined;
    }
  }

  /** Bytes the segments take. */
  bytes(): number {
    let total = 0;
    for (const segment of this.segments) if (existsSync(segment.path)) total += statSync(segment.path).size;
    return total;
  }

  /** Closes the segment file; writes in flight finish first (their descriptor must not be reused under them). */
  close(): void {
    this.closed = true;
    if (this.writesInFlight === 0) this.closeFile();
  }

  private closeFile(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private entriesOf(segment: Segment): JournalBatch[] {
    if (this.lastRead?.path === segment.path) return this.lastRead.entries;
    const entries = readEntries(readFileSync(segment.path)).entries;
    this.lastRead = { path: segment.path, entries };
    return entries;
  }

  private startSegment(firstSeq: number): void {
    if (this.fd !== undefined) closeSync(this.fd);
    const path = join(this.dir, `${String(firstSeq).padStart(16, '0')}${SEGMENT_SUFFIX}`);
    this.fd = openSync(path, 'w');
    this.size = 0;
    this.segments.push({ firstSeq, path });
  }

  /** Cuts a torn entry off the newest segment (a crash in the middle of a write); returns the newest seq. */
  private repairLastSegment(): number {
    for (let index = this.segments.length - 1; index >= 0; index--) {
      const segment = this.segments[index] as Segment;
      const data = readFileSync(segment.path);
      const { entries, validBytes } = readEntries(data);
      if (validBytes < data.length) {
        const fd = openSync(segment.path, 'r+');
        try {
          ftruncateSync(fd, validBytes);
        } finally {
          closeSync(fd);
        }
      }
      const last = entries[entries.length - 1];
      if (last !== undefined) return last.seq;
      // Empty (or only a torn entry): it holds nothing.
      unlinkSync(segment.path);
      this.segments.splice(index, 1);
    }
    return 0;
  }
}

/** The batches whole in a journal folder, read without changing anything (for inspection while a server runs). */
export function readJournalDir(dir: string): JournalBatch[] {
  if (!existsSync(dir)) return [];
  const names = readdirSync(dir).filter((name) => name.endsWith(SEGMENT_SUFFIX)).sort();
  return names.flatMap((name) => readEntries(readFileSync(join(dir, name))).entries);
}

function encodeText(text: string | undefined): Buffer {
  if (text === undefined) {
    const none = Buffer.alloc(2);
    none.writeUInt16LE(NONE, 0);
    return none;
  }
  const bytes = Buffer.from(text, 'utf8');
  const length = Math.min(bytes.length, NONE - 1);
  const out = Buffer.alloc(2 + length);
  out.writeUInt16LE(length, 0);
  bytes.copy(out, 2, 0, length);
  return out;
}

function encodeEntry(seq: number, receivedAt: number, content: JournalContent): Buffer[] {
  const isBody = 'body' in content;
  const payload = isBody ? Buffer.from(content.body.body.buffer, content.body.body.byteOffset, content.body.body.byteLength) : Buffer.from(JSON.stringify(content.records));
  const head = Buffer.alloc(4 + 8 + 8 + 1);
  head.writeUInt32LE(MAGIC, 0);
  head.writeDoubleLE(seq, 4);
  head.writeDoubleLE(receivedAt, 12);
  head.writeUInt8(isBody ? KIND_BODY : KIND_RECORDS, 20);
  const types = Buffer.concat([encodeText(isBody ? content.body.contentType : undefined), encodeText(isBody ? content.body.contentEncoding : undefined)]);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(payload.length, 0);
  let crc = crc32(head);
  crc = crc32(types, crc);
  crc = crc32(length, crc);
  crc = crc32(payload, crc);
  const trailer = Buffer.alloc(4);
  trailer.writeUInt32LE(crc, 0);
  return [head, types, length, payload, trailer];
}

/** The complete entries of a segment, and where the last complete one ends. */
function readEntries(data: Buffer): { entries: JournalBatch[]; validBytes: number } {
  const entries: JournalBatch[] = [];
  let at = 0;
  for (;;) {
    const entry = readEntry(data, at);
    if (entry === undefined) return { entries, validBytes: at };
    entries.push(entry.batch);
    at = entry.end;
  }
}

function readText(data: Buffer, at: number): { text: string | undefined; end: number } | undefined {
  if (at + 2 > data.length) return undefined;
  const length = data.readUInt16LE(at);
  if (length === NONE) return { text: undefined, end: at + 2 };
  if (at + 2 + length > data.length) return undefined;
  return { text: data.toString('utf8', at + 2, at + 2 + length), end: at + 2 + length };
}

function readEntry(data: Buffer, start: number): { batch: JournalBatch; end: number } | undefined {
  if (start + 21 > data.length || data.readUInt32LE(start) !== MAGIC) return undefined;
  const seq = data.readDoubleLE(start + 4);
  const receivedAt = data.readDoubleLE(start + 12);
  const kind = data.readUInt8(start + 20);
  const contentType = readText(data, start + 21);
  if (contentType === undefined) return undefined;
  const contentEncoding = readText(data, contentType.end);
  if (contentEncoding === undefined || contentEncoding.end + 4 > data.length) return undefined;
  const length = data.readUInt32LE(contentEncoding.end);
  const payloadStart = contentEncoding.end + 4;
  const end = payloadStart + length + 4;
  if (end > data.length) return undefined;
  if (crc32(data.subarray(start, payloadStart + length)) !== data.readUInt32LE(payloadStart + length)) return undefined;
  const payload = data.subarray(payloadStart, payloadStart + length);
  const content: JournalBatch['content'] =
    kind === KIND_BODY
      ? { body: { body: payload, contentType: contentType.text, contentEncoding: contentEncoding.text } }
      : { records: JSON.parse(payload.toString('utf8')) as LogRecord[] };
  return { batch: { seq, receivedAt, content }, end };
}
