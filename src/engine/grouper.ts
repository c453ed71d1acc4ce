/**
 * Per-stream multi-line grouping. Each stream (host + service + pid) has its own state; lines of
 * different streams are never joined however they interleave.
 *
 * Order: a record that carries its source's clock (LogRecord.sourceUs) is held for the grouper's
 * reorder window, so that batches a shipper delivered out of order (concurrent requests, retries)
 * are grouped in source order. Records without one are grouped in arrival order.
 *
 * Records: a small state machine per stream over line kinds (line-kind.ts), after
 * fluent-plugin-detect-exceptions' exception_detector.rb, with the log header on top:
 *
 *   phase     what the open group has seen        what joins it
 *   header    a header line (and its 2nd line)    any line but a header: the throwable's toString()
 *                                                 may have any shape (`Reset.Cancel`, `Failure(...)`)
 *   message   a throwable (or a cause) whose      frames, causes, `nested exception is:`, an exception
 *             frames have not started yet         line after `nested` or as the record's first
 *                                                 throwable; plain lines only tentatively (below)
 *   trace     frames                              frames, causes, `nested exception is:`
 *   plain     a plain line                        frames (the plain line was a throwable's toString)
 *
 * A plain line inside a message (multi-line exception messages, or the line after an INFO header)
 * is tentative: the next frame or cause confirms it; anything else splits it off as a record of its
 * own, so println output and banners between records are never swallowed. Everything else starts
 * a new record: a header, an exception line once the record has its throwable, a plain line after
 * frames.
 *
 * A group closes when the next record of its stream begins, when its process is replaced (new pid
 * for the same host + service), after silence in event time (the next line is more than `silence`
 * after the previous one by their source clocks), when its stream has received nothing for
 * `expire_after` (wall clock: shipper pauses and retries), at its grouper's size limits, or when the
 * bounded open-group cache needs room (then it is closed early, never dropped).
 */
import { isHeaderLine, parseLineHeader } from '../ingest/line-layout.js';
import { SERVICE_NAMES, type LogRecord } from '../ingest/record.js';
import type { CloseReason, Group } from './group.js';
import { DEFAULT_OPEN_GROUP_LIMITS, type GrouperConfig, type HeaderPattern, type OpenGroupLimits } from './grouper-config.js';
import { selectGrouper } from './grouper-selection.js';
import { headerPrefilter, type HeaderPrefilter } from './header-union.js';
import { HeldQueue } from './held-queue.js';
import { PositionList } from './position-list.js';
import { RecencyMap, type RecencyLinks } from './recency-map.js';
import { Clock, StreamClocks } from './stream-clocks.js';
import { LineKind, lineKindOf, looksLikeThrowable } from './line-kind.js';

/**
 * Receives every closed group, in close order. `order` is the use number (see StreamGrouper.push) of
 * the record whose arrival closed it, or, for a group closed by flush(), sweep() or an eviction
 * outside a push, of its stream's last record: what lets analyze's shards, each grouping its own
 * streams, put their groups back in the one order a single grouper would have closed them in.
 */
export type GroupCloser = (group: Group, order: number) => void;

export interface GrouperCounters {
  linesIn: number;
  groupsClosed: number;
  evictions: number;
  truncatedGroups: number;
  /** Lines that continued a trace after it was cut at its size limit: counted, not kept. */
  swallowedLines: number;
  /** Groups closed because their process was replaced by a new pid on the same host and service. */
  pidChanges: number;
  /** Records that arrived after a later record of their stream had already been grouped. */
  lateRecords: number;
  /** Records grouped before their reorder window had passed, because the held records were over their byte budget. */
  earlyReleases: number;
}

/** What a held record costs beyond its message's characters (the record, its numbers, its queue slots). */
const HELD_RECORD_OVERHEAD_BYTES = 200;
/** Held bytes are brought back to this share of their budget once they pass it, so that early releases come in a few large steps. */
const HELD_BYTES_TARGET = 0.75;

const Phase = { None: 0, Header: 1, Message: 2, Trace: 3, Plain: 4 } as const;
type Phase = (typeof Phase)[keyof typeof Phase];

/** Plain lines a message may hold before its first frame; past that they are records of their own. */
const MAX_TENTATIVE_LINES = 64;

/** StreamState's phase and flags share one number (`bits`): the phase in the low three bits. */
const PHASE_BITS = 7;
const HAS_EXCEPTION = 1 << 3;
const EXPECT_EXCEPTION = 1 << 4;
const CONTINUES_NEXT = 1 << 5;
const THROWABLE_CANDIDATE = 1 << 6;
const SWALLOWING = 1 << 7;
const GROUPED = 1 << 8;

/**
 * A stream's state. A server may hold 100,000 of them, each with an open group, so it is kept
 * lean: the open group is its lines here (the Group is made when it closes; a line alone is no
 * array), its place in the streams' recency order is in it (RecencyLinks), a group of one record
 * has no array of journal positions, and the phase and six flags are bits of one number (a field
 * is 8 bytes whatever it holds).
 */
