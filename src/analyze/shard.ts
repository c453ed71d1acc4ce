/**
 * One shard of an analyze run: groups and classifies the lines the router (router.ts) dealt to it,
 * the lines of its streams. Each closed group carries the input line number of the record that
 * closed it, which is the order one grouper over all lines would have closed them in (the merge
 * in analyze.ts).
 */
import type { Classifier } from '../engine/classifier.js';
import type { Group } from '../engine/group.js';
import { unclassifiedRecord, type GroupedRecord } from '../engine/grouped-record.js';
import type { GrouperConfig, OpenGroupLimits } from '../engine/grouper-config.js';
import { StreamGrouper } from '../engine/grouper.js';
import { exampleOf, firstLineShape } from '../engine/unclassified-tally.js';
import { streamKeyOf, type LogRecord } from '../ingest/record.js';
import { LineReader } from './lines.js';
import { LINE_FIELDS, NOT_PARSED, PARSED_BOOT, PARSED_HEADER, type ShardLines } from './router.js';
import type { ShardOutput } from './wire.js';

export interface ShardSpec {
  index: number;
  /** When the input is read: the year of yearless dates, and the time of lines that carry none. */
  receivedAt: number;
  /** Also hand on every group no rule classified (`--all`). */
  all: boolean;
  /** This shard's share of the open-group limits. */
  limits: OpenGroupLimits;
}

/** What the unclassified tally keeps of a record besides its shape. */
export type UnclassifiedExample = Pick<Group, 'time' | 'host' | 'service' | 'lines'>;

export interface ShardStats {
  /** Lines of the input, counted alike by every shard. */
  lines: number;
  /** Lines that looked like JSON but were not (kept as text), among this shard's own. */
  malformedJsonLines: number;
  /** Lines of `journalctl -o short-monotonic|short-delta` (no wall-clock time), among this shard's own. */
  bootTimeLines: number;
  groupsClosed: number;
  evictions: number;
  classifierErrors: number;
}

interface ParsedOrigin {
  host: string;
  service: string;
  pid: string;
  stream: string;
}

/** Records grouped at a time. */
const PUSH_RECORDS = 256;

export class AnalyzeShard {
  private readonly grouper: StreamGrouper;
  private readonly reader: LineReader;
  private readonly records: LogRecord[] = [];
  private readonly uses: number[] = [];
  private lines = 0;
  private classifierErrors = 0;
  private bootTimeLines = 0;
  /** The origins the router numbered, by number. */
  private readonly origins: ParsedOrigin[] = [];

  constructor(
    private readonly spec: ShardSpec,
    private readonly groupers: readonly GrouperConfig[],
    private readonly classifier: Classifier,
    /** Receives what closes, as it closes, in close order. */
    private readonly output: ShardOutput,
  ) {
    this.reader = new LineReader(spec.receivedAt);
    this.grouper = new StreamGrouper((group, order) => this.closed(group, order), { limits: spec.limits, ordered: true });
  }

  /** The next input file. */
  beginFile(fallbackService: string): void {
    this.reader.beginFile(fallbackService);
  }

  /**
   * This shard's lines of a chunk (router.ts's ShardLines) in `bytes` (read as latin1 when the chunk
   * is all ASCII); `firstLine` is the number in the whole input of the chunk's first line,
   * `chunkLines` how many lines the chunk has. What closes goes to the output.
   */
  processLines(bytes: Buffer, lines: ShardLines, firstLine: number, ascii: boolean, chunkLines: number): void {
    for (const [number, host, service, pid] of lines.origins) this.origins[number] = { host, service, pid, stream: streamKeyOf(host, service, pid) };
    const { ranges, times } = lines;
    const records = this.records;
    const uses = this.uses;
    let kept = 0;
    for (let index = 0; index < lines.count; index++) {
      const at = index * LINE_FIELDS;
      const start = ranges[at] as number;
      const stop = ranges[at + 1] as number;
      const parsed = ranges[at + 4] as number;
      let record: LogRecord | null;
      if (parsed === NOT_PARSED) {
        // A string of its own (not a slice of the chunk): nothing the line becomes part of pins the chunk.
        const line = bytes.toString(ascii ? 'latin1' : 'utf8', start, stop);
        record = this.reader.record(line, 0, line.length);
        if (record === null) continue;
      } else {
        // The router read the prefix and the header: only the message is decoded.
        const origin = this.origins[Math.floor(parsed / 4)] as ParsedOrigin;
        const time = times[index * 2] as number;
        const sourceUs = times[index * 2 + 1] as number;
        const message = bytes.toString('latin1', start + (ranges[at + 3] as number), stop);
        record = { time: Number.isNaN(time) ? this.spec.receivedAt : time, host: origin.host, service: origin.service, pid: origin.pid, stream: origin.stream, message };
        if (!Number.isNaN(sourceUs)) record.sourceUs = sourceUs;
        record.header = (parsed & PARSED_HEADER) !== 0;
        if ((parsed & PARSED_BOOT) !== 0) this.bootTimeLines++;
      }
      records[kept] = record;
      uses[kept] = firstLine + (ranges[at + 2] as number);
      kept++;
      if (kept === PUSH_RECORDS) {
        this.push(kept);
        kept = 0;
      }
    }
    if (kept > 0) this.push(kept);
    this.lines = firstLine + chunkLines;
  }

  /**
   * Groups the records gathered so far. Often, in small batches: a record is garbage once grouped,
   * and one that is still held when the young generation is collected is copied (and soon promoted).
   */
  private push(count: number): void {
    this.records.length = count;
    this.uses.length = count;
    this.grouper.push(this.records, this.groupers, this.spec.receivedAt, this.uses);
    this.records.length = 0;
  }

  /** End of input: closes every open group (the most recently used stream first). */
  finish(): void {
    this.grouper.flush();
  }

  stats(): ShardStats {
    const counters = this.grouper.counters;
    return {
      lines: this.lines,
      malformedJsonLines: this.reader.malformedJsonLines,
      bootTimeLines: this.reader.bootTimeLines + this.bootTimeLines,
      groupsClosed: counters.groupsClosed,
      evictions: counters.evictions,
      classifierErrors: this.classifierErrors,
    };
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
      this.output.record(order, event);
      return;
    }
    if (group.lines.length >= 2) {
      const example = { time: group.time, host: group.host, service: group.service, lines: exampleOf(group) };
      this.output.shape(order, firstLineShape(group.lines[0] as string), example);
    }
    if (this.spec.all) this.output.record(order, unclassifiedRecord(group));
  }
}
