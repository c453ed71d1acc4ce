/**
 * A stream's records held for the reorder window, leaving in source order: the source clock
 * (LogRecord.sourceUs), then the position in the source, equal keys in arrival order. A record
 * without a source clock keeps its place in arrival order: nothing that arrives after it is put
 * before it.
 *
 * Records arrive as runs already in source order: a shipper's batch is in order, and a batch that
 * lost a race with the next one is an in-order run that starts before the newer one's end. Each
 * run keeps its records as columns in chunks, a message array and one array of unboxed numbers
 * each, so that a held record is its message and 56 bytes, not an object the garbage collector
 * copies and traces while it waits (at full rate the window holds 200,000 of them). The front is
 * the earliest of the few run heads: a late batch costs one comparison per run per record instead
 * of a heap's log(n) walk. Past MAX_RUNS runs (records arriving in no order at all) the rest go to a binary heap,
 * which bounds the work per record whatever the input. A stream that holds a single record (a
 * quiet stream) has no queue: the grouper keeps that record as it came.
 *
 * A record comes back as the grouper reads it: its time, origin, message, source clock, position,
 * journal position and header flag (`shift`); anything else it carried is not kept.
 */
import type { LogRecord } from '../ingest/record.js';
import type { PositionList } from './position-list.js';

/** Runs kept before records go to the heap: each costs one comparison per departure. */
const MAX_RUNS = 8;
/**
 * Records per chunk of a run: a chunk's numbers (7 per record) stay under V8's large-object size
 * (128 KiB), so that holding more records adds chunks instead of copying one growing array (a
 * flood held 28,000 records per stream: 1.5 MB arrays copied at each growth, and again when their
 * taken front was cut off). A run's later chunks are made whole, once, and taken ones go back to
 * SPARE_CHUNKS for the next: grown from empty, a chunk's arrays allocated three times their size
 * (250 bytes a record at full rate).
 */
const CHUNK_RECORDS = 1024;
/** Taken chunks kept for reuse (each ~72 KiB of numbers and its message bytes): about as many as a flood starts between two releases. */
const MAX_SPARE_CHUNKS = 32;
/** A taken chunk's message bytes to start with: 1,024 journald lines of ~100 bytes; it grows for longer ones. */
const CHUNK_MESSAGE_BYTES = 128 * 1024;
/** A grown chunk keeps its message bytes for reuse up to this size (a burst of long lines must not stay resident). */
const MAX_KEPT_MESSAGE_BYTES = 1024 * 1024;

// A held record's numbers in its run's `numbers`, STRIDE of them per record; NaN where it has none.
const TIME = 0;
const SOURCE_US = 1;
const POSITION = 2;
const JOURNAL_POS = 3;
const DUE = 4;
const ARRIVAL = 5;
/** LogRecord.header: HEADER_UNKNOWN (not tested), HEADER_YES or HEADER_NO. */
const HEADER = 6;
/** Where its message is in a taken chunk's `bytes` (NaN: in `messages`, as a string). */
const MESSAGE_START = 7;
const MESSAGE_END = 8;
const STRIDE = 9;
const HEADER_UNKNOWN = 0;
const HEADER_YES = 1;
const HEADER_NO = 2;

const STALE = null;

/** LogRecord.header as its number in a run's `numbers`. */
function headerCode(record: LogRecord): number {
  return record.header === undefined ? HEADER_UNKNOWN : record.header ? HEADER_YES : HEADER_NO;
}

/**
 * A taken chunk keeps its messages as UTF-8 in `bytes`, not as strings. At full rate the window
 * holds ~220,000 records for two seconds: as strings, every message was promoted to the old
 * generation and died there, which grew it by 100 MiB between full collections (peak RSS ~80 MiB
 * higher than with a 4 MiB window). As bytes in buffers that go round, the strings made on arrival
 * and on release both die young. A run's own first chunk (most runs: a quiet stream holds a record
 * or two) keeps strings, which cost no buffer.
 */
interface Chunk {
  /** Messages as strings: all of a run's own chunk's; in a taken chunk, only those UTF-8 cannot carry (a lone surrogate). */
  messages: string[];
  /** STRIDE numbers per record; only numbers, so V8 keeps them unboxed. */
  numbers: number[];
  /** Records written (the arrays of a spare chunk are longer). */
  filled: number;
  /** A taken chunk's messages, one after the other; undefined in a run's own chunk. */
  bytes: Buffer | undefined;
  /** Bytes of `bytes` written. */
  byteLength: number;
  /** Whether some message in `bytes` is not ASCII (then read back as UTF-8, else byte for character). */
  utf8: boolean;
}