class StreamState implements RecencyLinks<StreamState> {
  /**
   * The lines of the open group, blank lines excluded, in source order: the line itself while it
   * is one (most groups are; an array of one cost 56 bytes a stream), null when none is open.
   */
  lines: string | string[] | null = null;
  /**
   * Journal positions of the open group's later records; with its first (Clock.FirstPosition), the
   * open group's: not done until it closes.
   */
  positions: number[] = NO_POSITIONS;
  /** Lines of the open group that are certain; the ones after are tentative message lines. */
  confirmed = 0;
  /** Time and journal batch of each tentative line, for when it is split off. */
  tentative: TentativeLine[] = NO_TENTATIVE;
  /** The second header line of the open group's layout, until it has been seen or passed. */
  secondHeader: RegExp | null = null;
  /** Characters of the open group's lines plus one per line break: its share of the byte budget. */
  groupBytes = 0;
  /**
   * Records held for the reorder window: NOTHING_HELD, the one record held as it came, or a queue
   * in source order. A quiet stream holds one record through its window: 100,000 of them each
   * made a queue (104 bytes with its due time) for two seconds, all promoted and dead at once. A
   * lone record is due at its last arrival + the window: it was the stream's last arrival.
   */
  held: HeldQueue | LogRecord = NOTHING_HELD;
  /** When it was last used (a counter), for the LRU's recency. */
  lastUse = 0;
  /** Its neighbours in the grouper's list of streams that hold records (null at the ends, and when it holds none). */
  holdingPrevious: StreamState | null = null;
  holdingNext: StreamState | null = null;
  lessRecent: StreamState | undefined = undefined;
  moreRecent: StreamState | undefined = undefined;
  private bits = Phase.None as number;

  constructor(
    readonly stream: string,
    readonly host: string,
    readonly service: string,
    readonly pid: string,
    /** Chosen from the grouper's list; a reload chooses again for every stream. */
    public config: GrouperConfig,
    /** Its clocks' place in the grouper's StreamClocks. */
    readonly clockSlot: number,
  ) {}

  get phase(): Phase {
    return (this.bits & PHASE_BITS) as Phase;
  }

  set phase(phase: Phase) {
    this.bits = (this.bits & ~PHASE_BITS) | phase;
  }

  /** The open record has its throwable (an exception line or a cause). */
  get hasException(): boolean {
    return (this.bits & HAS_EXCEPTION) !== 0;
  }

  set hasException(on: boolean) {
    this.setBit(HAS_EXCEPTION, on);
  }

  /** After `nested exception is:` or a bare `Caused by:`: the next exception line belongs to this record. */
  get expectException(): boolean {
    return (this.bits & EXPECT_EXCEPTION) !== 0;
  }

  set expectException(on: boolean) {
    this.setBit(EXPECT_EXCEPTION, on);
  }

  /** The last line ended with `nested exception is:` (RemoteException's message): the next line continues it, whatever its shape. */
  get continuesNext(): boolean {
    return (this.bits & CONTINUES_NEXT) !== 0;
  }

  set continuesNext(on: boolean) {
    this.setBit(CONTINUES_NEXT, on);
  }

  /**
   * The first tentative line is the header's throwable candidate: kept when the record closes,
   * split off only when an exception line follows it instead of frames.
   */
  get throwableCandidate(): boolean {
    return (this.bits & THROWABLE_CANDIDATE) !== 0;
  }

  set throwableCandidate(on: boolean) {
    this.setBit(THROWABLE_CANDIDATE, on);
  }

  /** After a size cut: trace lines are swallowed until the next record starts. */
  get swallowing(): boolean {
    return (this.bits & SWALLOWING) !== 0;
  }

  set swallowing(on: boolean) {
    this.setBit(SWALLOWING, on);
  }

  /** Whether a record of this stream has been grouped (a new pid shows its restart only then). */
  get grouped(): boolean {
    return (this.bits & GROUPED) !== 0;
  }

  set grouped(on: boolean) {
    this.setBit(GROUPED, on);
  }

  private setBit(bit: number, on: boolean): void {
    this.bits = on ? this.bits | bit : this.bits & ~bit;
  }
}

interface TentativeLine {
  time: number;
  /** Journal position of its record, when journaled. */
  position: number | undefined;
}

/** Shared by every stream that holds no record (never inserted into: hold() keeps a stream's first record as it is). */
const NOTHING_HELD = new HeldQueue();

/** Shared by every stream without tentative lines (nearly all, nearly always): no array per group. */
const NO_TENTATIVE: TentativeLine[] = [];
/** Shared by the groups without a second journaled record (nearly all; every one in `analyze`). */
const NO_POSITIONS: number[] = [];

export interface StreamGrouperOptions {
  limits?: OpenGroupLimits;
  /**
   * The input is already in source order (files read offline): records are grouped as they come,
   * never held for reordering.
   */
  ordered?: boolean;
}

