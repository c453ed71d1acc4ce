import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { Annotations, LeakEvent } from '../engine/event.js';
import type { LogRecord } from '../ingest/record.js';
import type { CountedEvent, CountedEventSource } from '../rules/count-windows.js';
import { compiledWorkerFile } from '../worker-file.js';
import { migrate } from './migrations.js';
import { journalCheckpointOf, journalCheckpointText, JOURNAL_CHECKPOINT_KEY, toDeadLetter, toOutboxEntry, toOutboxTotals, toRecord, toRow, type DeadLetterRow, type IncidentRow, type OutboxRow, type OutboxTotalsRow } from './rows.js';
import { SegmentJournal } from './segment-journal.js';
import type {
  AttemptFailure,
  DeadLetter,
  EvidenceEntry,
  IncidentQuery,
  IncidentRecord,
  JournalBatch,
  JournalCheckpoint,
  LearnedLimit,
  JournalContent,
  MemorySample,
  OutboxEntry,
  OutboxEntryInput,
  OutboxTotals,
  ProcessId,
  Store,
  StoredSample,
} from './store.js';

export const DB_FILE_NAME = 'leakwatch.db';
/** The ingest journal's segment files, in the data directory. */
export const JOURNAL_DIR_NAME = 'journal';

export interface SqliteStoreOptions {
  /**
   * NORMAL (default): in WAL mode a commit reaches the OS before it returns, so a killed process
   * (kill -9, crash, OOM kill) loses nothing committed; only a power loss or kernel crash can drop
   * the last transactions (never corrupting the file). FULL also fsyncs every commit, which
   * survives power loss at the price of one fsync per batch.
   */
  synchronous?: 'NORMAL' | 'FULL';
  /**
   * Checkpoint the write-ahead log on a thread of its own (the server does) instead of inside the
   * commit that crosses the threshold. Without a compiled worker (the TypeScript sources) SQLite
   * checkpoints in the commit as usual.
   */
  checkpointOnThread?: boolean;
  /**
   * The annotation texts that are the same in every event of their rule (RuleSet.fixedTexts),
   * asked at each event stored: each is kept once in rule_texts, and an event's row names it by
   * number. Without it every row keeps its annotations whole.
   */
  fixedTexts?: () => ReadonlySet<string>;
}

/** An event's annotations as its row keeps them: a number names a row of rule_texts. */
type StoredAnnotations = { [Key in keyof Annotations]?: string | number };

/** Where a row's message is this, the event's message is the first line of its text. */
const MESSAGE_IS_FIRST_LINE = 0;

/** An event as its row keeps it: what it repeats (a rule's fixed texts, its text's first line) is named instead. */
type StoredEvent = Omit<LeakEvent, 'annotations' | 'message'> & { annotations?: StoredAnnotations; message: string | typeof MESSAGE_IS_FIRST_LINE };

function firstLineOf(text: string): string {
  const end = text.indexOf('\n');
  return end === -1 ? text : text.slice(0, end);
}

/** firstLineOf(text) === message, without making the line: asked of every event stored. */
function isFirstLineOf(message: string, text: string): boolean {
  const end = text.indexOf('\n');
  return (end === -1 ? text.length : end) === message.length && text.startsWith(message);
}

/** Pages of write-ahead log after which it is copied into the database (16 MiB of 4 KiB pages). */
const WAL_CHECKPOINT_PAGES = 4000;

/** The store's checkpoints on a thread (wal-checkpoint-worker.ts); back to SQLite's own if it fails. */
class WalCheckpointThread {
  static readonly FILE = compiledWorkerFile(new URL('./wal-checkpoint-worker.js', import.meta.url));
  private readonly worker: Worker;
  private stopped = false;
  checkpoints = 0;

  constructor(file: URL, path: string, onFailure: (why: string) => void) {
    this.worker = new Worker(file, {
      workerData: { path, thresholdBytes: WAL_CHECKPOINT_PAGES * 4096, everyMs: 250, sizeLimitBytes: 0 },
    });
    this.worker.unref();
    this.worker.on('message', () => this.checkpoints++);
    this.worker.on('error', (error) => onFailure(error.message));
    this.worker.on('exit', (code) => {
      if (!this.stopped) onFailure(`its thread exited with code ${code}`);
    });
  }

  stop(): void {
    this.stopped = true;
    this.worker.postMessage({ kind: 'stop' });
  }
}

function toJournalBatch(row: JournalRow): JournalBatch {
  return {
    seq: row.seq,
    receivedAt: row.received_at,
    content:
      row.body !== null
        ? { body: { body: row.body, contentType: row.content_type ?? undefined, contentEncoding: row.content_encoding ?? undefined } }
        : { records: JSON.parse(row.records ?? '[]') as LogRecord[] },
  };
}

