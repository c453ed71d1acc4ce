/**
 * A log layout's header: the line that starts a record, and, for layouts that print their header
 * on two lines (java.util.logging's SimpleFormatter: `Nov 16, 2017 9:52:30 AM pkg.Class method`
 * then `SEVERE: message`), the pattern of the second header line.
 */
export interface HeaderPattern {
  name: string;
  first: RegExp;
  /**
   * Matches the line right after `first` that still belongs to the header; null for one-line
   * headers. Seen without its first line (an excerpt, a lost line), it starts a record itself.
   */
  second: RegExp | null;
}

/** How one kind of stream is cut into multi-line records; compiled from a `groupers:` entry. */
export interface GrouperConfig {
  name: string;
  /** Globs on the stream's service; the first grouper whose globs match a stream is used for it. */
  services: string[];
  maxLines: number;
  maxBytes: number;
  /**
   * Event time: a line whose source time (LogRecord.sourceUs) is this much after the previous
   * line of its stream does not continue that line's record.
   */
  silenceMs: number;
  /**
   * Wall clock: a stream that has received nothing for this long has its open record closed.
   * Long enough for shipper flush intervals and retries (Vector's reduce transform expires groups
   * after 30 s by default for the same reason).
   */
  expireAfterMs: number;
  /**
   * Wall clock: how long a record that carries a source order (LogRecord.sourceUs) is held so that
   * records of its stream delivered out of order (concurrent shipper requests) are put back in
   * order before grouping. 0 groups in arrival order.
   */
  reorderWindowMs: number;
  /** Header layouts beside the built-in ones (line-layout.ts). */
  headers: HeaderPattern[];
  /** Extra continuation regexes, beside the built-in line kinds (line-kind.ts). */
  continue: RegExp[];
}

export const DEFAULT_GROUPER: GrouperConfig = {
  name: 'jvm',
  services: ['*'],
  maxLines: 500,
  maxBytes: 64 * 1024,
  silenceMs: 2000,
  expireAfterMs: 30_000,
  reorderWindowMs: 2000,
  headers: [],
  continue: [],
};

/** Bounds of what the grouper holds across all streams (evictions close groups, never drop them). */
export interface OpenGroupLimits {
  maxStreams: number;
  maxBytes: number;
  /**
   * Records held for the reorder window, in (estimated) bytes. Past it the records nearest their
   * time are grouped early: the window shrinks under a flood instead of memory growing with it.
   */
  maxHeldBytes?: number;
}

export const DEFAULT_OPEN_GROUP_LIMITS: OpenGroupLimits = { maxStreams: 100_000, maxBytes: 64 * 1024 * 1024, maxHeldBytes: 64 * 1024 * 1024 };
