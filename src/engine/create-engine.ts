/**
 * The engine: groups lines per stream (grouper.ts), classifies each closed group with the current
 * rule set, and hands the events of one push()/sweep()/flush() call to the sink in one call.
 */
import type { LogRecord } from '../ingest/record.js';
import type { Classifier } from './classifier.js';
import type { Engine, EngineStats, EventSink } from './engine.js';
import type { LeakEvent } from './event.js';
import type { Group } from './group.js';
import type { GrouperConfig, OpenGroupLimits } from './grouper-config.js';
import { StreamGrouper } from './grouper.js';

export interface EngineOptions {
  /** Read once per push(), so a rules reload applies from the next batch on. */
  groupers: () => readonly GrouperConfig[];
  /** Read once per closed group, so a reload applies from the next group on. */
  classifier: () => Classifier;
  sink: EventSink;
  limits?: OpenGroupLimits;
  /** Wall clock (ms) read once per push(), for reordering and expiry; injectable for tests. Default Date.now. */
  clock?: () => number;
  /** Called when the classifier throws on a group; the group yields no event and the batch goes on. */
  onClassifierError?: (error: unknown, group: Group) => void;
  /**
   * Receives every group no rule classified, in close order with the events (`analyze --all`, and
   * the count of unclassified traces that shows what to write a rule for).
   */
  unclassified?: (group: Group) => void;
  /**
   * false: `unclassified` is called as each group closes, outside the events' order. For a
   * consumer that only counts (the server's tally), this keeps one sink call per batch: queued
   * in close order, every unclassified group between two events would split the events' batch.
   */
  unclassifiedInCloseOrder?: boolean;
  /** The input is already in source order (files read offline): nothing is held for reordering. */
  ordered?: boolean;
}

/** EngineStats plus the engine's own counters (optional fields of the shared interface). */
export interface DetailedEngineStats extends EngineStats {
  swallowedLines: number;
  pidChanges: number;
  classifierErrors: number;
  lateRecords: number;
  heldRecords: number;
  heldBytes: number;
  earlyReleases: number;
}

export interface DetailedEngine extends Engine {
  stats(): DetailedEngineStats;
}

function isGroup(item: LeakEvent | Group): item is Group {
  return (item as Group).lines !== undefined;
}

export function createEngine(options: EngineOptions): DetailedEngine {
  const clock = options.clock ?? Date.now;
  const unclassified = options.unclassified;
  const queueUnclassified = unclassified !== undefined && options.unclassifiedInCloseOrder !== false;
  // Events and (when asked for) unclassified groups, in close order until delivered.
  let pending: Array<LeakEvent | Group> = [];
  let eventsOut = 0;
  let classifierErrors = 0;

  const classify = (group: Group): void => {
    let event: LeakEvent | null;
    try {
      event = options.classifier().classify(group);
    } catch (error) {
      // One bad group (or a rule bug) must not lose the rest of the batch.
      classifierErrors++;
      options.onClassifierError?.(error, group);
      return;
    }
    if (event !== null) pending.push(event);
    else if (queueUnclassified) pending.push(group);
    else unclassified?.(group);
  };
  const grouper = new StreamGrouper(classify, { ...(options.limits ? { limits: options.limits } : {}), ordered: options.ordered ?? false });

  /** Hands on what closed: events in one sink call per run between unclassified groups, so the order is kept. */
  const deliver = (): void => {
    if (pending.length === 0) return;
    const closed = pending;
    pending = [];
    let events: LeakEvent[] = [];
    for (const item of closed) {
      if (isGroup(item)) {
        if (events.length > 0) {
          eventsOut += events.length;
          options.sink(events);
          events = [];
        }
        unclassified?.(item);
      } else {
        events.push(item);
      }
    }
    if (events.length > 0) {
      eventsOut += events.length;
      options.sink(events);
    }
  };

  return {
    push(records: readonly LogRecord[]): void {
      try {
        grouper.push(records, options.groupers(), clock());
      } finally {
        deliver();
      }
    },
    sweep(now: number, maxRecords?: number): boolean {
      try {
        return grouper.sweep(now, maxRecords);
      } finally {
        deliver();
      }
    },
    flush(): void {
      try {
        grouper.flush();
      } finally {
        deliver();
      }
    },
    pendingJournalPositions(): Float64Array {
      return grouper.pendingJournalPositions();
    },
    stats(): DetailedEngineStats {
      const counters = grouper.counters;
      return {
        linesIn: counters.linesIn,
        groupsClosed: counters.groupsClosed,
        eventsOut,
        openStreams: grouper.openStreams,
        openBytes: grouper.openBytes,
        evictions: counters.evictions,
        truncatedGroups: counters.truncatedGroups,
        swallowedLines: counters.swallowedLines,
        pidChanges: counters.pidChanges,
        classifierErrors,
        lateRecords: counters.lateRecords,
        heldRecords: grouper.heldRecords,
        heldBytes: grouper.heldBytes,
        earlyReleases: counters.earlyReleases,
      };
    },
  };
}