const spareChunks: Chunk[] = [];

/** A chunk of CHUNK_RECORDS to fill: a spare one, or new arrays of that size. */
function takeChunk(): Chunk {
  return (
    spareChunks.pop() ?? {
      messages: new Array<string>(CHUNK_RECORDS),
      numbers: new Array<number>(CHUNK_RECORDS * STRIDE).fill(Number.NaN),
      filled: 0,
      bytes: Buffer.allocUnsafeSlow(CHUNK_MESSAGE_BYTES),
      byteLength: 0,
      utf8: false,
    }
  );
}

/** A taken chunk, for the next takeChunk(); its messages are let go. */
function giveBack(chunk: Chunk): void {
  if (spareChunks.length >= MAX_SPARE_CHUNKS || chunk.bytes === undefined || chunk.bytes.length > MAX_KEPT_MESSAGE_BYTES) return;
  (chunk.messages as Array<string | undefined>).fill(undefined);
  spareChunks.push({ messages: chunk.messages, numbers: chunk.numbers, filled: 0, bytes: chunk.bytes, byteLength: 0, utf8: false });
}

/** Writes a message into a taken chunk's bytes (or its strings, when UTF-8 cannot carry it); sets its MESSAGE_START and MESSAGE_END. */
function writeMessage(chunk: Chunk, bytes: Buffer, index: number, message: string): void {
  const at = index * STRIDE;
  if (!message.isWellFormed()) {
    chunk.messages[index] = message;
    chunk.numbers[at + MESSAGE_START] = Number.NaN;
    chunk.numbers[at + MESSAGE_END] = Number.NaN;
    return;
  }
  let target = bytes;
  // UTF-8 takes at most 3 bytes per UTF-16 unit.
  if (chunk.byteLength + message.length * 3 > target.length) {
    target = Buffer.allocUnsafeSlow(Math.max(target.length * 2, chunk.byteLength + message.length * 3));
    bytes.copy(target, 0, 0, chunk.byteLength);
    chunk.bytes = target;
  }
  const written = target.write(message, chunk.byteLength, 'utf8');
  if (written !== message.length) chunk.utf8 = true;
  chunk.numbers[at + MESSAGE_START] = chunk.byteLength;
  chunk.byteLength += written;
  chunk.numbers[at + MESSAGE_END] = chunk.byteLength;
}

/** The message of record `index` of a chunk. */
function messageAt(chunk: Chunk, index: number): string {
  const bytes = chunk.bytes;
  if (bytes === undefined) return chunk.messages[index] as string;
  const at = index * STRIDE;
  const start = chunk.numbers[at + MESSAGE_START] as number;
  if (start !== start) return chunk.messages[index] as string;
  return bytes.toString(chunk.utf8 ? 'utf8' : 'latin1', start, chunk.numbers[at + MESSAGE_END] as number);
}

/**
 * Records in source order, taken from `head` of its own chunk, then from the `later` chunks. A run
 * is its first chunk (most hold a few records: 100,000 quiet streams hold one each) so that it
 * costs no more objects than one chunk.
 */
interface Run extends Chunk {
  head: number;
  size: number;
  /** Its arrays are a taken chunk's (full size), to give back once read: not the run's own grown ones. */
  fromChunk: boolean;
  /** Chunks after its own, oldest first; undefined while it has none. */
  later: Chunk[] | undefined;
}

/** The journal positions of a chunk's records from `from` on (NaN: not journaled). */
function pushJournalPositions(chunk: Chunk, from: number, into: PositionList): void {
  const numbers = chunk.numbers;
  for (let at = from * STRIDE + JOURNAL_POS; at < chunk.filled * STRIDE; at += STRIDE) {
    const position = numbers[at] as number;
    if (position === position) into.push(position);
  }
}

/** A run's chunks, its own first. */
function chunksOf(run: Run): readonly Chunk[] {
  return run.later === undefined ? [run] : [run, ...run.later];
}

/** The chunk holding a run's last record (a run in the list is never empty). */
function lastChunk(run: Run): Chunk {
  return run.later === undefined ? run : (run.later[run.later.length - 1] as Chunk);
}

/** A record that arrived in no run's order, in the heap. */
interface Entry {
  record: LogRecord;
  due: number;
  arrival: number;
}