export class StreamGrouper {
  private readonly streams: RecencyMap<string, StreamState>;
  /** The states used since their recency was last written to the LRU (an evicted one leaves too). */
  private readonly touched = new Map<string, StreamState>();
  /**
   * The streams holding records for the reorder window, in the order they began to, linked through
   * the states themselves: what sweep() releases from. Walking every stream instead cost a walk of
   * 100,000 quiet ones per slice of 1,024 records released, and a Set's iterator an object per
   * stream per walk.
   */
  private holdingFirst: StreamState | null = null;
  private holdingLast: StreamState | null = null;
  private uses = 0;
  /** The use number handed to the closer with each group closed now. */
  private closeOrder = 0;
  /**
   * The state of each host and service's current process, to notice a restart under a new pid:
   * host → that state, or → a Map service → state once the host has streams of several services.
   * Keyed by the host string the states hold and emptied as they are evicted, so it is bounded by
   * the streams and costs a map slot a host: a RecencyMap keyed by a host + service string cost
   * ~130 bytes a stream (13 MB for 100,000).
   */
  private readonly currentProcesses = new Map<string, StreamState | Map<string, StreamState>>();
  private readonly clocks = new StreamClocks();
  /** Where pendingJournalPositions() gathers, kept from one checkpoint to the next. */
  private readonly pendingPositions = new PositionList();
  private readonly limits: OpenGroupLimits;
  private readonly ordered: boolean;
  private heldCount = 0;
  /**
   * The record a release is grouped from, written over for each: group() keeps its fields, never the
   * object, and nothing it calls releases records.
   */
  private readonly released: LogRecord = { time: 0, host: '', service: '', pid: '', stream: '', message: '' };
  private heldBytesTotal = 0;
  private readonly maxHeldBytes: number;
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
    lateRecords: 0,
    earlyReleases: 0,
  };

  constructor(
    private readonly close: GroupCloser,
    options: StreamGrouperOptions = {},
  ) {
    const limits = options.limits ?? DEFAULT_OPEN_GROUP_LIMITS;
    if (!(limits.maxStreams >= 1) || !(limits.maxBytes >= 1)) {
      throw new RangeError(`open-group limits must be positive (maxStreams ${limits.maxStreams}, maxBytes ${limits.maxBytes})`);
    }
    this.limits = limits;
    this.maxHeldBytes = limits.maxHeldBytes ?? (DEFAULT_OPEN_GROUP_LIMITS.maxHeldBytes as number);
    this.ordered = options.ordered ?? false;
    this.streams = new RecencyMap<string, StreamState>({
      max: limits.maxStreams,
      keyOf: (state) => state.stream,
      onEvict: (state, key) => {
        this.touched.delete(key);
        this.forgetCurrentProcess(state);
        // Room is needed: what the stream still holds is grouped now, and its record closed.
        if (state.held !== NOTHING_HELD) this.release(state, Number.POSITIVE_INFINITY);
        if (state.lines !== null) {
          this.counters.evictions++;
          this.closeGroup(state, 'evicted', false);
        }
        this.clocks.release(state.clockSlot);
      },
    });
  }

  /**
   * Journal positions (LogRecord.journalPos) of the records not done yet: held for reordering, or
   * in a group that has not closed. Everything else the engine was given is in a closed group.
   */
  pendingJournalPositions(): Float64Array {
    const pending = this.pendingPositions;
    for (let state = this.holdingFirst; state !== null; state = state.holdingNext) {
      const held = state.held;
      if (held instanceof HeldQueue) held.collectJournalPositions(pending);
      else if (held.journalPos !== undefined) pending.push(held.journalPos);
    }
    this.streams.forEachNewest((state) => {
      if (state.lines === null) return;
      // Indexed loops (see toBatchPending): once a second over up to 100,000 streams.
      const first = this.clocks.get(state.clockSlot, Clock.FirstPosition);
      if (first === first) pending.push(first);
      const positions = state.positions;
      for (let at = 0; at < positions.length; at++) pending.push(positions[at] as number);
      const tentative = state.tentative;
      for (let at = 0; at < tentative.length; at++) {
        const position = (tentative[at] as TentativeLine).position;
        if (position !== undefined) pending.push(position);
      }
    });
    return pending.take();
  }

  get openStreams(): number {
    return this.openGroupCount;
  }

  get openBytes(): number {
    return this.openBytesTotal;
  }

  /** Records held for the reorder window. */
  get heldRecords(): number {
    return this.heldCount;
  }

  /** Estimated bytes of the records held for the reorder window. */
  get heldBytes(): number {
    return this.heldBytesTotal;
  }

  /**
   * Takes records in arrival order; `now` is the wall clock of this call (reordering and expiry).
   * `uses` numbers the records, increasing (recency: the least recently used streams are closed
   * first when room is needed, flush() closes the most recently used first, and closed groups carry
   * the number of the record that closed them); by default a counter of the grouper's own. analyze's
   * shards pass each record's line number in the whole input, so that their streams share one order.
   */
  push(records: readonly LogRecord[], groupers: readonly GrouperConfig[], now: number, uses?: ArrayLike<number>): void {
    if (groupers !== this.groupers) this.chooseGroupers(groupers);
    for (let index = 0; index < records.length; index++) {
      const record = records[index] as LogRecord;
      const use = uses === undefined ? ++this.uses : (uses[index] as number);
      this.closeOrder = use;
      const state = this.stateOf(record, use);
      if (this.ordered || state.config.reorderWindowMs <= 0 || (record.sourceUs === undefined && state.held === NOTHING_HELD)) {
        this.group(state, record);
      } else {
        this.hold(state, record, now + state.config.reorderWindowMs);
      }
      // After hold(): a lone held record is due by the arrival before this one.
      this.clocks.set(state.clockSlot, Clock.LastArrival, now);
    }
    this.writeRecency();
    // At most twice what came in: the held bytes come back under the budget within a few pushes,
    // and no push does more than a bounded piece of work for it.
    if (this.heldBytesTotal > this.maxHeldBytes) this.releaseEarly(now, 2 * records.length);
  }

  /**
   * Over the held-bytes budget: groups the held records due soonest, as if the window had already
   * passed for them, until the held bytes are back under HELD_BYTES_TARGET of the budget. The
   * cut-off is placed between the earliest and the latest due time in proportion to what must go
   * (exact when records came at an even pace); a third pass takes stream fronts whatever their time.
   */
  private releaseEarly(now: number, maxRecords: number): void {
    const target = this.maxHeldBytes * HELD_BYTES_TARGET;
    let budget = maxRecords;
    for (let pass = 1; this.heldBytesTotal > target && budget > 0; pass++) {
      let cutoff = Number.POSITIVE_INFINITY;
      if (pass < 3) {
        let earliestDue = Number.POSITIVE_INFINITY;
        let latestDue = Number.NEGATIVE_INFINITY;
        for (let state = this.holdingFirst; state !== null; state = state.holdingNext) {
          earliestDue = Math.min(earliestDue, this.firstDue(state));
          latestDue = Math.max(latestDue, this.lastDue(state));
        }
        cutoff = earliestDue + (latestDue - earliestDue) * (1 - target / this.heldBytesTotal);
      }
      for (let state = this.holdingFirst, next: StreamState | null; state !== null; state = next) {
        // Read first: a stream whose last record is released leaves the list.
        next = state.holdingNext;
        if (this.firstDue(state) > cutoff) continue;
        this.closeOrder = state.lastUse;
        budget -= this.release(state, cutoff, budget, now);
        if (this.heldBytesTotal <= target || budget <= 0) return;
      }
    }
  }

  /**
   * Groups held records whose reorder window has passed, then closes the open groups of streams
   * that have received nothing for their grouper's `expire_after`. At most `maxRecords` records are
   * grouped (a bounded piece of work per event-loop turn); true when due records are left.
   */
  sweep(now: number, maxRecords = Number.POSITIVE_INFINITY): boolean {
    let budget = maxRecords;
    for (let state = this.holdingFirst, next: StreamState | null; state !== null; state = next) {
      // Read first: a stream whose last record is released leaves the list.
      next = state.holdingNext;
      if (this.firstDue(state) > now) continue;
      if (budget <= 0) return true;
      this.closeOrder = state.lastUse;
      budget -= this.release(state, now, budget);
      if (this.firstDue(state) <= now) return true;
    }
    this.streams.forEachNewest((state) => {
      if (state.lines !== null && now - this.clocks.get(state.clockSlot, Clock.LastArrival) >= state.config.expireAfterMs) {
        this.closeOrder = state.lastUse;
        this.closeGroup(state, 'expired', false);
        state.swallowing = false;
      }
    });
    return false;
  }

  /** Groups everything held and closes every open group (end of input, shutdown). */
  flush(): void {
    this.streams.forEachNewest((state) => {
      this.closeOrder = state.lastUse;
      if (state.held !== NOTHING_HELD) this.release(state, Number.POSITIVE_INFINITY);
      if (state.lines !== null) this.closeGroup(state, 'end-of-input', false);
      state.swallowing = false;
    });
  }

  /**
   * The stream's state. Moving an entry in the LRU cost more than grouping the line, so within a
   * push a plain Map finds the states already used, and their recency is written to the LRU in the
   * order they were last used, once per push, and before any new stream could evict one.
   */
  private stateOf(record: LogRecord, use: number): StreamState {
    const stream = record.stream;
    let state = this.touched.get(stream);
    if (state === undefined) {
      state = this.streams.peek(stream);
      if (state === undefined) {
        this.writeRecency();
        state = this.newState(record);
      }
      this.touched.set(stream, state);
    }
    state.lastUse = use;
    return state;
  }

  /**
   * A new grouper list (a rules reload): every stream chooses its grouper again now, rather than
   * each keeping the list it chose from (a field of every state) to notice the change at its next
   * record. Once a reload; a service's choice is made once.
   */
  private chooseGroupers(groupers: readonly GrouperConfig[]): void {
    this.groupers = groupers;
    const chosen = new Map<string, GrouperConfig>();
    this.streams.forEachNewest((state) => {
      let config = chosen.get(state.service);
      if (config === undefined) chosen.set(state.service, (config = selectGrouper(groupers, state.service)));
      // A lone held record's due time reads the window of the config it was held under: under
      // another window it goes into a queue with that due time. Under the same one nothing changes
      // (a queue for each of 100,000 quiet streams at every reload would be ~10 MB for nothing).
      if (state.held !== NOTHING_HELD && config.reorderWindowMs !== state.config.reorderWindowMs) this.heldQueueOf(state);
      state.config = config;
    });
  }

  private writeRecency(): void {
    if (this.touched.size === 0) return;
    const used = [...this.touched.values()].sort((a, b) => a.lastUse - b.lastUse);
    this.touched.clear();
    for (const state of used) this.streams.get(state.stream);
  }

  private newState(record: LogRecord): StreamState {
    const host = typeof record.host === 'string' ? record.host : '';
    const service = typeof record.service === 'string' ? SERVICE_NAMES.of(record.service) : '';
    const pid = typeof record.pid === 'string' ? record.pid : String(record.pid ?? '');
    const state = new StreamState(record.stream, host, service, pid, selectGrouper(this.groupers, service), this.clocks.allocate());
    this.streams.set(record.stream, state);
    return state;
  }

  private startHolding(state: StreamState): void {
    state.holdingPrevious = this.holdingLast;
    state.holdingNext = null;
    if (this.holdingLast === null) this.holdingFirst = state;
    else this.holdingLast.holdingNext = state;
    this.holdingLast = state;
  }

  private stopHolding(state: StreamState): void {
    if (state.holdingPrevious === null) this.holdingFirst = state.holdingNext;
    else state.holdingPrevious.holdingNext = state.holdingNext;
    if (state.holdingNext === null) this.holdingLast = state.holdingPrevious;
    else state.holdingNext.holdingPrevious = state.holdingPrevious;
    state.holdingPrevious = null;
    state.holdingNext = null;
  }

  /** Inserts into the stream's held records in source order (stable: equal keys keep arrival order). */
  private hold(state: StreamState, record: LogRecord, due: number): void {
    let toFront = true;
    if (state.held === NOTHING_HELD) {
      state.held = record;
      this.startHolding(state);
    } else {
      toFront = this.heldQueueOf(state).insert(record, due);
    }
    // NaN (nothing grouped yet) is less than nothing.
    if (toFront && record.sourceUs !== undefined && record.sourceUs < this.clocks.get(state.clockSlot, Clock.LastSourceUs)) this.counters.lateRecords++;
    this.heldCount++;
    this.heldBytesTotal += record.message.length + HELD_RECORD_OVERHEAD_BYTES;
  }

  /** The stream's queue of held records, made for its lone record when it holds one (it holds something). */
  private heldQueueOf(state: StreamState): HeldQueue {
    const held = state.held;
    if (held instanceof HeldQueue) return held;
    const queue = new HeldQueue();
    queue.insert(held, this.loneDue(state));
    state.held = queue;
    return queue;
  }

  /**
   * Groups at most `limit` held records from the front while they are due by `until` (the front
   * blocks those behind it); with `now`, those not yet due by then count as early releases.
   * Returns how many.
   */
  private release(state: StreamState, until: number, limit = Number.POSITIVE_INFINITY, now?: number): number {
    const held = state.held;
    if (!(held instanceof HeldQueue)) {
      const due = this.loneDue(state);
      if (limit < 1 || due > until) return 0;
      state.held = NOTHING_HELD;
      this.stopHolding(state);
      this.noteReleased(held, due, now);
      this.group(state, held);
      return 1;
    }
    let count = 0;
    const record = this.released;
    for (let due = held.firstDue(); count < limit && held.size > 0 && due <= until; due = held.firstDue()) {
      held.shiftInto(record);
      count++;
      this.noteReleased(record, due, now);
      this.group(state, record);
    }
    // A stream that holds nothing shares the empty queue: 100,000 quiet streams keep no arrays.
    if (held.size === 0 && held !== NOTHING_HELD) {
      state.held = NOTHING_HELD;
      this.stopHolding(state);
    }
    return count;
  }

  /** A held record, due at `due`, leaves the held ones; with `now`, early when not due by then. */
  private noteReleased(record: LogRecord, due: number, now: number | undefined): void {
    this.heldCount--;
    this.heldBytesTotal -= record.message.length + HELD_RECORD_OVERHEAD_BYTES;
    if (now !== undefined && due > now) this.counters.earlyReleases++;
  }

  /** One record, in source order, through the state machine. */
  private group(state: StreamState, record: LogRecord): void {
    if (!state.grouped) {
      state.grouped = true;
      this.noticeRestart(state);
    }
    const sourceUs = record.sourceUs;
    if (sourceUs !== undefined) {
      // Against NaN (nothing grouped yet) the comparison is false.
      const slot = state.clockSlot;
      if (state.lines !== null && sourceUs - this.clocks.get(slot, Clock.LastSourceUs) > state.config.silenceMs * 1000) {
        this.closeGroup(state, 'silence', false);
        state.swallowing = false;
      }
      this.clocks.set(slot, Clock.LastSourceUs, sourceUs);
    }
    const message = record.message;
    if (typeof message !== 'string') return;
    if (message.indexOf('\n') < 0) {
      this.pushLine(state, message, record);
    } else {
      const lines = message.split('\n');
      for (let lineIndex = 0; lineIndex < lines.length; lineIndex++) this.pushLine(state, lines[lineIndex] as string, record);
    }
    if (this.openBytesTotal > this.limits.maxBytes) this.evictForBytes(state);
  }

  /**
   * The first record grouped for a new pid closes the open group of the process it replaced (same
   * host and service). Two live processes of one service on one host close each other's group at
   * most once, when the second first shows up.
   */
  private noticeRestart(state: StreamState): void {
    if (state.pid === '') return;
    const previous = this.currentProcessOf(state.host, state.service);
    // Lines of the old process still held for reordering will close its record themselves.
    if (previous !== undefined && previous !== state && previous.lines !== null && previous.held === NOTHING_HELD) {
      this.counters.pidChanges++;
      this.closeGroup(previous, 'pid-change', false);
    }
    this.setCurrentProcess(state);
  }

  private currentProcessOf(host: string, service: string): StreamState | undefined {
    const entry = this.currentProcesses.get(host);
    if (entry instanceof Map) return entry.get(service);
    return entry?.service === service ? entry : undefined;
  }

  private setCurrentProcess(state: StreamState): void {
    const entry = this.currentProcesses.get(state.host);
    if (entry instanceof Map) entry.set(state.service, state);
    else if (entry === undefined || entry.service === state.service) this.currentProcesses.set(state.host, state);
    else this.currentProcesses.set(state.host, new Map([[entry.service, entry], [state.service, state]]));
  }

  private forgetCurrentProcess(state: StreamState): void {
    const entry = this.currentProcesses.get(state.host);
    if (entry === state) this.currentProcesses.delete(state.host);
    else if (entry instanceof Map && entry.get(state.service) === state) {
      entry.delete(state.service);
      if (entry.size === 0) this.currentProcesses.delete(state.host);
    }
  }

  private pushLine(state: StreamState, rawLine: string, record: LogRecord): void {
    this.counters.linesIn++;
    // CRLF input: the \r is not part of the line.
    const line = rawLine.charCodeAt(rawLine.length - 1) === 13 ? rawLine.slice(0, -1) : rawLine;
    if (line.length === 0) return;
    const config = state.config;
    const group = state.lines;

    const second = state.secondHeader;
    if (second !== null && group !== null) {
      state.secondHeader = null;
      if (typeof group === 'string' && matches(second, line)) {
        this.append(state, line, record, true);
        return;
      }
    }

    let header: HeaderPattern | null = null;
    const builtIn = record.header !== undefined && line === record.message ? record.header : isHeaderLine(line);
    if (builtIn || (config.headers.length > 0 && (header = matchingHeader(config.headers, line)) !== null)) {
      this.startRecord(state, line, record, Phase.Header);
      state.secondHeader = header?.second ?? null;
      return;
    }

    let kind = lineKindOf(line);
    if (kind === LineKind.Blank) return;
    if ((kind === LineKind.Plain || kind === LineKind.ExceptionStart) && config.continue.length > 0 && matchesAny(config.continue, line)) {
      kind = LineKind.Frame;
    }
    if (state.swallowing) {
      if (kind === LineKind.Frame || kind === LineKind.Cause || kind === LineKind.Nested) {
        this.counters.swallowedLines++;
        return;
      }
      state.swallowing = false;
    }

    if (state.continuesNext && group !== null) {
      this.append(state, line, record, true);
      state.phase = Phase.Message;
      state.hasException = true;
      state.expectException = false;
      return;
    }

    switch (kind) {
      case LineKind.Frame:
        if (group === null) {
          this.startRecord(state, line, record, Phase.Trace);
        } else {
          this.append(state, line, record, true);
          state.phase = Phase.Trace;
        }
        return;
      case LineKind.Cause:
        if (group === null) this.startRecord(state, line, record, Phase.Message);
        else this.append(state, line, record, true);
        state.phase = Phase.Message;
        state.hasException = true;
        // `Caused by: ` alone (Jetty prints the cause on the next line).
        state.expectException = isBareCause(line);
        return;
      case LineKind.Nested:
        if (group === null) {
          this.startRecord(state, line, record, Phase.Plain);
          return;
        }
        this.append(state, line, record, true);
        state.phase = Phase.Message;
        state.expectException = true;
        return;
      case LineKind.ExceptionStart: {
        const phase = state.phase;
        let joins = false;
        if (group !== null) {
          if (phase === Phase.Header || state.expectException) {
            joins = true;
          } else if (phase === Phase.Message && !state.hasException) {
            // Plain lines between a header and this exception continued its message; but a line
            // taken as the header's throwable was println output of its own (a printStackTrace
            // follows): the record closes without it and it stands alone.
            joins = !state.throwableCandidate;
            state.throwableCandidate = false;
          }
        }
        if (joins) this.append(state, line, record, true);
        else this.startRecord(state, line, record, Phase.Message);
        state.phase = Phase.Message;
        state.hasException = true;
        state.expectException = false;
        return;
      }
      default: {
        // A plain line.
        const phase = state.phase;
        if (group !== null && phase === Phase.Header) {
          this.append(state, line, record, false);
          // Read once the line is in (it may be the one after the header); a cut closed the group, and then nothing reads it.
          const open = state.lines;
          state.throwableCandidate = open !== null && (headerTakesAnyThrowable(open) || looksLikeThrowable(line));
          state.phase = Phase.Message;
        } else if (group !== null && phase === Phase.Message && lineCount(group) - state.confirmed < MAX_TENTATIVE_LINES) {
          this.append(state, line, record, false);
        } else {
          this.startRecord(state, line, record, Phase.Plain);
        }
      }
    }
  }

  /** Closes the open group (its tentative lines split off) and opens a new one with this line. */
  private startRecord(state: StreamState, line: string, record: LogRecord, phase: Phase): void {
    if (state.lines !== null) this.closeGroup(state, 'next-record', false);
    state.swallowing = false;
    this.openGroup(state, line, record);
    state.phase = phase;
  }

  /** Adds a line to the open group; `certain` confirms every tentative line before it too. */
  private append(state: StreamState, line: string, record: LogRecord, certain: boolean): void {
    const lines = state.lines as string | string[];
    const count = lineCount(lines);
    const config = state.config;
    if (count >= config.maxLines) {
      this.cutAtLimit(state, 'max-lines');
      return;
    }
    const size = line.length + 1;
    if (state.groupBytes + size > config.maxBytes) {
      this.cutAtLimit(state, 'max-bytes');
      return;
    }
    if (typeof lines === 'string') state.lines = [lines, line];
    else lines.push(line);
    state.groupBytes += size;
    this.openBytesTotal += size;
    state.continuesNext = endsWithNestedIs(line);
    const position = record.journalPos;
    if (certain) {
      state.throwableCandidate = false;
      if (state.tentative !== NO_TENTATIVE) {
        for (const tentative of state.tentative) if (tentative.position !== undefined) this.notePosition(state, tentative.position);
        state.tentative = NO_TENTATIVE;
      }
      state.confirmed = count + 1;
      if (position !== undefined) this.notePosition(state, position);
    } else {
      if (state.tentative === NO_TENTATIVE) state.tentative = [];
      state.tentative.push({ time: record.time, position });
    }
  }

  /** The line that did not fit is the first swallowed one; the trace's remaining lines follow it. */
  private cutAtLimit(state: StreamState, reason: CloseReason): void {
    this.closeGroup(state, reason, true);
    state.swallowing = true;
    this.counters.swallowedLines++;
  }

  private openGroup(state: StreamState, line: string, record: LogRecord): void {
    const maxBytes = state.config.maxBytes;
    // A single line longer than the whole budget is kept cut, so one group never exceeds it.
    const kept = line.length + 1 > maxBytes ? line.slice(0, Math.max(0, maxBytes - 1)) : line;
    const bytes = kept.length + 1;
    state.lines = kept;
    this.clocks.set(state.clockSlot, Clock.GroupTime, record.time);
    this.clocks.set(state.clockSlot, Clock.FirstPosition, record.journalPos ?? Number.NaN);
    if (state.positions !== NO_POSITIONS) state.positions = NO_POSITIONS;
    state.confirmed = 1;
    state.hasException = false;
    state.expectException = false;
    state.continuesNext = endsWithNestedIs(kept);
    state.throwableCandidate = false;
    state.secondHeader = null;
    state.groupBytes = bytes;
    this.openGroupCount++;
    this.openBytesTotal += bytes;
    if (kept !== line) {
      this.closeGroup(state, 'max-bytes', true);
      state.swallowing = true;
    }
  }

  private closeGroup(state: StreamState, reason: CloseReason, truncated: boolean): void {
    const open = state.lines;
    if (open === null) return;
    const lines = typeof open === 'string' ? [open] : open;
    // The header's throwable candidate stays with its record, unless an exception line disowned it.
    let tentativeLines = state.tentative;
    if (state.throwableCandidate) {
      state.confirmed++;
      tentativeLines = tentativeLines.slice(1);
    }
    const tentative = lines.length > state.confirmed ? lines.splice(state.confirmed) : null;
    state.lines = null;
    state.phase = Phase.None;
    state.secondHeader = null;
    state.throwableCandidate = false;
    state.continuesNext = false;
    state.tentative = NO_TENTATIVE;
    this.openGroupCount--;
    this.openBytesTotal -= state.groupBytes;
    state.groupBytes = 0;
    this.counters.groupsClosed++;
    if (truncated) this.counters.truncatedGroups++;
    const order = this.closeOrder;
    const time = this.clocks.get(state.clockSlot, Clock.GroupTime);
    this.close(closedGroup(state, time, lines, truncated, reason), order);
    if (tentative === null) return;
    // Lines that only might have continued the message: each is a record of its own.
    for (let index = 0; index < tentative.length; index++) {
      this.counters.groupsClosed++;
      this.close(closedGroup(state, tentativeLines[index]?.time ?? time, [tentative[index] as string], false, reason), order);
    }
  }

  /** Adds a journal position to the open group's, once per record (its lines come one after another). */
  private notePosition(state: StreamState, position: number): void {
    const first = this.clocks.get(state.clockSlot, Clock.FirstPosition);
    if (first !== first) {
      this.clocks.set(state.clockSlot, Clock.FirstPosition, position);
      return;
    }
    const positions = state.positions;
    const last = positions === NO_POSITIONS ? first : (positions[positions.length - 1] as number);
    if (last === position) return;
    if (positions === NO_POSITIONS) state.positions = [position];
    else positions.push(position);
  }

  /** When the stream's front held record may be grouped; +Infinity when it holds none. */
  private firstDue(state: StreamState): number {
    const held = state.held;
    return held instanceof HeldQueue ? held.firstDue() : this.loneDue(state);
  }

  /** When its last held record may be grouped (the latest); -Infinity when it holds none. */
  private lastDue(state: StreamState): number {
    const held = state.held;
    return held instanceof HeldQueue ? held.lastDue() : this.loneDue(state);
  }

  /** When a stream's lone held record may be grouped: it was the stream's last arrival. */
  private loneDue(state: StreamState): number {
    return this.clocks.get(state.clockSlot, Clock.LastArrival) + state.config.reorderWindowMs;
  }

  /** Over the shared byte budget: close the least recently used groups, sparing the one being fed. */
  private evictForBytes(current: StreamState): void {
    this.streams.forEachOldest((state) => {
      if (this.openBytesTotal <= this.limits.maxBytes) return false;
      if (state === current || state.lines === null) return;
      this.counters.evictions++;
      this.closeGroup(state, 'evicted', false);
    });
  }
}

