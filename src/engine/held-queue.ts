/**
 * A stream's records held for the reorder window, leaving in source order (equal keys in arrival
 * order). Records arrive as runs already in source order: a shipper's batch is in order, and a batch
 * that lost a race with the next one is an in-order run that starts before the newer one's end.
 * Each run is an array with a moving head, at no cost per record; the front is the earliest of the
 * few run heads, so a late batch costs one comparison per run per record instead of a heap's log(n)
 * walk. Past MAX_RUNS runs (records arriving in no order at all) the rest go to a binary heap, which
 * bounds the work per record whatever the input.
 */
import type { LogRecord } from '../ingest/record.js';

/** `comesBefore(a, b)`: a is earlier than b in source order. */
export type SourceOrder = (record: LogRecord, other: LogRecord) => boolean;

/** Runs kept before records go to the heap: each costs one comparison per departure. */
const MAX_RUNS = 8;
/** A run's taken front is cut off once it is this long and half of the run. */
const RUN_COMPACT_AT = 1024;

/** Records in source order, as parallel arrays (no object per record), taken from `head` on. */
interface Run {
  records: LogRecord[];
  /** Wall-clock ms after which each record may be grouped. */
  dues: number[];
  /** Arrival counter of each record: the order among records with equal keys. */
  arrivals: number[];
  head: number;
}

const STALE = null;

/** A record that arrived in no run's order, in the heap. */
interface Entry {
  record: LogRecord;
  due: number;
  arrival: number;
}

export class HeldQueue {
  private readonly runs: Run[] = [];
  private readonly heap: Entry[] = [];
  private count = 0;
  private arrivals = 0;
  private lastInsertedDue = Number.NEGATIVE_INFINITY;
  /** frontRun()'s answer until the next insert or shift (release asks firstDue() then shift() for each record); STALE when unknown. */
  private front: Run | undefined | typeof STALE = STALE;

  constructor(private readonly comesBefore: SourceOrder) {}

  get size(): number {
    return this.count;
  }

  /** When the front record may be grouped; +Infinity when the queue is empty. */
  firstDue(): number {
    const run = this.frontRun();
    if (run !== undefined) return run.dues[run.head] as number;
    return this.heap[0]?.due ?? Number.POSITIVE_INFINITY;
  }

  /** The due time of the record that arrived last (the latest: due times follow arrival); -Infinity when empty. */
  lastDue(): number {
    return this.count > 0 ? this.lastInsertedDue : Number.NEGATIVE_INFINITY;
  }

  /** Adds a record; returns whether it is now the front (earlier than everything held). */
  insert(record: LogRecord, due: number): boolean {
    const arrival = this.arrivals++;
    this.lastInsertedDue = due;
    this.count++;
    this.front = STALE;
    // The run it extends: the one with the latest tail not after it, so that runs stay few.
    let target: Run | undefined;
    for (const run of this.runs) {
      const tail = run.records[run.records.length - 1] as LogRecord;
      if (this.comesBefore(record, tail)) continue;
      if (target === undefined || this.comesBefore(target.records[target.records.length - 1] as LogRecord, tail)) target = run;
    }
    if (target === undefined && this.runs.length >= MAX_RUNS) {
      const entry: Entry = { record, due, arrival };
      this.heapPush(entry);
      return this.heap[0] === entry && this.frontRun() === undefined;
    }
    if (target === undefined) {
      target = { records: [], dues: [], arrivals: [], head: 0 };
      this.runs.push(target);
    }
    target.records.push(record);
    target.dues.push(due);
    target.arrivals.push(arrival);
    // Not before its run's tail: it is the front only when it is alone in its run and before every other head.
    return target.records.length - target.head === 1 && this.frontRun() === target;
  }

  /** Removes and returns the front record (the caller checked size or firstDue()). */
  shift(): LogRecord {
    const run = this.frontRun();
    this.front = STALE;
    this.count--;
    if (run === undefined) return (this.heapPop() as Entry).record;
    const record = run.records[run.head] as LogRecord;
    run.head++;
    if (run.head === run.records.length) {
      this.runs.splice(this.runs.indexOf(run), 1);
    } else if (run.head >= RUN_COMPACT_AT && run.head * 2 >= run.records.length) {
      // Taking from the front moves only the head; the arrays are cut back once half of them is taken.
      run.records = run.records.slice(run.head);
      run.dues = run.dues.slice(run.head);
      run.arrivals = run.arrivals.slice(run.head);
      run.head = 0;
    }
    return record;
  }

  /** Adds the journal positions of the held records to `into` (a checkpoint's: no iterator per record). */
  collectJournalPositions(into: number[]): void {
    for (const run of this.runs) {
      const records = run.records;
      for (let index = run.head; index < records.length; index++) {
        const position = (records[index] as LogRecord).journalPos;
        if (position !== undefined) into.push(position);
      }
    }
    for (const entry of this.heap) if (entry.record.journalPos !== undefined) into.push(entry.record.journalPos);
  }

  *values(): IterableIterator<LogRecord> {
    for (const run of this.runs) for (let index = run.head; index < run.records.length; index++) yield run.records[index] as LogRecord;
    for (const entry of this.heap) yield entry.record;
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
    for (let index = 1; index < runs.length; index++) {
      const run = runs[index] as Run;
      if (this.headBefore(run.records[run.head] as LogRecord, run.arrivals[run.head] as number, front.records[front.head] as LogRecord, front.arrivals[front.head] as number)) front = run;
    }
    const top = this.heap[0];
    if (top !== undefined && this.headBefore(top.record, top.arrival, front.records[front.head] as LogRecord, front.arrivals[front.head] as number)) return undefined;
    return front;
  }

  private headBefore(record: LogRecord, arrival: number, other: LogRecord, otherArrival: number): boolean {
    if (this.comesBefore(record, other)) return true;
    if (this.comesBefore(other, record)) return false;
    return arrival < otherArrival;
  }

  private before(a: Entry, b: Entry): boolean {
    return this.headBefore(a.record, a.arrival, b.record, b.arrival);
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
      const child = right < heap.length && this.before(heap[right] as Entry, heap[left] as Entry) ? right : left;
      if (!this.before(heap[child] as Entry, last)) break;
      heap[at] = heap[child] as Entry;
      at = child;
    }
    heap[at] = last;
    return top;
  }
}
