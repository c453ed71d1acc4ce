/**
 * One shard of an analyze run. Every shard reads every line (finding a line's stream costs little
 * beside grouping and classifying it), keeps the lines of its own streams and groups and classifies
 * those. Streams are dealt out by origin (host + service: a new pid of a process closes its old
 * pid's record, so a process's pids stay together) in the order they first appear, each to the
 * shard that has been given the fewest lines so far; every shard deals alike, so they agree without
 * talking. Each closed group carries the input line number of the record that closed it, which is
 * the order one grouper over all lines would have closed them in (the merge in analyze.ts).
 */
import type { Classifier } from '../engine/classifier.js';
import type { Group } from '../engine/group.js';
import { unclassifiedRecord, type GroupedRecord } from '../engine/grouped-record.js';
import type { GrouperConfig, OpenGroupLimits } from '../engine/grouper-config.js';
import { StreamGrouper } from '../engine/grouper.js';
import { exampleOf, firstLineShape } from '../engine/unclassified-tally.js';
import { isJournalctlMarkerAt, readJournalPrefix, type JournalPrefix } from '../ingest/journald-prefix.js';
import { recordFromLineAt, recordFromObject, recordFromText } from '../ingest/normalize.js';
import { streamKeyOf, type LogRecord } from '../ingest/record.js';
import { detached } from '../text/strings.js';

export interface ShardSpec {
  index: number;
  count: number;
  /** When the input is read: the year of yearless dates, and the time of lines that carry none. */
  receivedAt: number;
  /** Also hand on every group no rule classified (`--all`). */
  all: boolean;
  /** This shard's share of the open-group limits. */
  limits: OpenGroupLimits;
}

/** What a shard hands on, in close order: a record for the output, or the first-line shape of an unclassified trace. */
export type ShardItem = { order: number; record: GroupedRecord; shape?: undefined } | { order: number; shape: string; example: UnclassifiedExample; record?: undefined };

/** What the unclassified tally keeps of a record besides its shape. */
export type UnclassifiedExample = Pick<Group, 'time' | 'host' | 'service' | 'lines'>;

export interface ShardStats {
  /** Lines of the input, counted alike by every shard. */
  lines: number;
  /** Lines that looked like JSON but were not (kept as text), among this shard's own. */
  malformedJsonLines: number;
  groupsClosed: number;
  evictions: number;
  classifierErrors: number;
}

/** Decoded at a time: below V8's largest regular object, so that the string is allocated young. */
const DECODED_PIECE_BYTES = 64 * 1024;

/** Origins dealt out one by one; past this many, a new origin goes by a hash of its name (nothing more is kept). */
const MAX_DEALT_ORIGINS = 65_536;

export class AnalyzeShard {
  private readonly grouper: StreamGrouper;
  private items: ShardItem[] = [];
  private readonly records: LogRecord[] = [];
  private readonly uses: number[] = [];
  private lineSeq = 0;
  private malformedJsonLines = 0;
  private classifierErrors = 0;
  private fallbackService = 'stdin';
  private fallbackStream = streamKeyOf('', 'stdin', '');
  private fallbackOwner = -1;
  /** host → service → shard. */
  private readonly owners = new Map<string, Map<string, number>>();
  private dealt = 0;
  /** Read into for every line (readJournalPrefix): the parts it holds are copied into records. */
  private readonly prefix: JournalPrefix = { timeMs: undefined, zoned: false, host: '', service: '', pid: '', messageStart: 0 };
  /** Lines given to each shard so far (of origins dealt out one by one). */
  private readonly loads: number[];

  constructor(
    private readonly spec: ShardSpec,
    private readonly groupers: readonly GrouperConfig[],
    private readonly classifier: Classifier,
  ) {
    this.loads = new Array<number>(spec.count).fill(0);
    this.grouper = new StreamGrouper((group, order) => this.closed(group, order), { limits: spec.limits, ordered: true });
  }