/** The record with the properties it does not have left out, as the decoder makes records. */
function withoutAbsent(record: LogRecord): LogRecord {
  if (record.sourceUs === undefined) delete record.sourceUs;
  if (record.position === undefined) delete record.position;
  if (record.journalPos === undefined) delete record.journalPos;
  if (record.header === undefined) delete record.header;
  return record;
}

/** Whether (sourceUs, position) a comes before b; NaN (none) never comes before anything. */
function keyBefore(sourceUs: number, position: number, otherSourceUs: number, otherPosition: number): boolean {
  return sourceUs < otherSourceUs || (sourceUs === otherSourceUs && position < otherPosition);
}

/** The heap of every queue that never needed one (nearly all): never pushed to, heapPush() gives a queue its own. */
const NO_ENTRIES: Entry[] = [];
/** The runs of every queue that has made none yet. */
const NO_RUNS: Run[] = [];

/**
 * A queue's arrays are made at the size they need: 100,000 streams each holding one record while it
 * waits out the window (then letting the queue go) made arrays grown for 16 entries, 800 bytes a
 * stream that lived long enough to be promoted, for ~350 at their size.
 */
export class HeldQueue {
  private runs: Run[] = NO_RUNS;
  private heap: Entry[] = NO_ENTRIES;
  /**
   * The host, service, pid and stream every record of the queue shares: the first record it held.
   * A long-lived queue keeps that one record alive: its host, service and pid strings are the
   * stream's own, its message is one line more.
   */
  private origin: LogRecord | undefined;
  private count = 0;
  private arrivals = 0;
  private lastInsertedDue = Number.NEGATIVE_INFINITY;
  /** frontRun()'s answer until the next insert or shift (release asks firstDue() then shift() for each record); STALE when unknown. */
  private front: Run | undefined | typeof STALE = STALE;

  get size(): number {
    return this.count;
  }

  /** When the front record may be grouped; +Infinity when the queue is empty. */
  firstDue(): number {
    const run = this.frontRun();
    if (run !== undefined) return run.numbers[run.head * STRIDE + DUE] as number;
    return this.heap[0]?.due ?? Number.POSITIVE_INFINITY;
  }

  /** The due time of the record that arrived last (the latest: due times follow arrival); -Infinity when empty. */
  lastDue(): number {
    return this.count > 0 ? this.lastInsertedDue : Number.NEGATIVE_INFINITY;
  }

  /** Adds a record of this queue's stream; returns whether it is now the front (earlier than everything held). */
  insert(record: LogRecord, due: number): boolean {
    this.origin ??= record;
    const arrival = this.arrivals++;
    this.lastInsertedDue = due;
    this.count++;
    this.front = STALE;
    const sourceUs = record.sourceUs ?? Number.NaN;
    const position = record.position ?? Number.NaN;
    // The run it extends: the one with the latest tail not after it, so that runs stay few. Nearly
    // always there is one run and the record goes after its tail.
    const runs = this.runs;
    if (runs.length === 1 && this.heap.length === 0) {
      const run = runs[0] as Run;
      const last = lastChunk(run);
      const numbers = last.numbers;
      const tail = (last.filled - 1) * STRIDE;
      if (!keyBefore(sourceUs, position, numbers[tail + SOURCE_US] as number, numbers[tail + POSITION] as number)) {
        this.append(run, record, sourceUs, position, due, arrival);
        return run.size === 1;
      }
    }
    let target: Run | undefined;
    let targetSourceUs = 0;
    let targetPosition = 0;
    for (const run of runs) {
      const last = lastChunk(run);
      const numbers = last.numbers;
      const tail = (last.filled - 1) * STRIDE;
      const tailSourceUs = numbers[tail + SOURCE_US] as number;
      const tailPosition = numbers[tail + POSITION] as number;
      if (keyBefore(sourceUs, position, tailSourceUs, tailPosition)) continue;
      if (target === undefined || keyBefore(targetSourceUs, targetPosition, tailSourceUs, tailPosition)) {
        target = run;
        targetSourceUs = tailSourceUs;
        targetPosition = tailPosition;
      }
    }
    if (target === undefined && this.runs.length >= MAX_RUNS) {
      const entry: Entry = { record, due, arrival };
      this.heapPush(entry);
      return this.heap[0] === entry && this.frontRun() === undefined;
    }
    if (target === undefined) {
      target = this.newRun(record, sourceUs, position, due, arrival);
      if (this.runs === NO_RUNS) this.runs = [target];
      else this.runs.push(target);
      return this.frontRun() === target;
    }
    this.append(target, record, sourceUs, position, due, arrival);
    // Not before its run's tail: it is the front only when it is alone in its run and before every other head.
    return target.size === 1 && this.frontRun() === target;
  }