/** A group of the stream's, as the closer is handed it. */
function closedGroup(state: StreamState, time: number, lines: string[], truncated: boolean, closeReason: CloseReason): Group {
  return { stream: state.stream, host: state.host, service: state.service, pid: state.pid, time, lines, truncated, closeReason };
}

/** Lines of an open group (StreamState.lines). */
function lineCount(lines: string | readonly string[]): number {
  return typeof lines === 'string' ? 1 : lines.length;
}



/**
 * Whether the line right after this header may be taken as the record's throwable whatever its
 * shape. Loggers print the throwable right after the message, so after a warning or an error any
 * line may be its toString(); after INFO and below only a line that looks like one (linkerd logs
 * `Reset.Cancel` at DEBUG) or that a frame below confirms, or it is println output of its own.
 */
function headerTakesAnyThrowable(lines: string | readonly string[]): boolean {
  const second = typeof lines === 'string' ? undefined : lines[1];
  const rank = levelRank(typeof lines === 'string' ? lines : (lines[0] as string)) || (second === undefined ? 0 : levelRank(second));
  return rank === 0 || rank >= WARN_RANK;
}

const WARN_RANK = 3;
const LEVEL_WORD = /\b(FINEST|FINER|FINE|TRACE|DEBUG|CONFIG|INFO|NOTICE|WARNING|WARN|SEVERE|ERROR|FATAL|CRITICAL)\b/;
const LEVEL_RANKS: Readonly<Record<string, number>> = {
  FINEST: 1, FINER: 1, FINE: 1, TRACE: 1, DEBUG: 1, CONFIG: 2, INFO: 2, NOTICE: 2,
  WARNING: 3, WARN: 3, SEVERE: 4, ERROR: 4, FATAL: 5, CRITICAL: 5, UNKNOWN: 0,
};