  /**
   * The next input file. Lines of a raw file carry no host or process, so the file's name stands
   * in for the service: two raw files are two streams, never joined.
   */
  beginFile(fallbackService: string): void {
    this.fallbackService = fallbackService;
    this.fallbackStream = streamKeyOf('', fallbackService, '');
    this.fallbackOwner = -1;
  }

  /**
   * Whole lines as UTF-8 (the last one may lack its newline); returns what closed, in close order.
   * Decoded a piece at a time: a string of a megabyte would go straight to the old generation and
   * live until the next full collection, pieces die young.
   */
  processBytes(bytes: Buffer, length: number): ShardItem[] {
    let start = 0;
    while (start < length) {
      let end = start + DECODED_PIECE_BYTES >= length ? -1 : bytes.indexOf(10, start + DECODED_PIECE_BYTES);
      end = end < 0 || end >= length ? length : end + 1;
      this.processLines(bytes.toString('utf8', start, end));
      start = end;
    }
    return this.take();
  }

  /** Whole lines (the last one may lack its newline); returns what closed, in close order. */
  processText(text: string): ShardItem[] {
    this.processLines(text);
    return this.take();
  }

  private processLines(text: string): void {
    const records = this.records;
    const uses = this.uses;
    let count = 0;
    const length = text.length;
    let start = 0;
    while (start < length) {
      let end = text.indexOf('\n', start);
      if (end === -1) end = length;
      const seq = this.lineSeq++;
      const stop = end > start && text.charCodeAt(end - 1) === 13 ? end - 1 : end;
      if (stop > start) {
        const record = this.ownRecord(text, start, stop);
        if (record !== null) {
          records[count] = record;
          uses[count] = seq;
          count++;
        }
      }
      start = end + 1;
    }
    records.length = count;
    uses.length = count;
    if (count > 0) this.grouper.push(records, this.groupers, this.spec.receivedAt, uses);
    // The records are done with: let their lines go before the next piece comes.
    records.length = 0;
  }

  /** End of input: closes every open group (the most recently used stream first). */
  finish(): ShardItem[] {
    this.grouper.flush();
    return this.take();
  }

  stats(): ShardStats {
    const counters = this.grouper.counters;
    return {
      lines: this.lineSeq,
      malformedJsonLines: this.malformedJsonLines,
      groupsClosed: counters.groupsClosed,
      evictions: counters.evictions,
      classifierErrors: this.classifierErrors,
    };
  }

  private take(): ShardItem[] {
    const items = this.items;
    this.items = [];
    return items;
  }

  /**
   * The record of the line at [start, end) when it belongs to this shard's streams; null otherwise
   * or when it carries no log data. A line of another shard's is read in place and left there.
   */
  private ownRecord(text: string, start: number, end: number): LogRecord | null {
    const first = text.charCodeAt(start);
    const jsonStart = first === 123 ? 0 : jsonTextStart(text, start, first);
    if (jsonStart >= 0) return this.ownJsonRecord(text.slice(start, end), jsonStart);
    if (first === 45 && isJournalctlMarkerAt(text, start, end)) return null;
    const prefix = this.prefix;
    const found = readJournalPrefix(text, start, end, this.spec.receivedAt, prefix);
    if (!found || isAnonymous(prefix)) {
      if (this.fallbackOwnerIndex() !== this.spec.index) return null;
      const record = recordFromLineAt(text, start, end, found ? prefix : null, this.spec.receivedAt);
      record.service = this.fallbackService;
      record.stream = this.fallbackStream;
      return record;
    }
    if (this.spec.count > 1 && this.ownerOf(prefix.host, prefix.service) !== this.spec.index) return null;
    return recordFromLineAt(text, start, end, prefix, this.spec.receivedAt);
  }