  /** A run of one record, its arrays of that size (append() grows them when more follow). */
  private newRun(record: LogRecord, sourceUs: number, position: number, due: number, arrival: number): Run {
    // In STRIDE order: TIME, SOURCE_US, POSITION, JOURNAL_POS, DUE, ARRIVAL, HEADER, MESSAGE_START, MESSAGE_END.
    const numbers = [record.time, sourceUs, position, record.journalPos ?? Number.NaN, due, arrival, headerCode(record), Number.NaN, Number.NaN];
    return { messages: [record.message], numbers, filled: 1, bytes: undefined, byteLength: 0, utf8: false, head: 0, size: 1, fromChunk: false, later: undefined };
  }

  private append(run: Run, record: LogRecord, sourceUs: number, position: number, due: number, arrival: number): void {
    let chunk = lastChunk(run);
    if (chunk.filled >= CHUNK_RECORDS) {
      chunk = takeChunk();
      (run.later ??= []).push(chunk);
    }
    run.size++;
    const index = chunk.filled++;
    const numbers = chunk.numbers;
    const at = index * STRIDE;
    // In STRIDE order: a run's own arrays grow as they are written, and must not get holes.
    numbers[at + TIME] = record.time;
    numbers[at + SOURCE_US] = sourceUs;
    numbers[at + POSITION] = position;
    numbers[at + JOURNAL_POS] = record.journalPos ?? Number.NaN;
    numbers[at + DUE] = due;
    numbers[at + ARRIVAL] = arrival;
    numbers[at + HEADER] = headerCode(record);
    const bytes = chunk.bytes;
    if (bytes !== undefined) return writeMessage(chunk, bytes, index, record.message);
    chunk.messages[index] = record.message;
    numbers[at + MESSAGE_START] = Number.NaN;
    numbers[at + MESSAGE_END] = Number.NaN;
  }

  /** Removes and returns the front record (the caller checked size or firstDue()). */
  shift(): LogRecord {
    const record = {} as LogRecord;
    this.shiftInto(record);
    return withoutAbsent(record);
  }

  /**
   * Removes the front record and writes it into `into`, every property the grouper reads (absent
   * ones as undefined): the grouper releases records one at a time into one object instead of
   * making an object per record (150 bytes a line at full rate).
   */
  shiftInto(into: LogRecord): void {
    const run = this.frontRun();
    this.front = STALE;
    this.count--;
    if (run === undefined) {
      const record = (this.heapPop() as Entry).record;
      into.time = record.time;
      into.host = record.host;
      into.service = record.service;
      into.pid = record.pid;
      into.stream = record.stream;
      into.message = record.message;
      into.sourceUs = record.sourceUs;
      into.position = record.position;
      into.journalPos = record.journalPos;
      into.header = record.header;
      return;
    }
    this.writeRecord(run, run.head, into);
    run.head++;
    run.size--;
    if (run.head === run.filled) {
      if (run.fromChunk) giveBack(run);
      const next = run.later?.shift();
      if (next === undefined) {
        this.runs.splice(this.runs.indexOf(run), 1);
      } else {
        run.messages = next.messages;
        run.numbers = next.numbers;
        run.filled = next.filled;
        run.bytes = next.bytes;
        run.byteLength = next.byteLength;
        run.utf8 = next.utf8;
        run.fromChunk = true;
        run.head = 0;
        if (run.later?.length === 0) run.later = undefined;
      }
    }
  }

  /** Adds the journal positions of the held records to `into` (a checkpoint's: no iterator per record). */
  collectJournalPositions(into: PositionList): void {
    // Indexed loops: a checkpoint asks every holding stream once a second, too seldom for these
    // loops to be optimised, and an unoptimised for-of makes an object per element.
    const runs = this.runs;
    for (let at = 0; at < runs.length; at++) {
      const run = runs[at] as Run;
      pushJournalPositions(run, run.head, into);
      const later = run.later;
      if (later !== undefined) for (let chunk = 0; chunk < later.length; chunk++) pushJournalPositions(later[chunk] as Chunk, 0, into);
    }
    const heap = this.heap;
    for (let at = 0; at < heap.length; at++) {
      const position = (heap[at] as Entry).record.journalPos;
      if (position !== undefined) into.push(position);
    }
  }