/** 0 when the line names no level. Runs only when a plain line follows a header. */
function levelRank(line: string): number {
  const builtIn = parseLineHeader(line)?.level;
  if (builtIn) return LEVEL_RANKS[builtIn] ?? 0;
  const word = LEVEL_WORD.exec(line.length > 200 ? line.slice(0, 200) : line)?.[1];
  return word === undefined ? 0 : (LEVEL_RANKS[word] ?? 0);
}

/** `Caused by:` or `Suppressed:` with nothing after it: the throwable is on the next line. */
function isBareCause(line: string): boolean {
  const colon = line.indexOf(':');
  for (let index = colon + 1; index < line.length; index++) {
    const code = line.charCodeAt(index);
    if (code !== 32 && code !== 9) return false;
  }
  return true;
}

/** RemoteException's message ends `; nested exception is: ` and the detail's toString follows on the next line. */
function endsWithNestedIs(line: string): boolean {
  // Nearly every line ends in neither `:` nor a space: one char test decides.
  const last = line.charCodeAt(line.length - 1);
  if (last !== 58 && last !== 32) return false;
  let end = line.length;
  while (end > 0 && line.charCodeAt(end - 1) === 32) end--;
  return line.charCodeAt(end - 1) === 58 /* : */ && line.endsWith('nested exception is:', end);
}

