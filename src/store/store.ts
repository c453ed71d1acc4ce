import type { LeakEvent, Severity } from '../engine/event.js';
import type { ReceivedBody } from '../ingest/decode-body.js';
import type { LogRecord } from '../ingest/record.js';

/**
 * The narrow persistence interface behind incidents and memory tracking. SQLite (sqlite-store.ts)
 * is the one implementation; a server database can replace it by implementing this interface.
 * All times are ms since the epoch; event time unless a field says otherwise.
 */

export type IncidentStatus = 'open' | 'resolved';

/** Other categories seen on the same host+service in the window before an incident opened. */
export interface EvidenceEntry {
  category: string;
  count: number;
  first_seen: number;
  last_seen: number;
}

export interface IncidentRecord {
  id: string;
  key: string;
  rule: string;
  category: string;
  severity: Severity;
  status: IncidentStatus;
  host: string;
  service: string;
  pids: string[];
  first_seen: number;
  last_seen: number;
  count: number;
  summary: string;
  fields: LeakEvent['fields'];
  evidence: EvidenceEntry[];
  /** The newest event, stored in events at time last_seen (lastEventsOf reads it). */
  last_event_id: string;
  /** Wall-clock time of the last ack; cleared on reopen. */
  acked_at: number | null;
  /** Event time (last_seen + quiet period) for automatic resolution, wall-clock time for a manual one. */
  resolved_at: number | null;
  reopened_count: number;
}

export interface IncidentQuery {
  status: IncidentStatus | 'all';
  host?: string;
  service?: string;
  category?: string;
  rule?: string;
  severity?: Severity;
  /** Only incidents with last_seen >= since. */
  since?: number;
  limit: number;
  /** Keyset position: return incidents strictly after (last_seen desc, id asc). */
  after?: { last_seen: number; id: string };
}

export interface MemorySample {
  t: number;
  used_bytes: number;
  /** The known limit at that moment, or null when the source does not tell it. */
  max_bytes: number | null;
  source: string;
}

export interface ProcessId {
  host: string;
  service: string;
  pid: string;
}

export interface StoredSample extends MemorySample, ProcessId {}

/** A direct-memory limit a process reported, which holds for its host and service (successors run with the same flags). */
export interface LearnedLimit extends ProcessId {
  max_bytes: number;
  /** Event time of the report. */
  learned_at: number;
  source: string;
}

/** What a journaled batch is kept as: the body it came in (decoded again on replay), or records built in process. */
export type JournalContent = { body: ReceivedBody } | { records: readonly LogRecord[] };

export interface JournalBatch {
  seq: number;
  receivedAt: number;
  content: { body: ReceivedBody } | { records: LogRecord[] };
}

/**
 * Where grouping stood at the last checkpoint: every record of the batches up to `pushedThrough`
 * had been given to the engine, and of those only the records at `pending` (journal positions,
 * LogRecord.journalPos) were not yet in a closed group. A replay feeds those and the later batches.
 */
export interface JournalCheckpoint {
  pushedThrough: number;
  pending: readonly number[] | Float64Array;
}

/**
 * Batches that ingest answered 200 for, kept until every record of them is in a group that has
 * closed and been stored, so that a crash (kill -9, OOM kill) loses nothing that was acknowledged
 * and a replay counts nothing twice.
 */
export interface IngestJournal {
  /**
   * Stores the batch durably and returns its sequence number (increasing), or a promise of it that
   * settles once the batch is stored: promises settle in the order of the calls.
   */
  appendJournal(receivedAt: number, content: JournalContent): number | Promise<number>;
  /** Batches with seq > afterSeq, oldest first, at most `limit`. */
  journalAfter(afterSeq: number, limit: number): JournalBatch[];
  /** Records the checkpoint, then drops batches with seq <= pruneThrough (whole segment files: some may stay, the replay skips them). */
  checkpointJournal(pruneThrough: number, checkpoint: JournalCheckpoint): void;
  /** The last checkpoint, or undefined when none was recorded. */
  journalCheckpoint(): JournalCheckpoint | undefined;
  /** Gives free pages back to the file system, a bounded number per call; returns how many. */
  reclaimSpace(maxPages?: number): number;
}

/** An outbox entry as the forwarder gives it: which target, which lane, what. */
export interface OutboxEntryInput {
  target: string;
  lane: number;
  stream: string;
  recordId: string;
  /** The event (or grouped record) as JSON. */
  body: string;
}

/** A pending entry as the forwarder sends it. */
export interface OutboxEntry {
  id: number;
  target: string;
  lane: number;
  stream: string;
  recordId: string;
  /** Wall-clock ms when it was queued (or re-queued from the dead letters). */
  createdAt: number;
  bytes: number;
  body: string;
  attempts: number;
  /** Not to be sent before this (wall-clock ms): the backoff after a failed attempt. */
  nextAt: number;
  lastStatus: number | null;
  lastError: string | null;
}

/** A dead letter as GET /forward/dead-letters lists it (without its body). */
export interface DeadLetter {
  id: number;
  target: string;
  recordId: string;
  createdAt: number;
  deadAt: number;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  bytes: number;
}

/** Entries and bytes of one target, pending and dead. */
export interface OutboxTotals {
  target: string;
  pendingEntries: number;
  pendingBytes: number;
  deadEntries: number;
  deadBytes: number;
}

/** What an attempt ended with, kept on the entry: HTTP status (0: no answer) and a short reason. */
export interface AttemptFailure {
  status: number;
  error: string;
}

/**
 * The durable outbox of the forwarder: entries are added in the transaction that stores their
 * event, and leave only once their target has taken them. Failed entries wait (`nextAt`) or
 * become dead letters, which stay until retried or aged out.
 */
