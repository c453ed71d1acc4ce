import type { LogRecord } from '../ingest/record.js';
import type { LeakEvent } from './event.js';

/** Receives the events of closed, classified groups, synchronously and in close order. */
export type EventSink = (events: LeakEvent[]) => void;

export interface EngineStats {
  linesIn: number;
  groupsClosed: number;
  eventsOut: number;
  openStreams: number;
  openBytes: number;
  /** Groups force-closed because the open-group cache was full (never silently dropped). */
  evictions: number;
  truncatedGroups: number;
  /** Lines of a trace after it was cut at its grouper's size limit (counted, not kept). */
  swallowedLines?: number;
  /** Groups closed because the same host + service showed up under a new pid. */
  pidChanges?: number;
  /** Records that arrived after a later record of their stream had been grouped (beyond the reorder window). */
  lateRecords?: number;
  /** Records held for the reorder window. */
  heldRecords?: number;
  /** Their estimated bytes. */
  heldBytes?: number;
  /** Records grouped before their reorder window had passed (the held records were over their byte budget). */
  earlyReleases?: number;
  /** Groups whose classification threw (they yield no event). */
  classifierErrors?: number;
}

/**
 * The engine: per-stream multi-line grouping, then classification by the loaded rule set.
 * Everything is synchronous; callers decide when to feed and when to sweep.
 */
export interface Engine {
  /** Feed records in arrival order. Groups that close as a result go to the sink before this returns. */
  push(records: readonly LogRecord[]): void;
  /**
   * Group the records whose reorder window has passed by `now`, and close the groups of streams that
   * have received nothing for their grouper's expiry. `now` is wall-clock ms. At most `maxRecords`
   * are grouped; true when due records are left for another call.
   */
  sweep(now: number, maxRecords?: number): boolean;
  /** Group everything held and close every open group (end of input, shutdown). */
  flush(): void;
  /**
   * Journal positions (LogRecord.journalPos) of the records not yet in a closed group: held for
   * reordering or in an open group, in no particular order. Every other record the engine was given is done.
   */
  pendingJournalPositions(): Float64Array;
  stats(): EngineStats;
}
