import { SharedStrings } from '../text/strings.js';

/**
 * The one internal shape every ingest path produces (HTTP bodies of any shipper, journald text,
 * `journalctl -o json`, raw linkerd files) and the engine consumes.
 */
export interface LogRecord {
  /**
   * Event time in ms since the epoch: the line's own time (journald prefix, log header, journald's
   * source timestamp), else the time its source or shipper stamped on it, else receipt time. The
   * same line gets the same time whatever body shape carried it, so its event id is the same too.
   */
  time: number;
  /**
   * The time the source stamped on the record, in µs since the epoch: one clock for every line of a
   * stream alike (journald's receive time, the shipper's read time, a journald text prefix), unlike
   * `time`, which only header lines carry. Puts a stream back in source order and measures the
   * silence between its lines. Undefined when the record carries no such time. For lines of
   * `journalctl -o short-monotonic` it is µs since the host booted: it orders and times a stream
   * (whose lines all come from one boot) but dates nothing.
   */
  sourceUs?: number;
  /** The record's position in its source (journald sequence number, file offset): orders records with equal sourceUs. */
  position?: number;
  /** '' when unknown. */
  host: string;
  /** journald SYSLOG_IDENTIFIER / unit / container name; '' when unknown. */
  service: string;
  /** Process id as logged (journald sends strings); '' when unknown. */
  pid: string;
  /** Grouping key: host + service + pid (see streamKeyOf). Lines of different streams are never joined. */
  stream: string;
  /**
   * The log line with any journald `short`/`short-iso` prefix removed. It may hold several lines
   * (`\n`) when the shipper already joined them; the engine splits them.
   */
  message: string;
  /**
   * Whether the message (a single line) starts a log record by one of the built-in layouts
   * (isHeaderLine), when whoever made the record tested it already (analyze's router does, to date
   * the line): the engine takes it instead of testing again.
   */
  header?: boolean;
  /** The object as the shipper sent it, for records that carry no log line (metrics snapshots, objects without a text field). */
  fields?: Record<string, unknown>;
  /** Set when the input could not be decoded as its batch's format and was kept as raw text. */
  malformed?: boolean;
  /** Set when a shipper's object had none of the text fields leakwatch knows: counted, never quietly ignored. */
  withoutText?: boolean;
  /** The ingest-journal batch this record arrived in (server only): what to replay after a crash. */
  seq?: number;
  /** Its place in the journal, journalPosition(seq, index in the batch): what a replay may skip. */
  journalPos?: number;
}

/** Separator that cannot occur in host names, unit names or pids. */
const SEP = '\u001f';

interface KnownStream {
  host: string;
  service: string;
  pid: string;
  key: string;
}

// Records come from a handful of processes at a time: their key is looked up among the last ones
// instead of concatenated (a new string) for every record.
const KNOWN_STREAMS = 32;
const knownStreams: KnownStream[] = [];
let nextKnownStream = 0;

export function streamKeyOf(host: string, service: string, pid: string): string {
  for (let index = 0; index < knownStreams.length; index++) {
    const known = knownStreams[index] as KnownStream;
    if (known.pid === pid && known.service === service && known.host === host) return known.key;
  }
  // join() makes one flat string; `+` would keep a tree of four concatenations alive (128 bytes) as
  // long as the stream is, and a server may hold 100,000 streams.
  const key = [host, service, pid].join(SEP);
  knownStreams[nextKnownStream] = { host, service, pid, key };
  nextKnownStream = (nextKnownStream + 1) % KNOWN_STREAMS;
  return key;
}

/** Records per journal batch the position numbering leaves room for (2^24; ingest caps records per body far below). */
export const JOURNAL_BATCH_RECORDS = 2 ** 24;

/** A record's place in the ingest journal as one number: its batch, then its index in the batch. */
export function journalPosition(seq: number, index: number): number {
  return seq * JOURNAL_BATCH_RECORDS + index;
}

/** The journal batch of a journalPosition(). */
export function journalBatchOf(position: number): number {
  return Math.floor(position / JOURNAL_BATCH_RECORDS);
}

/**
 * One string per service name for the records and stream states that carry it: a decoded batch
 * comes from another thread with its own copy of each name per stream, and 100,000 held streams of
 * one service kept 100,000 copies of its name (2.4 MB), then each state its own. A fleet has tens
 * of services, not thousands: the first 1,024 names are shared.
 */
export const SERVICE_NAMES = new SharedStrings(1024);