  *values(): IterableIterator<LogRecord> {
    for (const run of this.runs) {
      for (const chunk of chunksOf(run)) {
        for (let index = chunk === run ? run.head : 0; index < chunk.filled; index++) yield this.recordAt(chunk, index);
      }
    }
    for (const entry of this.heap) yield entry.record;
  }

  private recordAt(chunk: Chunk, index: number): LogRecord {
    const record = {} as LogRecord;
    this.writeRecord(chunk, index, record);
    return withoutAbsent(record);
  }

  private writeRecord(chunk: Chunk, index: number, into: LogRecord): void {
    const numbers = chunk.numbers;
    const at = index * STRIDE;
    const origin = this.origin as LogRecord;
    into.time = numbers[at + TIME] as number;
    into.host = origin.host;
    into.service = origin.service;
    into.pid = origin.pid;
    into.stream = origin.stream;
    into.message = messageAt(chunk, index);
    const sourceUs = numbers[at + SOURCE_US] as number;
    into.sourceUs = sourceUs === sourceUs ? sourceUs : undefined;
    const position = numbers[at + POSITION] as number;
    into.position = position === position ? position : undefined;
    const journalPos = numbers[at + JOURNAL_POS] as number;
    into.journalPos = journalPos === journalPos ? journalPos : undefined;
    const header = numbers[at + HEADER] as number;
    into.header = header === HEADER_UNKNOWN ? undefined : header === HEADER_YES;
  }

  /** The run whose head is the front, or undefined when the front is the heap's top (or nothing is held). */
  private frontRun(): Run | undefined {
    if (this.front !== STALE) return this.front;
    this.front = this.findFrontRun();
    return this.front;
  }

  private findFrontRun(): Run | undefined {
    const runs = this.runs;
    let front = runs[0];
    if (front === undefined) return undefined;
    let frontAt = front.head * STRIDE;
    let frontNumbers = front.numbers;
    for (let index = 1; index < runs.length; index++) {
      const run = runs[index] as Run;
      const at = run.head * STRIDE;
      const numbers = run.numbers;
      if (this.before(numbers[at + SOURCE_US] as number, numbers[at + POSITION] as number, numbers[at + ARRIVAL] as number, frontNumbers[frontAt + SOURCE_US] as number, frontNumbers[frontAt + POSITION] as number, frontNumbers[frontAt + ARRIVAL] as number)) {
        front = run;
        frontAt = at;
        frontNumbers = numbers;
      }
    }
    const top = this.heap[0];
    if (top !== undefined) {
      if (this.before(top.record.sourceUs ?? Number.NaN, top.record.position ?? Number.NaN, top.arrival, frontNumbers[frontAt + SOURCE_US] as number, frontNumbers[frontAt + POSITION] as number, frontNumbers[frontAt + ARRIVAL] as number)) return undefined;
    }
    return front;
  }

  /** Source order, then arrival order. */
  private before(sourceUs: number, position: number, arrival: number, otherSourceUs: number, otherPosition: number, otherArrival: number): boolean {
    if (keyBefore(sourceUs, position, otherSourceUs, otherPosition)) return true;
    if (keyBefore(otherSourceUs, otherPosition, sourceUs, position)) return false;
    return arrival < otherArrival;
  }

  private entryBefore(a: Entry, b: Entry): boolean {
    return this.before(a.record.sourceUs ?? Number.NaN, a.record.position ?? Number.NaN, a.arrival, b.record.sourceUs ?? Number.NaN, b.record.position ?? Number.NaN, b.arrival);
  }

  private heapPush(entry: Entry): void {
    if (this.heap === NO_ENTRIES) this.heap = [];
    const heap = this.heap;
    let at = heap.length;
    heap.push(entry);
    while (at > 0) {
      const parent = (at - 1) >> 1;
      const above = heap[parent] as Entry;
      if (!this.entryBefore(entry, above)) break;
      heap[at] = above;
      at = parent;
    }
    heap[at] = entry;
  }

  private heapPop(): Entry | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    let at = 0;
    for (;;) {
      const left = 2 * at + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && this.entryBefore(heap[right] as Entry, heap[left] as Entry) ? right : left;
      if (!this.entryBefore(heap[child] as Entry, last)) break;
      heap[at] = heap[child] as Entry;
      at = child;
    }
    heap[at] = last;
    return top;
  }
}