export interface ForwardOutbox {
  /** Adds the entries a target does not hold yet (by record id); returns how many were added. */
  enqueueOutbox(entries: readonly OutboxEntryInput[], now: number): number;
  /** Pending entries of one lane, oldest first, at most `limit`. */
  outboxLane(target: string, lane: number, limit: number): OutboxEntry[];
  /** Taken by the target: removed. */
  outboxDelivered(ids: readonly number[]): void;
  /** To be sent again from `nextAt` on; the attempt is counted and its failure kept. */
  outboxRetryLater(ids: readonly number[], nextAt: number, failure: AttemptFailure): void;
  /** To the dead letters; the attempt is counted and its failure kept. */
  outboxDeadLetter(ids: readonly number[], failure: AttemptFailure, now: number): void;
  /**
   * Pending entries of the target (of one lane, or all) queued at or before `queuedBefore` become
   * dead letters with this failure; returns how many.
   */
  outboxGiveUp(target: string, lane: number | undefined, queuedBefore: number, failure: AttemptFailure, now: number): number;
  outboxTotals(): OutboxTotals[];
  /** When the target's oldest pending entry was queued; undefined when none is pending. */
  oldestPending(target: string): number | undefined;
  /** Dead letters in id order after `afterId`, of one target or all, at most `limit`. */
  deadLetters(query: { target?: string; afterId?: number; limit: number }): DeadLetter[];
  /** Dead letters of one target (or all) back to pending, as if queued now; returns how many. */
  requeueDeadLetters(target: string | undefined, now: number): number;
  /**
   * Drops dead letters queued before `queuedBefore`, then the oldest ones while the outbox holds
   * more than `maxBytes`; returns what was dropped, per target and reason.
   */
  dropDeadLetters(queuedBefore: number, maxBytes: number): Array<{ target: string; reason: 'age' | 'space'; entries: number }>;
  /** Moves the target's pending entries to the lane `laneOf` gives their stream; returns how many moved. */
  relaneOutbox(target: string, laneOf: (stream: string) => number): number;
  /** Targets that hold pending entries, configured or not. */
  outboxTargets(): string[];
}

export interface Store extends IngestJournal, ForwardOutbox {
  /** Runs `work` in one transaction: all of it is committed, or none of it. Nested calls join the outer one. */
  transaction<T>(work: () => T): T;
  /**
   * Only where several processes write the store (PostgreSQL, the scale-out mode): inside a
   * transaction, holds a lock per scope (host + service) until it ends, so that the incidents,
   * counts and evidence of one scope are changed by one process at a time, each reading what the
   * one before committed. Absent where one process writes (SQLite).
   */
  lockScopes?(scopes: readonly string[]): void;

  /** Whether the event of this id is stored; `time` is its time (ms), the same for every event of an id. */
  hasEvent(id: string, time: number): boolean;
  /** Of these ids, those stored: where each lookup is a round trip (PostgreSQL), one for a batch. Absent where hasEvent is cheap. */
  storedEventIds?(ids: readonly string[]): Set<string>;
  insertEvent(event: LeakEvent, time: number): void;
  /** Newest first, at most `limit`. */
  eventsOfIncident(incidentId: string, limit: number): LeakEvent[];
  /** Counts per category of events on host+service with time in [from, to], without `excludeCategory`. */
  categoryCounts(host: string, service: string, from: number, to: number, excludeCategory: string): EvidenceEntry[];

  incidentByKey(key: string): IncidentRecord | undefined;
  incident(id: string): IncidentRecord | undefined;
  saveIncident(incident: IncidentRecord): void;
  listIncidents(query: IncidentQuery): IncidentRecord[];
  /** The stored last events of these incidents, by incident id; one read for them all. */
  lastEventsOf(incidents: readonly IncidentRecord[]): Map<string, LeakEvent>;
  /** The incidents of a host+service opened in [from, to] (whose evidence window a new event falls in): ids, categories, openings. */
  incidentsOpenedBetween(host: string, service: string, from: number, to: number): Array<{ id: string; category: string; first_seen: number }>;
  /** Open incidents with last_seen < before: resolved at last_seen + quietMs. Returns how many. */
  resolveQuiet(before: number, quietMs: number): number;

  /** Small persistent values (the event-time watermark). */
  getMeta(key: string): string | undefined;
  setMeta(key: string, value: string): void;

  /** Keeps the newest `keep` events of the incident. Returns how many were deleted. */
  pruneEventsOfIncident(incidentId: string, keep: number): number;
  /** Deletes resolved incidents (and their events) with last_seen < before. Returns how many. */
  pruneResolvedIncidents(before: number): number;

  insertSamples(samples: readonly StoredSample[]): void;
  /** Newest first, at most `limit`, optionally only in [since, until]. */
  samplesOf(process: ProcessId, limit: number, since?: number, until?: number): MemorySample[];
  /** Latest non-null max_bytes of the process, optionally as known at `until`. */
  knownMaxOf(process: ProcessId, until?: number): number | null;
  processes(filter?: { host?: string; service?: string }): ProcessId[];
  /** Keeps the limit when it is at least as new as the one stored for its host and service. */
  saveLimit(limit: LearnedLimit): void;
  /** The newest limit learned on this host and service, from any of its processes. */
  limitOf(host: string, service: string): LearnedLimit | undefined;
  pruneSamplesOf(process: ProcessId, keep: number): number;
  /** Deletes every sample of processes whose newest sample is older than `before` (pids gone for good). */
  pruneSilentProcesses(before: number): number;

  close(): void;
}