function matches(pattern: RegExp, line: string): boolean {
  // A global or sticky regex keeps lastIndex between calls; reset it so results do not depend on history.
  pattern.lastIndex = 0;
  return pattern.test(line);
}

function matchesAny(patterns: readonly RegExp[], line: string): boolean {
  for (const pattern of patterns) if (matches(pattern, line)) return true;
  return false;
}

const prefilters = new WeakMap<readonly HeaderPattern[], HeaderPrefilter>();

/** The layout whose header this line is; a second header line without its first starts a record too (an excerpt). */
function matchingHeader(headers: readonly HeaderPattern[], line: string): HeaderPattern | null {
  let prefilter = prefilters.get(headers);
  if (prefilter === undefined) {
    prefilter = headerPrefilter(headers.flatMap((header) => (header.second === null ? [header.first] : [header.first, header.second])));
    prefilters.set(headers, prefilter);
  }
  if (prefilter.union !== null && !prefilter.union.test(line) && !matchesAny(prefilter.alone, line)) return null;
  for (const header of headers) if (matches(header.first, line)) return header;
  for (const header of headers) if (header.second !== null && matches(header.second, line)) return SECOND_LINE_ALONE;
  return null;
}

const SECOND_LINE_ALONE: HeaderPattern = { name: 'second-line', first: /$^/, second: null };