interface JournalRow {
  seq: number;
  received_at: number;
  records: string | null;
  body: Buffer | null;
  content_type: string | null;
  content_encoding: string | null;
}




/** The SQLite implementation of Store: one file `leakwatch.db` in the data directory, WAL mode. */
export class SqliteStore implements Store, CountedEventSource {
  readonly path: string;
  readonly schemaVersion: number;
  private readonly db: Database.Database;
  private readonly statements;
  /** The ingest journal's batches, in segment files beside the database (segment-journal.ts). */
  private readonly segments: SegmentJournal;
  private checkpointThread: WalCheckpointThread | undefined;
  private readonly fixedTexts: (() => ReadonlySet<string>) | undefined;
  /** rule_texts ids of a rule set's fixed texts; learnt again for another set or after a rollback. */
  private learnt: { texts: ReadonlySet<string>; ids: Map<string, number> } | undefined;
  /** rule_texts rows read back (never deleted, and as few as the rule texts there ever were). */
  private readonly textById = new Map<number, string>();

  constructor(dataDir: string, options: SqliteStoreOptions = {}) {
    mkdirSync(dataDir, { recursive: true });
    this.path = join(dataDir, DB_FILE_NAME);
    this.db = new Database(this.path);
    try {
      // Pages freed by the journal and retention go back to the file system (reclaimSpace), so a
      // flood does not leave a file of free pages behind. A file made before this needs one VACUUM.
      if (this.db.pragma('auto_vacuum', { simple: true }) !== INCREMENTAL) {
        this.db.pragma('auto_vacuum = INCREMENTAL');
        this.db.exec('VACUUM');
      }
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${options.synchronous ?? 'NORMAL'}`);
      // After a checkpoint the write-ahead log is cut back to this size instead of keeping its peak.
      this.db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
      // Checkpoints (the only fsyncs with synchronous=NORMAL) every 16 MiB of log instead of 4.
      this.db.pragma(`wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
      // Another process (a second leakwatch, sqlite3 CLI) holding the lock briefly should not fail a batch.
      this.db.pragma('busy_timeout = 5000');
      // Statement journals (a statement that fires the outbox triggers needs one) stay in memory, not in temp files.
      this.db.pragma('temp_store = MEMORY');
      this.schemaVersion = migrate(this.db);
    } catch (error) {
      this.db.close();
      throw new Error(`cannot open store ${this.path}: ${(error as Error).message}`, { cause: error });
    }
    this.statements = this.prepare();
    this.fixedTexts = options.fixedTexts;
    const checkpoint = this.journalCheckpoint();
    const newestInTable = (this.db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'ingest_journal'").pluck().get() as number | undefined) ?? 0;
    // New batches are numbered after every seq the checkpoint or an older journal has seen.
    try {
      this.segments = new SegmentJournal(join(dataDir, JOURNAL_DIR_NAME));
      this.moveTableJournalToSegments();
      this.segments.raiseFloor(Math.max(checkpoint?.pushedThrough ?? 0, newestInTable));
    } catch (error) {
      this.db.close();
      throw new Error(`cannot open the ingest journal in ${join(dataDir, JOURNAL_DIR_NAME)}: ${(error as Error).message}`, { cause: error });
    }
    if (options.checkpointOnThread === true && WalCheckpointThread.FILE !== undefined) {
      this.checkpointThread = new WalCheckpointThread(WalCheckpointThread.FILE, this.path, () => {
        // The log must not grow without end: SQLite checkpoints in its commits again.
        this.checkpointThread = undefined;
        if (!this.db.open) return;
        this.db.pragma(`wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
        this.db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
      });
      this.db.pragma('wal_autocheckpoint = 0');
      // The log is cut to nothing when it starts again after a checkpoint, so that its file's size
      // is what the thread has still to copy (with a size limit it would keep its peak size).
      this.db.pragma('journal_size_limit = 0');
    }
  }

  /** Checkpoints the log thread has made (0 when SQLite checkpoints in its commits). */
  get checkpointsOnThread(): number {
    return this.checkpointThread?.checkpoints ?? 0;
  }

  /** Batches a version that journaled into the database left there move to the segments, with their seqs. */
  private moveTableJournalToSegments(): void {
    const rows = this.statements.journalAfter.all(0, Number.MAX_SAFE_INTEGER) as JournalRow[];
    if (rows.length === 0) return;
    for (const batch of rows.map(toJournalBatch)) {
      if (batch.seq > this.segments.newestSeq) this.segments.append(batch.receivedAt, batch.content, batch.seq);
    }
    this.db.exec('DELETE FROM ingest_journal');
  }

  private prepare() {
    const db = this.db;
    return {
      hasEvent: db.prepare('SELECT 1 FROM events WHERE time = ? AND id = ?').pluck(),
      eventBody: db.prepare('SELECT body FROM events WHERE time = ? AND id = ?').pluck(),
      insertEvent: db.prepare(
        'INSERT INTO events (id, incident_id, time, host, service, category, body) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      addRuleText: db.prepare('INSERT INTO rule_texts (text) VALUES (?) ON CONFLICT (text) DO NOTHING'),
      ruleTextId: db.prepare('SELECT id FROM rule_texts WHERE text = ?').pluck(),
      ruleText: db.prepare('SELECT text FROM rule_texts WHERE id = ?').pluck(),
      eventsOfIncident: db
        .prepare('SELECT body FROM events WHERE incident_id = ? ORDER BY time DESC, rowid DESC LIMIT ?')
        .pluck(),
      // Keys come from the incidents the rule opened (the default incident key starts with the rule);
      // each incident's newest events of the rule version are read through events_by_incident.
      recentEventsOfRule: db.prepare(
        `WITH keys AS (
           SELECT key, MAX(last_seen) AS last_seen FROM incidents WHERE rule = ? GROUP BY key ORDER BY 2 DESC LIMIT ?
         ), recent AS (
           SELECT k.key AS incident_key, k.last_seen AS key_seen, e.time AS time, e.rowid AS row, e.id AS id
             FROM keys AS k JOIN incidents AS i ON i.key = k.key
             JOIN events AS e ON e.rowid IN (
               SELECT rowid FROM events
                WHERE incident_id = i.id AND json_extract(body, '$.rule') = ? AND json_extract(body, '$.rule_version') = ?
                ORDER BY time DESC LIMIT ?)
         ), ranked AS (
           SELECT *, ROW_NUMBER() OVER (PARTITION BY incident_key ORDER BY time DESC, row DESC) AS newest FROM recent
         )
         SELECT incident_key, id, time FROM ranked WHERE newest <= ? ORDER BY key_seen, incident_key, time`,
      ),
      categoryCounts: db.prepare(
        `SELECT category, COUNT(*) AS count, MIN(time) AS first_seen, MAX(time) AS last_seen
           FROM events WHERE host = ? AND service = ? AND time BETWEEN ? AND ? AND category <> ?
          GROUP BY category ORDER BY category`,
      ),
      incidentByKey: db.prepare('SELECT * FROM incidents WHERE key = ? ORDER BY first_seen DESC LIMIT 1'),
      incident: db.prepare('SELECT * FROM incidents WHERE id = ?'),
      saveIncident: db.prepare(
        `INSERT INTO incidents (id, key, rule, category, severity, status, host, service, pids, first_seen, last_seen,
                                count, summary, fields, evidence, last_event_id, acked_at, resolved_at, reopened_count)
         VALUES (@id, @key, @rule, @category, @severity, @status, @host, @service, @pids, @first_seen, @last_seen,
                 @count, @summary, @fields, @evidence, @last_event_id, @acked_at, @resolved_at, @reopened_count)
         ON CONFLICT (id) DO UPDATE SET
           key = excluded.key, rule = excluded.rule, category = excluded.category, severity = excluded.severity,
           status = excluded.status, host = excluded.host, service = excluded.service, pids = excluded.pids,
           first_seen = excluded.first_seen, last_seen = excluded.last_seen, count = excluded.count,
           summary = excluded.summary, fields = excluded.fields, evidence = excluded.evidence,
           last_event_id = excluded.last_event_id, acked_at = excluded.acked_at, resolved_at = excluded.resolved_at,
           reopened_count = excluded.reopened_count`,
      ),
      incidentsOpenedBetween: db.prepare(
        'SELECT id, category, first_seen FROM incidents WHERE host = ? AND service = ? AND first_seen BETWEEN ? AND ?',
      ),
      resolveQuiet: db.prepare(
        "UPDATE incidents SET status = 'resolved', resolved_at = last_seen + ? WHERE status = 'open' AND last_seen < ?",
      ),
      journalAfter: db.prepare(
        'SELECT seq, received_at, records, body, content_type, content_encoding FROM ingest_journal WHERE seq > ? ORDER BY seq LIMIT ?',
      ),
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      setMeta: db.prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ),
      pruneEventsOfIncident: db.prepare(
        `DELETE FROM events WHERE rowid IN (
           SELECT rowid FROM events WHERE incident_id = ? ORDER BY time DESC, rowid DESC LIMIT -1 OFFSET ?)`,
      ),
      countEventsOfIncident: db.prepare('SELECT COUNT(*) FROM events WHERE incident_id = ?').pluck(),
      deleteEventsOfResolved: db.prepare(
        "DELETE FROM events WHERE incident_id IN (SELECT id FROM incidents WHERE status = 'resolved' AND last_seen < ?)",
      ),
      deleteResolved: db.prepare("DELETE FROM incidents WHERE status = 'resolved' AND last_seen < ?"),
      insertSample: db.prepare(
        'INSERT OR IGNORE INTO memory_samples (host, service, pid, t, used_bytes, max_bytes, source) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      samplesOf: db.prepare(
        `SELECT t, used_bytes, max_bytes, source FROM memory_samples
          WHERE host = ? AND service = ? AND pid = ? AND t >= ? AND t <= ? ORDER BY t DESC, rowid DESC LIMIT ?`,
      ),
      knownMaxOf: db
        .prepare(
          `SELECT max_bytes FROM memory_samples WHERE host = ? AND service = ? AND pid = ? AND max_bytes IS NOT NULL AND t <= ?
            ORDER BY t DESC, rowid DESC LIMIT 1`,
        )
        .pluck(),
      // The next process in index order, one seek each: as one row value, (host, service, pid) > (?, ?, ?), SQLite seeks on the host alone.
      firstProcess: db.prepare('SELECT host, service, pid FROM memory_samples ORDER BY host, service, pid LIMIT 1'),
      firstProcessOfHost: db.prepare('SELECT host, service, pid FROM memory_samples WHERE host = ? ORDER BY service, pid LIMIT 1'),
      firstProcessOfService: db.prepare('SELECT host, service, pid FROM memory_samples WHERE host = ? AND service = ? ORDER BY pid LIMIT 1'),
      nextPidOf: db.prepare('SELECT host, service, pid FROM memory_samples WHERE host = ? AND service = ? AND pid > ? ORDER BY pid LIMIT 1'),
      nextServiceOf: db.prepare('SELECT host, service, pid FROM memory_samples WHERE host = ? AND service > ? ORDER BY service, pid LIMIT 1'),
      nextHost: db.prepare('SELECT host, service, pid FROM memory_samples WHERE host > ? ORDER BY host, service, pid LIMIT 1'),
      pruneSamplesOf: db.prepare(
        `DELETE FROM memory_samples WHERE rowid IN (
           SELECT rowid FROM memory_samples WHERE host = ? AND service = ? AND pid = ?
            ORDER BY t DESC, rowid DESC LIMIT -1 OFFSET ?)`,
      ),
      silentProcesses: db.prepare(
        'SELECT host, service, pid FROM memory_samples GROUP BY host, service, pid HAVING MAX(t) < ?',
      ),
      deleteSamplesOf: db.prepare('DELETE FROM memory_samples WHERE host = ? AND service = ? AND pid = ?'),
      saveLimit: db.prepare(
        `INSERT INTO direct_memory_limits (host, service, max_bytes, learned_at, pid, source) VALUES (@host, @service, @max_bytes, @learned_at, @pid, @source)
           ON CONFLICT (host, service) DO UPDATE SET max_bytes = excluded.max_bytes, learned_at = excluded.learned_at, pid = excluded.pid, source = excluded.source
           WHERE excluded.learned_at >= direct_memory_limits.learned_at`,
      ),
      limitOf: db.prepare('SELECT host, service, max_bytes, learned_at, pid, source FROM direct_memory_limits WHERE host = ? AND service = ?'),
      enqueueOutbox: db.prepare(
        `INSERT INTO forward_outbox (target, lane, stream, record_id, created_at, bytes, body) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (target, record_id) DO NOTHING`,
      ),
      outboxLane: db.prepare(
        `SELECT id, target, lane, stream, record_id, created_at, bytes, body, attempts, next_at, last_status, last_error
           FROM forward_outbox WHERE target = ? AND dead = 0 AND lane = ? ORDER BY id LIMIT ?`,
      ),
      // One statement for a whole batch of ids (a JSON array), not one per entry.
      outboxDelivered: db.prepare('DELETE FROM forward_outbox WHERE id IN (SELECT value FROM json_each(?))'),
      outboxRetryLater: db.prepare(
        'UPDATE forward_outbox SET attempts = attempts + 1, next_at = ?, last_status = ?, last_error = ? WHERE id IN (SELECT value FROM json_each(?)) AND dead = 0',
      ),
      outboxDeadLetter: db.prepare(
        'UPDATE forward_outbox SET attempts = attempts + 1, dead = 1, dead_at = ?, last_status = ?, last_error = ? WHERE id IN (SELECT value FROM json_each(?)) AND dead = 0',
      ),
      outboxGiveUp: db.prepare(
        `UPDATE forward_outbox SET dead = 1, dead_at = @now, last_status = @status, last_error = @error
          WHERE target = @target AND dead = 0 AND (@lane IS NULL OR lane = @lane) AND created_at <= @before`,
      ),
      outboxTotals: db.prepare('SELECT target, dead, entries, bytes FROM forward_outbox_totals WHERE entries > 0 ORDER BY target, dead'),
      oldestPending: db.prepare('SELECT created_at FROM forward_outbox WHERE dead = 0 AND target = ? ORDER BY id LIMIT 1').pluck(),
      deadLetters: db.prepare(
        `SELECT id, target, record_id, created_at, dead_at, attempts, last_status, last_error, bytes FROM forward_outbox
          WHERE dead = 1 AND (@target IS NULL OR target = @target) AND id > @after ORDER BY id LIMIT @limit`,
      ),
      requeueDeadLetters: db.prepare(
        `UPDATE forward_outbox SET dead = 0, dead_at = NULL, attempts = 0, next_at = 0, created_at = @now
          WHERE dead = 1 AND (@target IS NULL OR target = @target)`,
      ),
      deadLettersBefore: db.prepare('SELECT target, COUNT(*) AS entries FROM forward_outbox WHERE dead = 1 AND created_at < ? GROUP BY target'),
      dropDeadLettersBefore: db.prepare('DELETE FROM forward_outbox WHERE dead = 1 AND created_at < ?'),
      outboxBytes: db.prepare('SELECT coalesce(SUM(bytes), 0) FROM forward_outbox_totals').pluck(),
      oldestDeadLetters: db.prepare('SELECT id, target, bytes FROM forward_outbox WHERE dead = 1 ORDER BY id LIMIT ?'),
      dropDeadLetter: db.prepare('DELETE FROM forward_outbox WHERE id = ? AND dead = 1'),
      pendingStreams: db.prepare('SELECT DISTINCT stream, lane FROM forward_outbox WHERE target = ? AND dead = 0'),
      relane: db.prepare('UPDATE forward_outbox SET lane = ? WHERE target = ? AND dead = 0 AND stream = ? AND lane = ?'),
      outboxTargets: db.prepare('SELECT target FROM forward_outbox_totals WHERE dead = 0 AND entries > 0 ORDER BY target').pluck(),
    };
  }

  /** The durability level SQLite actually runs with (read back, not the option asked for). */
  get synchronousLevel(): string {
    const level = this.db.pragma('synchronous', { simple: true }) as number;
    return ['OFF', 'NORMAL', 'FULL', 'EXTRA'][level] ?? String(level);
  }

  transaction<T>(work: () => T): T {
    // better-sqlite3 turns a nested transaction into a savepoint, so callers may nest freely.
    // IMMEDIATE takes the write lock at BEGIN, where the busy timeout waits for it: a deferred
    // transaction that read first and then found the lock held by another process (the sqlite3
    // shell, a second leakwatch) failed at once with SQLITE_BUSY, as SQLite never waits to turn
    // a read into a write.
    try {
      return this.db.transaction(work).immediate();
    } catch (error) {
      // Rule texts learnt in a transaction or savepoint that rolled back are gone with it.
      this.learnt = undefined;
      throw error;
    }
  }

  hasEvent(id: string, time: number): boolean {
    return this.statements.hasEvent.get(time, id) !== undefined;
  }

  insertEvent(event: LeakEvent, time: number): void {
    if (event.incident_id === null) throw new Error(`event ${event.id} has no incident_id`);
    this.statements.insertEvent.run(event.id, event.incident_id, time, event.host, event.service, event.category, this.rowOf(event));
  }

  /**
   * The event's JSON as its row keeps it (StoredEvent). A rule's hint and runbook link are ~480
   * of an event's ~2,300 bytes, its first line ~150 more: at that size each row filled a 4 KiB
   * page of its own, without them two share one.
   */
  private rowOf(event: LeakEvent): string {
    const named = this.fixedTextsNamed(event.annotations);
    const messageIsFirstLine = isFirstLineOf(event.message, event.text);
    if (named === undefined && !messageIsFirstLine) return JSON.stringify(event);
    const stored: StoredEvent = { ...event };
    if (named !== undefined) stored.annotations = named;
    if (messageIsFirstLine) stored.message = MESSAGE_IS_FIRST_LINE;
    return JSON.stringify(stored);
  }

  /** The annotations with each fixed rule text replaced by its rule_texts id; undefined when none is. */
  private fixedTextsNamed(annotations: Annotations): StoredAnnotations | undefined {
    const fixed = this.fixedTexts?.();
    if (fixed === undefined || fixed.size === 0) return undefined;
    const ids = this.learnt?.texts === fixed ? this.learnt.ids : this.learnTexts(fixed);
    let named: StoredAnnotations | undefined;
    for (const key of Object.keys(annotations) as Array<keyof Annotations>) {
      const id = ids.get(annotations[key] as string);
      if (id !== undefined) (named ??= { ...annotations })[key] = id;
    }
    return named;
  }

  /** Adds the rule texts not stored yet and takes every one's id (once per rule set, not per event). */
  private learnTexts(fixed: ReadonlySet<string>): Map<string, number> {
    const ids = new Map<string, number>();
    for (const text of fixed) {
      this.statements.addRuleText.run(text);
      ids.set(text, this.statements.ruleTextId.get(text) as number);
    }
    this.learnt = { texts: fixed, ids };
    return ids;
  }

  /** A row's event, with what the row names put back. */
  private eventOf(row: string): LeakEvent {
    const event = JSON.parse(row) as StoredEvent;
    if (event.message === MESSAGE_IS_FIRST_LINE) event.message = firstLineOf(event.text);
    const annotations = event.annotations;
    if (annotations !== undefined) {
      for (const key of Object.keys(annotations) as Array<keyof Annotations>) {
        const value = annotations[key];
        if (typeof value !== 'number') continue;
        const text = this.ruleText(value);
        if (text === undefined) delete annotations[key];
        else annotations[key] = text;
      }
    }
    return event as LeakEvent;
  }

  private ruleText(id: number): string | undefined {
    let text = this.textById.get(id);
    if (text === undefined) {
      text = this.statements.ruleText.get(id) as string | undefined;
      if (text !== undefined) this.textById.set(id, text);
    }
    return text;
  }

  eventsOfIncident(incidentId: string, limit: number): LeakEvent[] {
    return (this.statements.eventsOfIncident.all(incidentId, limit) as string[]).map((row) => this.eventOf(row));
  }

  recentEventsOfRule(rule: string, version: number, perKey: number, maxKeys: number): CountedEvent[] {
    return this.statements.recentEventsOfRule.all(rule, maxKeys, rule, version, perKey, perKey) as CountedEvent[];
  }

  categoryCounts(host: string, service: string, from: number, to: number, excludeCategory: string): EvidenceEntry[] {
    return this.statements.categoryCounts.all(host, service, from, to, excludeCategory) as EvidenceEntry[];
  }

  incidentByKey(key: string): IncidentRecord | undefined {
    const row = this.statements.incidentByKey.get(key) as IncidentRow | undefined;
    return row && toRecord(row);
  }

  incident(id: string): IncidentRecord | undefined {
    const row = this.statements.incident.get(id) as IncidentRow | undefined;
    return row && toRecord(row);
  }

  saveIncident(incident: IncidentRecord): void {
    this.statements.saveIncident.run(toRow(incident));
  }

  listIncidents(query: IncidentQuery): IncidentRecord[] {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (query.status !== 'all') {
      where.push('status = ?');
      params.push(query.status);
    }
    for (const column of ['host', 'service', 'category', 'rule', 'severity'] as const) {
      const value = query[column];
      if (value !== undefined) {
        where.push(`${column} = ?`);
        params.push(value);
      }
    }
    if (query.since !== undefined) {
      where.push('last_seen >= ?');
      params.push(query.since);
    }
    if (query.after) {
      where.push('(last_seen < ? OR (last_seen = ? AND id > ?))');
      params.push(query.after.last_seen, query.after.last_seen, query.after.id);
    }
    const sql = `SELECT * FROM incidents ${where.length ? 'WHERE ' + where.join(' AND ') : ''}
                 ORDER BY last_seen DESC, id ASC LIMIT ?`;
    params.push(query.limit);
    return (this.db.prepare(sql).all(...params) as IncidentRow[]).map(toRecord);
  }

  lastEventsOf(incidents: readonly IncidentRecord[]): Map<string, LeakEvent> {
    const found = new Map<string, LeakEvent>();
    for (const incident of incidents) {
      const body = this.statements.eventBody.get(incident.last_seen, incident.last_event_id) as string | undefined;
      if (body !== undefined) found.set(incident.id, this.eventOf(body));
    }
    return found;
  }

  incidentsOpenedBetween(host: string, service: string, from: number, to: number): Array<{ id: string; category: string; first_seen: number }> {
    return this.statements.incidentsOpenedBetween.all(host, service, from, to) as Array<{ id: string; category: string; first_seen: number }>;
  }

  resolveQuiet(before: number, quietMs: number): number {
    return this.statements.resolveQuiet.run(quietMs, before).changes;
  }

  appendJournal(receivedAt: number, content: JournalContent): Promise<number> {
    return this.segments.appendInOrder(receivedAt, content);
  }

  journalAfter(afterSeq: number, limit: number): JournalBatch[] {
    return this.segments.after(afterSeq, limit);
  }

  /** Bytes the journal's segment files take. */
  journalBytes(): number {
    return this.segments.bytes();
  }

  /**
   * Gives free pages back to the file system, at most `maxPages` at a time (a few ms each call),
   * once they are more than a tenth of the file. Returns the number of pages reclaimed.
   */
  reclaimSpace(maxPages = 2048): number {
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    const total = this.db.pragma('page_count', { simple: true }) as number;
    if (free < 256 || free * 10 < total) return 0;
    const pages = Math.min(free, maxPages);
    this.db.pragma(`incremental_vacuum(${pages})`);
    return pages;
  }

  /** Bytes the database file holds and how many of them are free pages. */
  fileUsage(): { bytes: number; freeBytes: number } {
    const pageSize = this.db.pragma('page_size', { simple: true }) as number;
    return {
      bytes: (this.db.pragma('page_count', { simple: true }) as number) * pageSize,
      freeBytes: (this.db.pragma('freelist_count', { simple: true }) as number) * pageSize,
    };
  }

  checkpointJournal(pruneThrough: number, checkpoint: JournalCheckpoint): void {
    // The checkpoint is committed before any batch is deleted: a crash in between leaves batches
    // that the replay skips, never a checkpoint that counts on deleted ones.
    this.statements.setMeta.run(JOURNAL_CHECKPOINT_KEY, journalCheckpointText(checkpoint));
    this.segments.prune(pruneThrough);
  }

  journalCheckpoint(): JournalCheckpoint | undefined {
    const text = this.statements.getMeta.get(JOURNAL_CHECKPOINT_KEY) as string | undefined;
    return text === undefined ? undefined : journalCheckpointOf(text);
  }

  getMeta(key: string): string | undefined {
    return this.statements.getMeta.get(key) as string | undefined;
  }

  setMeta(key: string, value: string): void {
    this.statements.setMeta.run(key, value);
  }

  pruneEventsOfIncident(incidentId: string, keep: number): number {
    // Counting first keeps the common case (under the cap) to one index lookup.
    if ((this.statements.countEventsOfIncident.get(incidentId) as number) <= keep) return 0;
    return this.statements.pruneEventsOfIncident.run(incidentId, keep).changes;
  }

  pruneResolvedIncidents(before: number): number {
    return this.transaction(() => {
      this.statements.deleteEventsOfResolved.run(before);
      return this.statements.deleteResolved.run(before).changes;
    });
  }

  insertSamples(samples: readonly StoredSample[]): void {
    this.transaction(() => {
      for (const s of samples) {
        this.statements.insertSample.run(s.host, s.service, s.pid, s.t, s.used_bytes, s.max_bytes, s.source);
      }
    });
  }

  samplesOf(process: ProcessId, limit: number, since = Number.MIN_SAFE_INTEGER, until = Number.MAX_SAFE_INTEGER): MemorySample[] {
    return this.statements.samplesOf.all(process.host, process.service, process.pid, since, until, limit) as MemorySample[];
  }

  knownMaxOf(process: ProcessId, until = Number.MAX_SAFE_INTEGER): number | null {
    return (this.statements.knownMaxOf.get(process.host, process.service, process.pid, until) as number | undefined) ?? null;
  }

  processes(filter: { host?: string; service?: string } = {}): ProcessId[] {
    // One index seek per process: a DISTINCT read every sample (~170 ms a call at 1.2M samples,
    // and each /metrics scrape makes one).
    const { host, service } = filter;
    const { firstProcess, firstProcessOfHost, firstProcessOfService, nextPidOf, nextServiceOf, nextHost } = this.statements;
    const after = (at: ProcessId): ProcessId | undefined =>
      (nextPidOf.get(at.host, at.service, at.pid) ?? nextServiceOf.get(at.host, at.service) ?? nextHost.get(at.host)) as ProcessId | undefined;
    const found: ProcessId[] = [];
    let next = (host === undefined ? firstProcess.get() : service === undefined ? firstProcessOfHost.get(host) : firstProcessOfService.get(host, service)) as ProcessId | undefined;
    while (next !== undefined) {
      if (host !== undefined && (next.host !== host || (service !== undefined && next.service !== service))) break;
      if (service === undefined || next.service === service) found.push(next);
      next = after(next);
    }
    return found;
  }

  saveLimit(limit: LearnedLimit): void {
    this.statements.saveLimit.run(limit);
  }

  limitOf(host: string, service: string): LearnedLimit | undefined {
    return this.statements.limitOf.get(host, service) as LearnedLimit | undefined;
  }

  pruneSamplesOf(process: ProcessId, keep: number): number {
    return this.statements.pruneSamplesOf.run(process.host, process.service, process.pid, keep).changes;
  }

  pruneSilentProcesses(before: number): number {
    return this.transaction(() => {
      const silent = this.statements.silentProcesses.all(before) as ProcessId[];
      for (const p of silent) this.statements.deleteSamplesOf.run(p.host, p.service, p.pid);
      return silent.length;
    });
  }

  enqueueOutbox(entries: readonly OutboxEntryInput[], now: number): number {
    let added = 0;
    this.transaction(() => {
      for (const entry of entries) {
        added += this.statements.enqueueOutbox.run(entry.target, entry.lane, entry.stream, entry.recordId, now, Buffer.byteLength(entry.body), entry.body).changes;
      }
    });
    return added;
  }

  outboxLane(target: string, lane: number, limit: number): OutboxEntry[] {
    return (this.statements.outboxLane.all(target, lane, limit) as OutboxRow[]).map(toOutboxEntry);
  }

  outboxDelivered(ids: readonly number[]): void {
    this.statements.outboxDelivered.run(JSON.stringify(ids));
  }

  outboxRetryLater(ids: readonly number[], nextAt: number, failure: AttemptFailure): void {
    this.statements.outboxRetryLater.run(nextAt, failure.status, failure.error, JSON.stringify(ids));
  }

  outboxDeadLetter(ids: readonly number[], failure: AttemptFailure, now: number): void {
    this.statements.outboxDeadLetter.run(now, failure.status, failure.error, JSON.stringify(ids));
  }

  outboxGiveUp(target: string, lane: number | undefined, queuedBefore: number, failure: AttemptFailure, now: number): number {
    const before = Number.isFinite(queuedBefore) ? queuedBefore : Number.MAX_SAFE_INTEGER;
    return this.statements.outboxGiveUp.run({ target, lane: lane ?? null, before, now, status: failure.status, error: failure.error }).changes;
  }

  outboxTotals(): OutboxTotals[] {
    return toOutboxTotals(this.statements.outboxTotals.all() as OutboxTotalsRow[]);
  }

  oldestPending(target: string): number | undefined {
    return this.statements.oldestPending.get(target) as number | undefined;
  }

  deadLetters(query: { target?: string; afterId?: number; limit: number }): DeadLetter[] {
    const rows = this.statements.deadLetters.all({ target: query.target ?? null, after: query.afterId ?? 0, limit: query.limit }) as DeadLetterRow[];
    return rows.map(toDeadLetter);
  }

  requeueDeadLetters(target: string | undefined, now: number): number {
    return this.statements.requeueDeadLetters.run({ target: target ?? null, now }).changes;
  }

  dropDeadLetters(queuedBefore: number, maxBytes: number): Array<{ target: string; reason: 'age' | 'space'; entries: number }> {
    return this.transaction(() => {
      const dropped: Array<{ target: string; reason: 'age' | 'space'; entries: number }> = [];
      for (const row of this.statements.deadLettersBefore.all(queuedBefore) as Array<{ target: string; entries: number }>) {
        dropped.push({ target: row.target, reason: 'age', entries: row.entries });
      }
      if (dropped.length > 0) this.statements.dropDeadLettersBefore.run(queuedBefore);
      let excess = (this.statements.outboxBytes.get() as number) - maxBytes;
      const bySpace = new Map<string, number>();
      while (excess > 0) {
        const oldest = this.statements.oldestDeadLetters.all(512) as Array<{ id: number; target: string; bytes: number }>;
        if (oldest.length === 0) break;
        for (const row of oldest) {
          if (excess <= 0) break;
          this.statements.dropDeadLetter.run(row.id);
          bySpace.set(row.target, (bySpace.get(row.target) ?? 0) + 1);
          excess -= row.bytes;
        }
      }
      for (const [target, entries] of bySpace) dropped.push({ target, reason: 'space', entries });
      return dropped;
    });
  }

  relaneOutbox(target: string, laneOf: (stream: string) => number): number {
    return this.transaction(() => {
      let moved = 0;
      for (const row of this.statements.pendingStreams.all(target) as Array<{ stream: string; lane: number }>) {
        const lane = laneOf(row.stream);
        if (lane !== row.lane) moved += this.statements.relane.run(lane, target, row.stream, row.lane).changes;
      }
      return moved;
    });
  }

  outboxTargets(): string[] {
    return this.statements.outboxTargets.all() as string[];
  }

  close(): void {
    this.checkpointThread?.stop();
    this.checkpointThread = undefined;
    this.segments.close();
    if (this.db.open) this.db.close();
  }
}



const INCREMENTAL = 2;
const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;



/**
 * SQLite failures that pass: a full disk, I/O errors, a locked or read-only file. Ingest answers
 * 503 (retry) while they last; anything else is a bug or bad data and retrying would not help.
 */
export function isStoreUnavailable(error: unknown): boolean {
  if (error instanceof Database.SqliteError) return /^SQLITE_(?:FULL|IOERR|BUSY|LOCKED|CANTOPEN|READONLY|NOLFS|PROTOCOL)/.test(error.code);
  // The journal's segment files: a full disk, a quota, an I/O error, a file system gone read-only.
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(?:ENOSPC|EDQUOT|EIO|EROFS|EMFILE|ENFILE)$/.test(code);
}
