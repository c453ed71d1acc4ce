/**
 * Per-stream multi-line grouping. Each stream (host + service + pid) has its own state; lines of
 * different streams are never joined however they interleave. A group starts at a header line and
 * collects the lines that continue it; it closes at the next header of its stream, when its process
 * is replaced (new pid for the same host + service), after silence, at its grouper's size limits, or
 * when the bounded open-group cache needs room (then it is closed early, never dropped).
 *
 * Hot path per line: one Map/LRU lookup per record, charCode tests for blank/header/continuation,
 * a push onto the group's line array. Regexes run only to confirm a header candidate, and a
 * grouper's extra `start`/`continue` regexes only when the built-in checks have failed.
 */
import { LRUCache } from 'lru-cache';
import { isHeaderLine } from '../ingest/line-layout.js';
import type { LogRecord } from '../ingest/record.js';
import { isBlankLine, isContinuationLine } from './continuation.js';
import type { CloseReason, Group } from './group.js';
import { DEFAULT_OPEN_GROUP_LIMITS, type GrouperConfig, type OpenGroupLimits } from './grouper-config.js';
import { selectGrouper } from './grouper-selection.js';

/** Receives every closed group, in close order. */
export type GroupCloser = (group: Group) => void;

export interface GrouperCounters {
  linesIn: number;
  groupsClosed: number;
  evictions: number;
  truncatedGroups: number;
  /** Lines that continued a trace after it was cut at its size limit: counted, not kept. */
  swallowedLines: number;
  /** Groups closed because their process was replaced by a new pid on the same host and service. */
  pidChanges: number;
}

interface StreamState {
  readonly stream: string;
  readonly host: string;
  readonly service: string;
  readonly pid: string;
  config: GrouperConfig;
  /** The grouper list `config` was chosen from; a reload gives a new list and a fresh choice. */
  configSource: readonly GrouperConfig[];
  /** Once a stream has shown a header layout, every non-blank non-header line continues its open group. */
  hasHeaders: boolean;
  /** The open group, built whole at open so that closing allocates nothing more. */
  group: Group | null;
  /** Characters of the open group's lines plus one per line break: its share of the byte budget. */
  groupBytes: number;
  /** After a size cut: continuation lines are swallowed until the next header. */
  swallowing: boolean;
  /** Wall-clock ms of the last line (for silence). */
  lastSeen: number;
}

const SEP = '\u001f';

export class StreamGrouper {
  private readonly streams: LRUCache<string, StreamState>;
  /** host + service → the stream of its current process, to notice a restart under a new pid. */
  private readonly currentStreamOfProcess: LRUCache<string, string>;
  private readonly limits: OpenGroupLimits;
  /** Journal batch of the record being pushed (see LogRecord.seq). */
  private currentSeq: number | undefined;
  private openGroupCount = 0;
  private openBytesTotal = 0;
  private groupers: readonly GrouperConfig[] = [];
  readonly counters: GrouperCounters = {
    linesIn: 0,
    groupsClosed: 0,
    evictions: 0,
    truncatedGroups: 0,
    swallowedLines: 0,
    pidChanges: 0,
  };

  constructor(
    private readonly close: GroupCloser,
    limits: OpenGroupLimits = DEFAULT_OPEN_GROUP_LIMITS,
  ) {
    if (!(limits.maxStreams >= 1) || !(limits.maxBytes >= 1)) {
      throw new RangeError(`open-group limits must be positive (maxStreams ${limits.maxStreams}, maxBytes ${limits.maxBytes})`);
    }
    this.limits = limits;
    this.streams = new LRUCache<string, StreamState>({
      max: limits.maxStreams,
      dispose: (state, _key, reason) => {
        if (reason === 'evict' && state.group) {
          this.counters.evictions++;
          this.closeGroup(state, 'evicted', false);
        }
      },
    });
    this.currentStreamOfProcess = new LRUCache<string, string>({ max: limits.maxStreams });
  }

  /** The oldest ingest-journal batch an open group started in; undefined when none is open or unknown. */
  oldestOpenSeq(): number | undefined {
    let oldest: number | undefined;
    for (const state of this.streams.values()) {
      const seq = state.group?.seq;
      if (seq !== undefined && (oldest === undefined || seq < oldest)) oldest = seq;
    }
    return oldest;
  }

  get openStreams(): number {
    return this.openGroupCount;
  }

  get openBytes(): number {
    return this.openBytesTotal;
  }

  /** Feeds records in arrival order; `now` is the wall clock of this call, used for silence. */
  push(records: readonly LogRecord[], groupers: readonly GrouperConfig[], now: number): void {
    this.groupers = groupers;
    for (let index = 0; index < records.length; index++) {
      const record = records[index] as LogRecord;
      this.currentSeq = record.seq;
      const state = this.stateOf(record);
      state.lastSeen = now;
      const message = record.message;
      if (typeof message !== 'string') continue;
      if (message.indexOf('\n') < 0) {
        this.pushLine(state, message, record.time);
      } else {
        const lines = message.split('\n');
        for (let lineIndex = 0; lineIndex < lines.length; lineIndex++) this.pushLine(state, lines[lineIndex] as string, record.time);
      }
      if (this.openBytesTotal > this.limits.maxBytes) this.evictForBytes(state);
    }
  }

  /** Closes the groups of streams silent since before `now - silenceMs` (their grouper's). */
  sweep(now: number): void {
    for (const state of this.streams.values()) {
      if (state.group && state.lastSeen < now - state.config.silenceMs) {
        this.closeGroup(state, 'silence', false);
        state.swallowing = false;
      }
    }
  }

