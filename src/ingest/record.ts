/**
 * The one internal shape every ingest path produces (HTTP bodies of any shipper, journald text,
 * `journalctl -o json`, raw linkerd files) and the engine consumes.
 */
export interface LogRecord {
  /** Event time in ms since the epoch: the shipper's field, else the line's own prefix, else receipt time. */
  time: number;
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
  /** The record as the shipper sent it (objects), or undefined for text input. */
  fields?: Record<string, unknown>;
  /** Set when the input could not be decoded as its batch's format and was kept as raw text. */
  malformed?: boolean;
  /** The ingest-journal batch this record arrived in (server only): what to replay after a crash. */
  seq?: number;
}

/** Separator that cannot occur in host names, unit names or pids. */
const SEP = '\u001f';

export function streamKeyOf(host: string, service: string, pid: string): string {
  return host + SEP + service + SEP + pid;
}