  /**
   * `journalctl -o json` (one object per line), `json-seq` (each object after an RS) and `json-sse`
   * (`data: ` before each): every shard parses the object to learn its stream.
   */
  private ownJsonRecord(line: string, jsonStart: number): LogRecord | null {
    let parsed: unknown;
    try {
      parsed = JSON.parse(jsonStart === 0 ? line : line.slice(jsonStart));
    } catch {
      parsed = undefined;
    }
    let record: LogRecord | null;
    let malformed = false;
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
      record = recordFromObject(parsed as Record<string, unknown>, this.spec.receivedAt);
    } else {
      malformed = true;
      record = recordFromText(line, this.spec.receivedAt);
      if (record === null) return null;
    }
    let owner: number;
    if (record.host === '' && record.service === '' && record.pid === '') {
      owner = this.fallbackOwnerIndex();
      record.service = this.fallbackService;
      record.stream = this.fallbackStream;
    } else {
      owner = this.spec.count > 1 ? this.ownerOf(record.host, record.service) : 0;
    }
    if (owner !== this.spec.index) return null;
    if (malformed) this.malformedJsonLines++;
    return record;
  }

  private fallbackOwnerIndex(): number {
    if (this.spec.count === 1) return 0;
    if (this.fallbackOwner < 0) this.fallbackOwner = this.ownerOf('', this.fallbackService);
    this.loads[this.fallbackOwner] = (this.loads[this.fallbackOwner] as number) + 1;
    return this.fallbackOwner;
  }

  private ownerOf(host: string, service: string): number {
    let byService = this.owners.get(host);
    let owner = byService?.get(service);
    if (owner === undefined) {
      owner = this.deal(host, service);
      if (owner < 0) return hashOwner(host, service, this.spec.count);
      if (byService === undefined) {
        byService = new Map();
        // Keys outlive the chunk they were cut from: copies, so that they do not pin it.
        this.owners.set(detached(host), byService);
      }
      byService.set(detached(service), owner);
    }
    this.loads[owner] = (this.loads[owner] as number) + 1;
    return owner;
  }

  /** The shard with the fewest lines so far (the lowest index among equals); -1 once enough origins were dealt. */
  private deal(_host: string, _service: string): number {
    if (this.dealt >= MAX_DEALT_ORIGINS) return -1;
    this.dealt++;
    let best = 0;
    for (let index = 1; index < this.loads.length; index++) if ((this.loads[index] as number) < (this.loads[best] as number)) best = index;
    return best;
  }

  private closed(group: Group, order: number): void {
    let event: GroupedRecord | null;
    try {
      event = this.classifier.classify(group);
    } catch {
      // One bad group (or a rule bug) must not stop the run; it yields no event and is counted.
      this.classifierErrors++;
      return;
    }
    if (event !== null) {
      this.items.push({ order, record: event });
      return;
    }
    if (group.lines.length >= 2) {
      const example = { time: group.time, host: group.host, service: group.service, lines: exampleOf(group) };
      this.items.push({ order, shape: firstLineShape(group.lines[0] as string), example });
    }
    if (this.spec.all) this.items.push({ order, record: unclassifiedRecord(group) });
  }
}

/** Where, in the line at `start`, the JSON text of a `json-seq` or `json-sse` line starts; -1 when the line is none. */
function jsonTextStart(text: string, start: number, first: number): number {
  if (first === 0x1e) return text.charCodeAt(start + 1) === 123 ? 1 : -1;
  if (first === 100 /* d */ && text.startsWith('data: {', start)) return 6;
  return -1;
}

/** A prefix that names no host, service or pid (`Nov 03 17:36:55  WARN ...`): the file's name stands in. */
function isAnonymous(prefix: JournalPrefix): boolean {
  return prefix.host === '' && prefix.service === '' && prefix.pid === '';
}

function hashOwner(host: string, service: string, count: number): number {
  let hash = 0x811c9dc5;
  for (const text of [host, service]) {
    for (let index = 0; index < text.length; index++) hash = Math.imul(hash ^ text.charCodeAt(index), 0x01000193);
    hash = Math.imul(hash ^ 0x1f, 0x01000193);
  }
  return (hash >>> 0) % count;
}
