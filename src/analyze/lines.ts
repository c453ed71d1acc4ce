/**
 * How analyze reads one line: its origin (to deal its stream to a shard) and its record. journald
 * `short*` text, raw log lines and `journalctl -o json|json-seq|json-sse` objects may be mixed,
 * even within one file. Lines of a raw file carry no host or process, so the file's name stands in
 * for the service: two raw files are two streams, never joined.
 */
import { isJournalctlMarkerAt, readJournalPrefix, type JournalPrefix, type Origin } from '../ingest/journald-prefix.js';
import { recordFromLineAt, recordFromObject, recordFromText } from '../ingest/normalize.js';
import { streamKeyOf, type LogRecord } from '../ingest/record.js';

export class LineReader {
  /** The origin readOrigin() found: what a line's stream is dealt by (a process's pids stay together). */
  host = '';
  service = '';
  /** Lines that looked like JSON but were not (kept as text). */
  malformedJsonLines = 0;
  /** Lines of `journalctl -o short-monotonic|short-delta`: times since boot, no dates. */
  bootTimeLines = 0;
  private fallbackService = 'stdin';
  private fallbackStream = streamKeyOf('', 'stdin', '');
  /** Read into for every line: the parts it holds are copied into records. */
  readonly prefix: JournalPrefix = { timeMs: undefined, zoned: false, bootUs: undefined, host: '', service: '', pid: '', messageStart: 0, origin: null };
  /** The line has a journald prefix; and it names the line's origin. */
  private prefixRead = false;
  private found = false;
  /** The record of a JSON line: its origin is only known once it is built. */
  private jsonRecord: LogRecord | null = null;

  constructor(private readonly receivedAt: number) {}

  /** The next input file; its name stands in for the service of lines that name none. */
  beginFile(fallbackService: string): void {
    this.fallbackService = fallbackService;
    this.fallbackStream = streamKeyOf('', fallbackService, '');
  }

  /**
   * Reads the origin of the line at [start, end) of `text` into host and service; false when the
   * line carries no log data (a journalctl marker). A journald line is read in place: nothing is
   * allocated for a line whose origin was seen before.
   */
  readOrigin(text: string, start: number, end: number): boolean {
    const first = text.charCodeAt(start);
    const jsonStart = first === 123 ? 0 : jsonTextStart(text, start, first);
    if (jsonStart >= 0) {
      const record = this.fromJson(text.slice(start, end), jsonStart);
      this.jsonRecord = record;
      if (record === null) return false;
      this.host = record.host;
      this.service = record.service;
      return true;
    }
    this.jsonRecord = null;
    if (first === 45 && isJournalctlMarkerAt(text, start, end)) return false;
    const prefix = this.prefix;
    this.prefixRead = readJournalPrefix(text, start, end, this.receivedAt, prefix);
    this.found = this.prefixRead && !(prefix.host === '' && prefix.service === '' && prefix.pid === '');
    this.host = this.found ? prefix.host : '';
    this.service = this.found ? prefix.service : this.fallbackService;
    return true;
  }

  /** The remembered journald origin of the line readOrigin() has just read (null for JSON, raw lines, origins read from the line alone). */
  get origin(): Origin | null {
    return this.jsonRecord === null && this.found ? this.prefix.origin : null;
  }

  /** The record of the line readOrigin() has just read. */
  recordOfOrigin(text: string, start: number, end: number): LogRecord {
    if (this.jsonRecord !== null) return this.jsonRecord;
    if (this.prefixRead && this.prefix.bootUs !== undefined) this.bootTimeLines++;
    if (this.found) return recordFromLineAt(text, start, end, this.prefix, this.receivedAt);
    // No origin of its own (a raw line, or a prefix with a time only): the file's name stands in.
    const record = recordFromLineAt(text, start, end, this.prefixRead ? this.prefix : null, this.receivedAt);
    record.service = this.fallbackService;
    record.stream = this.fallbackStream;
    return record;
  }

  /** The record of the line at [start, end), or null when it carries no log data. */
  record(text: string, start: number, end: number): LogRecord | null {
    return this.readOrigin(text, start, end) ? this.recordOfOrigin(text, start, end) : null;
  }

  /**
   * `journalctl -o json` (one object per line), `json-seq` (each object after an RS) and `json-sse`
   * (`data: ` before each); a line that is no JSON object is read as text.
   */
  private fromJson(line: string, jsonStart: number): LogRecord | null {
    let parsed: unknown;
    try {
      parsed = JSON.parse(jsonStart === 0 ? line : line.slice(jsonStart));
    } catch {
      parsed = undefined;
    }
    let record: LogRecord | null;
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
      record = recordFromObject(parsed as Record<string, unknown>, this.receivedAt);
    } else {
      this.malformedJsonLines++;
      record = recordFromText(line, this.receivedAt);
      if (record === null) return null;
    }
    if (record.host === '' && record.service === '' && record.pid === '') {
      record.service = this.fallbackService;
      record.stream = this.fallbackStream;
    }
    return record;
  }
}

/** Where, in the line at `start`, the JSON text of a `json-seq` or `json-sse` line starts; -1 when the line is none. */
function jsonTextStart(text: string, start: number, first: number): number {
  if (first === 0x1e) return text.charCodeAt(start + 1) === 123 ? 1 : -1;
  if (first === 100 /* d */ && text.startsWith('data: {', start)) return 6;
  return -1;
}
