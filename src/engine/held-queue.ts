/**
 * A stream's records held for the reorder window, leaving in source order (equal keys in arrival
 * order). Records nearly always arrive in order: those go to the end of a run, an array with a
 * moving head, at no cost per record. The rest, such as a whole batch that lost a race with the
 * next one, go to a binary heap, so that a batch arriving late costs log(n) per record instead of a
 * walk over everything held after it. The front is the earlier of the run's head and the heap's top.
 */
import type { LogRecord } from '../ingest/record.js';

/** `comesBefore(a, b)`: a is earlier than b in source order. */
export type SourceOrder = (record: LogRecord, other: LogRecord) => boolean;

/** A record that arrived out of order, in the heap. */
interface Entry {
  record: LogRecord;
  /** Wall-clock ms after which the record may be grouped. */
  due: number;
  /** Arrival counter: the order among records with equal keys. */
  arrival: number;
}

export class HeldQueue {
  // The run as parallel arrays: no object per record on the common path.
  private runRecords: LogRecord[] = [];
  private runDues: number[] = [];
  private runArrivals: number[] = [];
  private head = 0;
  private readonly heap: Entry[] = [];
  private arrivals = 0;
  private lastInsertedDue = Number.NEGATIVE_INFINITY;

  constructor(private readonly comesBefore: SourceOrder) {}

  get size(): number {
    return this.runRecords.length - this.head + this.heap.length;
  }

  /** When the front record may be grouped; +Infinity when the queue is empty. */
  firstDue(): number {
    if (this.runFirst()) return this.runDues[this.head] as number;
    return this.heap[0]?.due ?? Number.POSITIVE_INFINITY;
  }

  /** The due time of the record that arrived last (the latest: due times follow arrival); -Infinity when empty. */
  lastDue(): number {
    return this.size > 0 ? this.lastInsertedDue : Number.NEGATIVE_INFINITY;
  }

  /** Adds a record; returns whether it is now the front (earlier than everything held). */
  insert(record: LogRecord, due: number): boolean {
    const arrival = this.arrivals++;
    this.lastInsertedDue = due;
    const records = this.runRecords;
    const runEmpty = records.length === this.head;
    if (runEmpty || !this.comesBefore(record, records[records.length - 1] as LogRecord)) {
      records.push(record);
      this.runDues.push(due);
      this.runArrivals.push(arrival);
      // Not before the run's tail: it is the front only when it is alone in the run and before the heap's top.
      return runEmpty && this.runFirst();
    }
    const entry: Entry = { record, due, arrival };
    this.heapPush(entry);
    return this.heap[0] === entry && !this.runFirst();
  }

  /** Removes and returns the front record (the caller checked size or firstDue()). */
  shift(): LogRecord {
    if (!this.runFirst()) return this.heapPop().record;
    const record = this.runRecords[this.head] as LogRecord;
    this.head++;
    if (this.head === this.runRecords.length) {
      this.runRecords = [];
      this.runDues = [];
      this.runArrivals = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.runRecords.length) {
      // Taking from the front moves only the head; the arrays are cut back once half of them is taken.
      this.runRecords = this.runRecords.slice(this.head);
      this.runDues = this.runDues.slice(this.head);
      this.runArrivals = this.runArrivals.slice(this.head);
      this.head = 0;
    }
    return record;
  }

  /** Adds the journal positions of the held records to `into` (a checkpoint's: no iterator per record). */
  collectJournalPositions(into: number[]): void {
    const records = this.runRecords;
    for (let index = this.head; index < records.length; index++) {
      const position = (records[index] as LogRecord).journalPos;
      if (position !== undefined) into.push(position);
    }
    for (const entry of this.heap) if (entry.record.journalPos !== undefined) into.push(entry.record.journalPos);
  }

  *values(): IterableIterator<LogRecord> {
    for (let index = this.head; index < this.runRecords.length; index++) yield this.runRecords[index] as LogRecord;
    for (const entry of this.heap) yield entry.record;
  }

  /** Whether the front is the run's head (false when the run is empty). */
  private runFirst(): boolean {
    if (this.head === this.runRecords.length) return false;
    const top = this.heap[0];
    if (top === undefined) return true;
    const record = this.runRecords[this.head] as LogRecord;
    if (this.comesBefore(record, top.record)) return true;
    if (this.comesBefore(top.record, record)) return false;
    return (this.runArrivals[this.head] as number) < top.arrival;
  }

  private before(a: Entry, b: Entry): boolean {
    if (this.comesBefore(a.record, b.record)) return true;
    if (this.comesBefore(b.record, a.record)) return false;
    return a.arrival < b.arrival;
  }

  private heapPush(entry: Entry): void {
    const heap = this.heap;
    let at = heap.length;
    heap.push(entry);
    while (at > 0) {
      const parent = (at - 1) >> 1;
      const above = heap[parent] as Entry;
      if (!this.before(entry, above)) break;
      heap[at] = above;
      at = parent;
    }
    heap[at] = entry;
  }

  private heapPop(): Entry {
    const heap = this.heap;
    const top = heap[0] as Entry;
    const last = heap.pop() as Entry;
    if (heap.length === 0) return top;
    let at = 0;
    for (;;) {
      const left = 2 * at + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && this.before(heap[right] as Entry, heap[left] as Entry) ? right : left;
      if (!this.before(heap[child] as Entry, last)) break;
      heap[at] = heap[child] as Entry;
      at = child;
    }
    heap[at] = last;
    return top;
  }
}
