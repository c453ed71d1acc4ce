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
  last_event: LeakEvent;
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
  pending: number[];
}

/**
 * Batches that ingest answered 200 for, kept until every record of them is in a group that has
 * closed and been stored, so that a crash (kill -9, OOM kill) loses nothing that was acknowledged
 * and a replay counts nothing twice.
 */
export interface IngestJournal {
  /** Stores the batch durably and returns its sequence number (increasing). */
  appendJournal(receivedAt: number, content: JournalContent): number;
  /** Batches with seq > afterSeq, oldest first, at most `limit`. */
  journalAfter(afterSeq: number, limit: number): JournalBatch[];
  /** In one transaction: deletes the batches with seq <= pruneThrough and records the checkpoint. */
  checkpointJournal(pruneThrough: number, checkpoint: JournalCheckpoint): void;
  /** The last checkpoint, or undefined when none was recorded. */
  journalCheckpoint(): JournalCheckpoint | undefined;
  /** Gives free pages back to the file system, a bounded number per call; returns how many. */
  reclaimSpace(maxPages?: number): number;
}

export interface Store extends IngestJournal {
  /** Runs `work` in one transaction: all of it is committed, or none of it. Nested calls join the outer one. */
  transaction<T>(work: () => T): T;

  hasEvent(id: string): boolean;
  insertEvent(event: LeakEvent, time: number): void;
  /** Newest first, at most `limit`. */
  eventsOfIncident(incidentId: string, limit: number): LeakEvent[];
  /** Counts per category of events on host+service with time in [from, to], without `excludeCategory`. */
  categoryCounts(host: string, service: string, from: number, to: number, excludeCategory: string): EvidenceEntry[];

  incidentByKey(key: string): IncidentRecord | undefined;
  incident(id: string): IncidentRecord | undefined;
  saveIncident(incident: IncidentRecord): void;
  listIncidents(query: IncidentQuery): IncidentRecord[];
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
