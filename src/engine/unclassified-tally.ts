/**
 * The multi-line records no rule classified, by the shape of their first line: where the next
 * rule is to be found. `leakwatch analyze` prints the commonest at the end of its table; the
 * server keeps one for GET /unclassified and the web page. Bounded: at most `capacity` shapes are
 * kept; a new shape arriving when full replaces the least counted one (the least recently seen
 * among equals), so the shapes seen most often stay while one-offs come and go.
 */
import { parseLineHeader } from '../ingest/line-layout.js';
import type { Group } from './group.js';

/** Characters of a first line read to shape it: the longest header and the 160 characters kept. */
const SHAPED_CHARS = 512;

/** Lines and characters per line kept of one example record. */
const EXAMPLE_LINES = 12;
const EXAMPLE_LINE_CHARS = 300;

export interface UnclassifiedShape {
  /** The first line without what differs between occurrences (see firstLineShape). */
  first_line: string;
  count: number;
  /** Event time of the latest occurrence, ISO-8601. */
  last_seen: string;
  /** Where the example was logged. */
  host: string;
  service: string;
  /** The first lines of the first occurrence kept, as logged (each cut at 300 characters). */
  example: string[];
}

interface Entry {
  count: number;
  lastSeen: number;
  /** Order of the last update, to break ties between equal counts. */
  touched: number;
  host: string;
  service: string;
  /**
   * Cut to EXAMPLE_LINES × EXAMPLE_LINE_CHARS: the whole record would unbound the tally. Taken
   * once per shape: copying it at every occurrence cost the ingest path more than the count.
   */
  example: string[];
}

/** The first lines of a record as the tally keeps them (idempotent: an example's example is itself). */
export function exampleOf(group: Pick<Group, 'lines'>): string[] {
  return group.lines.slice(0, EXAMPLE_LINES).map((line) => (line.length > EXAMPLE_LINE_CHARS ? `${line.slice(0, EXAMPLE_LINE_CHARS - 1)}…` : line));
}

/**
 * A first line without what differs between occurrences: the log header's time and thread (its
 * message is kept), numbers, hex ids and addresses.
 */
export function firstLineShape(line: string): string {
  // The shape keeps 160 characters: no need to read past a header and those (lines reach 16 KiB).
  const head = line.length > SHAPED_CHARS ? line.slice(0, SHAPED_CHARS) : line;
  const text = parseLineHeader(head)?.text ?? head;
  // One pass, so that the 0 of a hex id already replaced is not taken for a number.
  const shape = text.replace(/0x[0-9a-f]+|\d+/gi, (found) => (found.length > 1 && (found[1] === 'x' || found[1] === 'X') ? '0x…' : 'N'));
  return shape.length > 160 ? `${shape.slice(0, 159)}…` : shape;
}

export class UnclassifiedTally {
  /** Unclassified multi-line records seen. */
  total = 0;
  /** Shapes dropped to make room (their counts start again if they come back). */
  evicted = 0;
  private readonly byShape = new Map<string, Entry>();
  private updates = 0;

  constructor(readonly capacity = 1000) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`unclassified tally: capacity must be a positive whole number, got ${capacity}`);
  }

  /** Distinct shapes kept now. */
  get distinct(): number {
    return this.byShape.size;
  }

  add(group: Group): void {
    if (group.lines.length < 2) return;
    this.addShaped(firstLineShape(group.lines[0] as string), group);
  }

  /**
   * A record of two lines or more whose shape was taken where it closed (analyze's shards run on
   * other threads and send the shape with the record's first lines, exampleOf()).
   */
  addShaped(shape: string, group: Pick<Group, 'time' | 'host' | 'service' | 'lines'>): void {
    this.total++;
    const touched = ++this.updates;
    const entry = this.byShape.get(shape);
    if (entry) {
      entry.count++;
      entry.touched = touched;
      if (group.time > entry.lastSeen) entry.lastSeen = group.time;
      return;
    }
    if (this.byShape.size >= this.capacity) this.evictOne();
    this.byShape.set(shape, { count: 1, lastSeen: group.time, touched, host: group.host, service: group.service, example: exampleOf(group) });
  }

  private evictOne(): void {
    let victim: string | undefined;
    let least: Entry | undefined;
    for (const [shape, entry] of this.byShape) {
      if (!least || entry.count < least.count || (entry.count === least.count && entry.touched < least.touched)) {
        victim = shape;
        least = entry;
      }
    }
    if (victim !== undefined) {
      this.byShape.delete(victim);
      this.evicted++;
    }
  }

  /** Most frequent first; a stable sort keeps equal counts in first-seen order. */
  private sorted(): Array<[string, Entry]> {
    return [...this.byShape.entries()].sort((a, b) => b[1].count - a[1].count);
  }

  /** The commonest first-line shapes, most frequent first (ties in first-seen order). */
  commonest(limit: number): Array<{ firstLine: string; count: number }> {
    return this.sorted()
      .slice(0, limit)
      .map(([firstLine, entry]) => ({ firstLine, count: entry.count }));
  }

  /** The commonest shapes with an example each, for GET /unclassified. */
  shapes(limit: number): UnclassifiedShape[] {
    return this.sorted()
      .slice(0, limit)
      .map(([firstLine, entry]) => ({
        first_line: firstLine,
        count: entry.count,
        last_seen: new Date(entry.lastSeen).toISOString(),
        host: entry.host,
        service: entry.service,
        example: entry.example,
      }));
  }
}