  flush(): void {
    for (const state of this.streams.values()) {
      if (state.group) this.closeGroup(state, 'end-of-input', false);
      state.swallowing = false;
    }
  }

  private stateOf(record: LogRecord): StreamState {
    const stream = record.stream;
    let state = this.streams.get(stream);
    if (state === undefined) {
      state = this.newState(record);
    } else if (state.configSource !== this.groupers) {
      state.config = selectGrouper(this.groupers, state.service);
      state.configSource = this.groupers;
    }
    return state;
  }

  private newState(record: LogRecord): StreamState {
    const host = typeof record.host === 'string' ? record.host : '';
    const service = typeof record.service === 'string' ? record.service : '';
    const pid = typeof record.pid === 'string' ? record.pid : String(record.pid ?? '');
    const state: StreamState = {
      stream: record.stream,
      host,
      service,
      pid,
      config: selectGrouper(this.groupers, service),
      configSource: this.groupers,
      hasHeaders: false,
      group: null,
      groupBytes: 0,
      swallowing: false,
      lastSeen: 0,
    };
    // Only a new stream can be a restart, so the process map is consulted on this rare path alone.
    // Two live processes of one service on one host each close the other's group at most once, when
    // the second first appears.
    if (pid !== '') {
      const processKey = host + SEP + service;
      const previousStream = this.currentStreamOfProcess.get(processKey);
      if (previousStream !== undefined && previousStream !== record.stream) {
        const previous = this.streams.peek(previousStream);
        if (previous?.group) {
          this.counters.pidChanges++;
          this.closeGroup(previous, 'pid-change', false);
        }
      }
      this.currentStreamOfProcess.set(processKey, record.stream);
    }
    this.streams.set(record.stream, state);
    return state;
  }

  private pushLine(state: StreamState, rawLine: string, time: number): void {
    this.counters.linesIn++;
    // CRLF input: the \r is not part of the line.
    const line = rawLine.charCodeAt(rawLine.length - 1) === 13 ? rawLine.slice(0, -1) : rawLine;
    if (isBlankLine(line)) return;
    const config = state.config;
    if (isHeaderLine(line) || (config.start.length > 0 && matchesAny(config.start, line))) {
      if (state.group) this.closeGroup(state, 'next-header', false);
      state.hasHeaders = true;
      state.swallowing = false;
      this.openGroup(state, line, time);
      return;
    }
    const continues =
      state.hasHeaders || isContinuationLine(line) || (config.continue.length > 0 && matchesAny(config.continue, line));
    if (state.swallowing) {
      if (continues) {
        this.counters.swallowedLines++;
        return;
      }
      state.swallowing = false;
    }
    const group = state.group;
    if (group === null || !continues) {
      if (group) this.closeGroup(state, 'next-header', false);
      this.openGroup(state, line, time);
      return;
    }
    if (group.lines.length >= config.maxLines) {
      this.cutAtLimit(state, 'max-lines');
      return;
    }
    const size = line.length + 1;
    if (state.groupBytes + size > config.maxBytes) {
      this.cutAtLimit(state, 'max-bytes');
      return;
    }
    group.lines.push(line);
    state.groupBytes += size;
    this.openBytesTotal += size;
  }

  /** The line that did not fit is the first swallowed one; the trace's remaining lines follow it. */
  private cutAtLimit(state: StreamState, reason: CloseReason): void {
    this.closeGroup(state, reason, true);
    state.swallowing = true;
    this.counters.swallowedLines++;
  }

  private openGroup(state: StreamState, line: string, time: number): void {
    const maxBytes = state.config.maxBytes;
    // A single line longer than the whole budget is kept cut, so one group never exceeds it.
    const kept = line.length + 1 > maxBytes ? line.slice(0, Math.max(0, maxBytes - 1)) : line;
    const bytes = kept.length + 1;
    state.group = {
      stream: state.stream,
      host: state.host,
      service: state.service,
      pid: state.pid,
      time,
      lines: [kept],
      truncated: false,
      closeReason: 'end-of-input',
      seq: this.currentSeq,
    };
    state.groupBytes = bytes;
    this.openGroupCount++;
    this.openBytesTotal += bytes;
    if (kept !== line) {
      this.closeGroup(state, 'max-bytes', true);
      state.swallowing = true;
    }
  }

  private closeGroup(state: StreamState, reason: CloseReason, truncated: boolean): void {
    const group = state.group;
    if (!group) return;
    state.group = null;
    this.openGroupCount--;
    this.openBytesTotal -= state.groupBytes;
    state.groupBytes = 0;
    this.counters.groupsClosed++;
    if (truncated) this.counters.truncatedGroups++;
    group.truncated = truncated;
    group.closeReason = reason;
    this.close(group);
  }

  /** Over the shared byte budget: close the least recently used groups, sparing the one being fed. */
  private evictForBytes(current: StreamState): void {
    for (const state of this.streams.rvalues()) {
      if (this.openBytesTotal <= this.limits.maxBytes) return;
      if (state === undefined || state === current || !state.group) continue;
      this.counters.evictions++;
      this.closeGroup(state, 'evicted', false);
    }
  }
}

function matchesAny(patterns: readonly RegExp[], line: string): boolean {
  for (const pattern of patterns) {
    // A global or sticky regex keeps lastIndex between calls; reset it so results do not depend on history.
    pattern.lastIndex = 0;
    if (pattern.test(line)) return true;
  }
  return false;
}
