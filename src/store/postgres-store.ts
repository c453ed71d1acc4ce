import type { LeakEvent } from '../engine/event.js';
import type { LogRecord } from '../ingest/record.js';
import { migratePostgres } from './migrations.js';
import { PostgresUnavailableError, SyncPostgres } from './postgres-sync.js';
import { journalCheckpointOf, journalCheckpointText, JOURNAL_CHECKPOINT_KEY, pendingOf, pendingText, toDeadLetter, toOutboxEntry, toOutboxTotals, toRecord, toRow, type DeadLetterRow, type IncidentRow, type OutboxRow, type OutboxTotalsRow } from './rows.js';
import type {
  AttemptFailure,
  DeadLetter,
  EvidenceEntry,
  IncidentQuery,
  IncidentRecord,
  JournalBatch,
  JournalCheckpoint,
  JournalContent,
  LearnedLimit,
  MemorySample,
  OutboxEntry,
  OutboxEntryInput,
  OutboxTotals,
  ProcessId,
  Store,
  StoredSample,
} from './store.js';

/** Where one partition of the record stream stands (scale-out mode, see scale/engine-node.ts). */
export interface PartitionCheckpoint extends JournalCheckpoint {
  partition: number;
}


/**
 * The PostgreSQL implementation of Store, for the scale-out mode: every node of a fleet reads and
 * writes the same incidents, events, memory samples and forwarding outbox. The schema is the
 * SQLite one (migrations.ts keeps both side by side). What several writers need beyond it:
 * `lockScopes` (incident changes of one host + service one transaction at a time, fleet-wide),
 * session advisory locks (one forwarder, one consumer per partition) and partition checkpoints.
 */
export class PostgresStore implements Store {
  readonly schemaVersion: number;
  /** Several processes write it: the incident service locks and re-reads what they share. */
  readonly shared = true;
  private readonly db: SyncPostgres;
  /** Open transactions (nested ones are savepoints) and the connection they run on. */
  private depth = 0;
  private session: number | undefined;
  /**
   * Events inserted in the open transaction and not yet sent: written in one statement before
   * anything reads the events table and at the commit, instead of a round trip each.
   */
  private unsentEvents: Array<[string, string, number, string, string, string, string]> = [];

  constructor(readonly connectionString: string, options: { applicationName?: string } = {}) {
    this.db = new SyncPostgres(connectionString, { applicationName: options.applicationName ?? 'leakwatch' });
    try {
      this.schemaVersion = migratePostgres(this.db);
    } catch (error) {
      this.db.close();
      throw new Error(`cannot open the PostgreSQL store: ${(error as Error).message}`, { cause: error });
    }
  }

  /** Where the store is, without credentials (logs, /readyz). */
  get description(): string {
    try {
      const url = new URL(this.connectionString);
      return `postgresql://${url.host}${url.pathname}`;
    } catch {
      return 'postgresql';
    }
  }

  private query<Row = Record<string, unknown>>(sql: string, params: readonly unknown[] = []): Row[] {
    return this.db.query<Row>(sql, params, this.session).rows;
  }

  private run(sql: string, params: readonly unknown[] = []): number {
    return this.db.query(sql, params, this.session).rowCount;
  }

  private column<T>(sql: string, params: readonly unknown[] = []): T[] {
    return this.db.column<T>(sql, params, this.session);
  }

  transaction<T>(work: () => T): T {
    const savepoint = this.depth > 0 ? `lw_${this.depth}` : undefined;
    if (savepoint === undefined) {
      this.db.query('BEGIN');
      this.session = this.db.lastSession;
    } else {
      this.run(`SAVEPOINT ${savepoint}`);
    }
    this.depth++;
    const unsentBefore = this.unsentEvents.length;
    try {
      const result = work();
      if (result instanceof Promise) throw new Error('a store transaction must not be asynchronous');
      if (savepoint === undefined) {
        this.sendEvents();
        this.run('COMMIT');
      } else {
        this.run(`RELEASE SAVEPOINT ${savepoint}`);
      }
      return result;
    } catch (error) {
      this.unsentEvents.length = unsentBefore;
      try {
        this.run(savepoint === undefined ? 'ROLLBACK' : `ROLLBACK TO SAVEPOINT ${savepoint}`);
      } catch {
        // The connection is gone: the server rolled the transaction back with it.
      }
      throw error;
    } finally {
      this.depth--;
      if (this.depth === 0) this.session = undefined;
    }
  }

  /**
   * Holds, until the current transaction ends, a lock per scope (host + service): two nodes never
   * change the incidents of one scope at once, and the second reads what the first committed.
   * Taken in a fixed order, so two transactions cannot wait for each other.
   */
  lockScopes(scopes: readonly string[]): void {
    if (this.depth === 0) throw new Error('lockScopes needs a transaction');
    const sorted = [...new Set(scopes)].sort();
    if (sorted.length === 0) return;
    this.query('SELECT pg_advisory_xact_lock(hashtextextended(scope, 0)) FROM unnest($1::text[]) WITH ORDINALITY AS s(scope, n) ORDER BY n', [sorted]);
  }

  /**
   * A lock held by this process's connection until released or the connection ends (a killed
   * process's locks go with it). False when another holds it. `key` names what it guards.
   */
  tryLock(key: string): { held: boolean; session: number } {
    const held = this.column<boolean>('SELECT pg_try_advisory_lock(hashtextextended($1, 0))', [key])[0] === true;
    return { held, session: this.db.lastSession };
  }

  /** The connection answering now (locks taken on an earlier one are gone). */
  get connectionSession(): number {
    return this.db.lastSession;
  }

  /** Answers at all (for /readyz). */
  ping(): boolean {
    try {
      this.db.query('SELECT 1');
      return true;
    } catch {
      return false;
    }
  }

  /** Writes the events inserted so far in this transaction, in one statement. */
  private sendEvents(): void {
    if (this.unsentEvents.length === 0) return;
    const rows = this.unsentEvents;
    this.unsentEvents = [];
    const column = (index: number): unknown[] => rows.map((row) => row[index]);
    this.run(
      `INSERT INTO events (id, incident_id, time, host, service, category, body)
       SELECT id, incident_id, time, host, service, category, body FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[]) WITH ORDINALITY AS e(id, incident_id, time, host, service, category, body, n) ORDER BY n`,
      [column(0), column(1), column(2), column(3), column(4), column(5), column(6)],
    );
  }

  hasEvent(id: string): boolean {
    this.sendEvents();
    return this.query('SELECT 1 FROM events WHERE id = $1', [id]).length > 0;
  }

  storedEventIds(ids: readonly string[]): Set<string> {
    if (ids.length === 0) return new Set();
    this.sendEvents();
    return new Set(this.column<string>('SELECT id FROM events WHERE id = ANY($1::text[])', [ids]));
  }

  insertEvent(event: LeakEvent, time: number): void {
    if (event.incident_id === null) throw new Error(`event ${event.id} has no incident_id`);
    this.unsentEvents.push([event.id, event.incident_id, time, event.host, event.service, event.category, JSON.stringify(event)]);
    if (this.depth === 0) this.sendEvents();
  }

  eventsOfIncident(incidentId: string, limit: number): LeakEvent[] {
    this.sendEvents();
    return this.column<string>('SELECT body FROM events WHERE incident_id = $1 ORDER BY time DESC, rowid DESC LIMIT $2', [incidentId, limit]).map(
      (body) => JSON.parse(body) as LeakEvent,
    );
  }

  categoryCounts(host: string, service: string, from: number, to: number, excludeCategory: string): EvidenceEntry[] {
    this.sendEvents();
    return this.query<EvidenceEntry>(
      `SELECT category, COUNT(*) AS count, MIN(time) AS first_seen, MAX(time) AS last_seen
         FROM events WHERE host = $1 AND service = $2 AND time BETWEEN $3 AND $4 AND category <> $5
        GROUP BY category ORDER BY category COLLATE "C"`,
      [host, service, from, to, excludeCategory],
    );
  }

  incidentByKey(key: string): IncidentRecord | undefined {
    const row = this.query<IncidentRow>('SELECT * FROM incidents WHERE key = $1 ORDER BY first_seen DESC LIMIT 1', [key])[0];
    return row && toRecord(row);
  }

  incident(id: string): IncidentRecord | undefined {
    const row = this.query<IncidentRow>('SELECT * FROM incidents WHERE id = $1', [id])[0];
    return row && toRecord(row);
  }

  saveIncident(incident: IncidentRecord): void {
    const row = toRow(incident);
    this.run(
      `INSERT INTO incidents (id, key, rule, category, severity, status, host, service, pids, first_seen, last_seen,
                              count, summary, fields, evidence, last_event_id, acked_at, resolved_at, reopened_count)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
       ON CONFLICT (id) DO UPDATE SET
         key = excluded.key, rule = excluded.rule, category = excluded.category, severity = excluded.severity,
         status = excluded.status, host = excluded.host, service = excluded.service, pids = excluded.pids,
         first_seen = excluded.first_seen, last_seen = excluded.last_seen, count = excluded.count,
         summary = excluded.summary, fields = excluded.fields, evidence = excluded.evidence,
         last_event_id = excluded.last_event_id, acked_at = excluded.acked_at, resolved_at = excluded.resolved_at,
         reopened_count = excluded.reopened_count`,
      [
        row.id, row.key, row.rule, row.category, row.severity, row.status, row.host, row.service, row.pids, row.first_seen, row.last_seen,
        row.count, row.summary, row.fields, row.evidence, row.last_event_id, row.acked_at, row.resolved_at, row.reopened_count,
      ],
    );
  }

  listIncidents(query: IncidentQuery): IncidentRecord[] {
    const where: string[] = [];
    const params: (string | number)[] = [];
    const next = (value: string | number): string => {
      params.push(value);
      return `$${params.length}`;
    };
    if (query.status !== 'all') where.push(`status = ${next(query.status)}`);
    for (const column of ['host', 'service', 'category', 'rule', 'severity'] as const) {
      const value = query[column];
      if (value !== undefined) where.push(`${column} = ${next(value)}`);
    }
    if (query.since !== undefined) where.push(`last_seen >= ${next(query.since)}`);
    if (query.after) {
      const seen = next(query.after.last_seen);
      where.push(`(last_seen < ${seen} OR (last_seen = ${seen} AND id COLLATE "C" > ${next(query.after.id)}))`);
    }
    // COLLATE "C": ids compare byte by byte, as SQLite compares them, whatever the database's locale.
    const sql = `SELECT * FROM incidents ${where.length ? 'WHERE ' + where.join(' AND ') : ''}
                 ORDER BY last_seen DESC, id COLLATE "C" ASC LIMIT ${next(query.limit)}`;
    return this.query<IncidentRow>(sql, params).map(toRecord);
  }

  lastEventsOf(incidents: readonly IncidentRecord[]): Map<string, LeakEvent> {
    const found = new Map<string, LeakEvent>();
    if (incidents.length === 0) return found;
    this.sendEvents();
    const rows = this.query<{ incident_id: string; body: string }>('SELECT incident_id, body FROM events WHERE id = ANY($1::text[])', [incidents.map((incident) => incident.last_event_id)]);
    for (const row of rows) found.set(row.incident_id, JSON.parse(row.body) as LeakEvent);
    return found;
  }

  incidentsOpenedBetween(host: string, service: string, from: number, to: number): Array<{ id: string; category: string; first_seen: number }> {
    return this.query<{ id: string; category: string; first_seen: number }>('SELECT id, category, first_seen FROM incidents WHERE host = $1 AND service = $2 AND first_seen BETWEEN $3 AND $4', [
      host,
      service,
      from,
      to,
    ]);
  }

  resolveQuiet(before: number, quietMs: number): number {
    return this.run("UPDATE incidents SET status = 'resolved', resolved_at = last_seen + $1 WHERE status = 'open' AND last_seen < $2", [quietMs, before]);
  }

  appendJournal(receivedAt: number, content: JournalContent): number {
    const sql = 'INSERT INTO ingest_journal (received_at, records, body, content_type, content_encoding) VALUES ($1, $2, $3, $4, $5) RETURNING seq';
    const params =
      'body' in content
        ? [receivedAt, null, content.body.body, content.body.contentType ?? null, content.body.contentEncoding ?? null]
        : [receivedAt, JSON.stringify(content.records), null, null, null];
    return this.column<number>(sql, params)[0] as number;
  }

  journalAfter(afterSeq: number, limit: number): JournalBatch[] {
    const rows = this.query<{ seq: number; received_at: number; records: string | null; body: Buffer | null; content_type: string | null; content_encoding: string | null }>(
      'SELECT seq, received_at, records, body, content_type, content_encoding FROM ingest_journal WHERE seq > $1 ORDER BY seq LIMIT $2',
      [afterSeq, limit],
    );
    return rows.map((row) => ({
      seq: row.seq,
      receivedAt: row.received_at,
      content:
        row.body !== null
          ? { body: { body: Buffer.from(row.body), contentType: row.content_type ?? undefined, contentEncoding: row.content_encoding ?? undefined } }
          : { records: JSON.parse(row.records ?? '[]') as LogRecord[] },
    }));
  }

  checkpointJournal(pruneThrough: number, checkpoint: JournalCheckpoint): void {
    this.transaction(() => {
      this.run('DELETE FROM ingest_journal WHERE seq <= $1', [pruneThrough]);
      this.setMeta(JOURNAL_CHECKPOINT_KEY, journalCheckpointText(checkpoint));
    });
  }

  journalCheckpoint(): JournalCheckpoint | undefined {
    const text = this.getMeta(JOURNAL_CHECKPOINT_KEY);
    return text === undefined ? undefined : journalCheckpointOf(text);
  }

  /** PostgreSQL gives space back by itself (autovacuum). */
  reclaimSpace(): number {
    return 0;
  }

  /** Records where a partition stands; `node` names who wrote it (for the operator). */
  savePartitionCheckpoint(checkpoint: PartitionCheckpoint, node: string, now: number): void {
    this.run(
      `INSERT INTO partition_checkpoints (partition, pushed_through, pending, node, updated_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (partition) DO UPDATE SET pushed_through = excluded.pushed_through, pending = excluded.pending, node = excluded.node, updated_at = excluded.updated_at`,
      [checkpoint.partition, checkpoint.pushedThrough, pendingText(checkpoint.pending), node, now],
    );
  }

  partitionCheckpoint(partition: number): PartitionCheckpoint | undefined {
    const row = this.query<{ pushed_through: number; pending: string }>('SELECT pushed_through, pending FROM partition_checkpoints WHERE partition = $1', [partition])[0];
    if (row === undefined) return undefined;
    return { partition, pushedThrough: row.pushed_through, pending: pendingOf(JSON.parse(row.pending)) };
  }

  /**
   * Records an occurrence of a count window's key (once, however often it is recorded) and
   * returns the newest `keep` times of the key, newest first; older ones are deleted now and then.
   */
  recordOccurrence(key: string, occurrence: string, time: number, keep: number): number[] {
    // One round trip: the function locks the key, records, trims and answers (migration 5).
    return this.column<number>('SELECT leakwatch_count_window_record($1, md5($2), $3, $4)', [key, occurrence, time, keep]);
  }

  getMeta(key: string): string | undefined {
    return this.column<string>('SELECT value FROM meta WHERE key = $1', [key])[0];
  }

  setMeta(key: string, value: string): void {
    this.run('INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);
  }

  pruneEventsOfIncident(incidentId: string, keep: number): number {
    this.sendEvents();
    const count = this.column<number>('SELECT COUNT(*) FROM events WHERE incident_id = $1', [incidentId])[0] ?? 0;
    if (count <= keep) return 0;
    return this.run(
      `DELETE FROM events WHERE rowid IN (
         SELECT rowid FROM events WHERE incident_id = $1 ORDER BY time DESC, rowid DESC OFFSET $2)`,
      [incidentId, keep],
    );
  }

  pruneResolvedIncidents(before: number): number {
    this.sendEvents();
    return this.transaction(() => {
      this.run("DELETE FROM events WHERE incident_id IN (SELECT id FROM incidents WHERE status = 'resolved' AND last_seen < $1)", [before]);
      return this.run("DELETE FROM incidents WHERE status = 'resolved' AND last_seen < $1", [before]);
    });
  }

  insertSamples(samples: readonly StoredSample[]): void {
    if (samples.length === 0) return;
    this.run(
      `INSERT INTO memory_samples (host, service, pid, t, used_bytes, max_bytes, source)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[])
       ON CONFLICT DO NOTHING`,
      [
        samples.map((s) => s.host),
        samples.map((s) => s.service),
        samples.map((s) => s.pid),
        samples.map((s) => s.t),
        samples.map((s) => s.used_bytes),
        samples.map((s) => s.max_bytes),
        samples.map((s) => s.source),
      ],
    );
  }

  samplesOf(process: ProcessId, limit: number, since = Number.MIN_SAFE_INTEGER, until = Number.MAX_SAFE_INTEGER): MemorySample[] {
    return this.query<MemorySample>(
      `SELECT t, used_bytes, max_bytes, source FROM memory_samples
        WHERE host = $1 AND service = $2 AND pid = $3 AND t >= $4 AND t <= $5 ORDER BY t DESC, rowid DESC LIMIT $6`,
      [process.host, process.service, process.pid, since, until, limit],
    );
  }

  knownMaxOf(process: ProcessId, until = Number.MAX_SAFE_INTEGER): number | null {
    return (
      this.column<number>(
        `SELECT max_bytes FROM memory_samples WHERE host = $1 AND service = $2 AND pid = $3 AND max_bytes IS NOT NULL AND t <= $4
          ORDER BY t DESC, rowid DESC LIMIT 1`,
        [process.host, process.service, process.pid, until],
      )[0] ?? null
    );
  }

  processes(filter: { host?: string; service?: string } = {}): ProcessId[] {
    // A walk over the samples' index, one seek per process: a GROUP BY read every sample, and each /metrics scrape lists them.
    return this.query<ProcessId>(
      `WITH RECURSIVE walk AS (
         (SELECT host, service, pid FROM memory_samples
           WHERE ($1::text IS NULL OR host = $1) AND ($2::text IS NULL OR service = $2)
           ORDER BY host, service, pid LIMIT 1)
         UNION ALL
         SELECT next.host, next.service, next.pid FROM walk, LATERAL (
           SELECT host, service, pid FROM memory_samples AS m
            WHERE (m.host, m.service, m.pid) > (walk.host, walk.service, walk.pid)
              AND ($1::text IS NULL OR m.host = $1) AND ($2::text IS NULL OR m.service = $2)
            ORDER BY m.host, m.service, m.pid LIMIT 1) AS next
       )
       SELECT host, service, pid FROM walk ORDER BY host COLLATE "C", service COLLATE "C", pid COLLATE "C"`,
      [filter.host ?? null, filter.service ?? null],
    );
  }

  saveLimit(limit: LearnedLimit): void {
    this.run(
      `INSERT INTO direct_memory_limits (host, service, max_bytes, learned_at, pid, source) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (host, service) DO UPDATE SET max_bytes = excluded.max_bytes, learned_at = excluded.learned_at, pid = excluded.pid, source = excluded.source
        WHERE excluded.learned_at >= direct_memory_limits.learned_at`,
      [limit.host, limit.service, limit.max_bytes, limit.learned_at, limit.pid, limit.source],
    );
  }

  limitOf(host: string, service: string): LearnedLimit | undefined {
    return this.query<LearnedLimit>('SELECT host, service, max_bytes, learned_at, pid, source FROM direct_memory_limits WHERE host = $1 AND service = $2', [host, service])[0];
  }

  pruneSamplesOf(process: ProcessId, keep: number): number {
    return this.run(
      `DELETE FROM memory_samples WHERE rowid IN (
         SELECT rowid FROM memory_samples WHERE host = $1 AND service = $2 AND pid = $3 ORDER BY t DESC, rowid DESC OFFSET $4)`,
      [process.host, process.service, process.pid, keep],
    );
  }

  pruneSilentProcesses(before: number): number {
    return this.transaction(() => {
      const silent = this.query<ProcessId>('SELECT host, service, pid FROM memory_samples GROUP BY host, service, pid HAVING MAX(t) < $1', [before]);
      for (const p of silent) this.run('DELETE FROM memory_samples WHERE host = $1 AND service = $2 AND pid = $3', [p.host, p.service, p.pid]);
      return silent.length;
    });
  }

  enqueueOutbox(entries: readonly OutboxEntryInput[], now: number): number {
    if (entries.length === 0) return 0;
    return this.run(
      `INSERT INTO forward_outbox (target, lane, stream, record_id, created_at, bytes, body)
       SELECT target, lane, stream, record_id, $1, bytes, body
         FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::bigint[], $7::text[]) WITH ORDINALITY AS e(target, lane, stream, record_id, bytes, body, n)
        ORDER BY n
       ON CONFLICT (target, record_id) DO NOTHING`,
      [
        now,
        entries.map((e) => e.target),
        entries.map((e) => e.lane),
        entries.map((e) => e.stream),
        entries.map((e) => e.recordId),
        entries.map((e) => Buffer.byteLength(e.body)),
        entries.map((e) => e.body),
      ],
    );
  }

  outboxLane(target: string, lane: number, limit: number): OutboxEntry[] {
    return this.query<OutboxRow>(
      `SELECT id, target, lane, stream, record_id, created_at, bytes, body, attempts, next_at, last_status, last_error
         FROM forward_outbox WHERE target = $1 AND dead = 0 AND lane = $2 ORDER BY id LIMIT $3`,
      [target, lane, limit],
    ).map(toOutboxEntry);
  }

  outboxDelivered(ids: readonly number[]): void {
    this.run('DELETE FROM forward_outbox WHERE id = ANY($1::bigint[])', [ids]);
  }

  outboxRetryLater(ids: readonly number[], nextAt: number, failure: AttemptFailure): void {
    this.run('UPDATE forward_outbox SET attempts = attempts + 1, next_at = $1, last_status = $2, last_error = $3 WHERE id = ANY($4::bigint[]) AND dead = 0', [
      nextAt,
      failure.status,
      failure.error,
      ids,
    ]);
  }

  outboxDeadLetter(ids: readonly number[], failure: AttemptFailure, now: number): void {
    this.run('UPDATE forward_outbox SET attempts = attempts + 1, dead = 1, dead_at = $1, last_status = $2, last_error = $3 WHERE id = ANY($4::bigint[]) AND dead = 0', [
      now,
      failure.status,
      failure.error,
      ids,
    ]);
  }

  outboxGiveUp(target: string, lane: number | undefined, queuedBefore: number, failure: AttemptFailure, now: number): number {
    const before = Number.isFinite(queuedBefore) ? queuedBefore : Number.MAX_SAFE_INTEGER;
    return this.run(
      `UPDATE forward_outbox SET dead = 1, dead_at = $1, last_status = $2, last_error = $3
        WHERE target = $4 AND dead = 0 AND ($5::int IS NULL OR lane = $5) AND created_at <= $6`,
      [now, failure.status, failure.error, target, lane ?? null, before],
    );
  }

  outboxTotals(): OutboxTotals[] {
    return toOutboxTotals(
      this.query<OutboxTotalsRow>('SELECT target, dead, entries, bytes FROM forward_outbox_totals WHERE entries > 0 ORDER BY target COLLATE "C", dead'),
    );
  }

  oldestPending(target: string): number | undefined {
    return this.column<number>('SELECT created_at FROM forward_outbox WHERE dead = 0 AND target = $1 ORDER BY id LIMIT 1', [target])[0];
  }

  deadLetters(query: { target?: string; afterId?: number; limit: number }): DeadLetter[] {
    return this.query<DeadLetterRow>(
      `SELECT id, target, record_id, created_at, dead_at, attempts, last_status, last_error, bytes FROM forward_outbox
        WHERE dead = 1 AND ($1::text IS NULL OR target = $1) AND id > $2 ORDER BY id LIMIT $3`,
      [query.target ?? null, query.afterId ?? 0, query.limit],
    ).map(toDeadLetter);
  }

  requeueDeadLetters(target: string | undefined, now: number): number {
    return this.run(
      `UPDATE forward_outbox SET dead = 0, dead_at = NULL, attempts = 0, next_at = 0, created_at = $1
        WHERE dead = 1 AND ($2::text IS NULL OR target = $2)`,
      [now, target ?? null],
    );
  }

  dropDeadLetters(queuedBefore: number, maxBytes: number): Array<{ target: string; reason: 'age' | 'space'; entries: number }> {
    return this.transaction(() => {
      const dropped: Array<{ target: string; reason: 'age' | 'space'; entries: number }> = [];
      const aged = this.query<{ target: string; entries: number }>(
        'SELECT target, COUNT(*) AS entries FROM forward_outbox WHERE dead = 1 AND created_at < $1 GROUP BY target',
        [queuedBefore],
      );
      for (const row of aged) dropped.push({ target: row.target, reason: 'age', entries: row.entries });
      if (dropped.length > 0) this.run('DELETE FROM forward_outbox WHERE dead = 1 AND created_at < $1', [queuedBefore]);
      let excess = (this.column<number>('SELECT coalesce(SUM(bytes), 0) FROM forward_outbox_totals')[0] ?? 0) - maxBytes;
      const bySpace = new Map<string, number>();
      while (excess > 0) {
        const oldest = this.query<{ id: number; target: string; bytes: number }>('SELECT id, target, bytes FROM forward_outbox WHERE dead = 1 ORDER BY id LIMIT 512');
        if (oldest.length === 0) break;
        const ids: number[] = [];
        for (const row of oldest) {
          if (excess <= 0) break;
          ids.push(row.id);
          bySpace.set(row.target, (bySpace.get(row.target) ?? 0) + 1);
          excess -= row.bytes;
        }
        this.run('DELETE FROM forward_outbox WHERE id = ANY($1::bigint[]) AND dead = 1', [ids]);
      }
      for (const [target, entries] of bySpace) dropped.push({ target, reason: 'space', entries });
      return dropped;
    });
  }

  relaneOutbox(target: string, laneOf: (stream: string) => number): number {
    return this.transaction(() => {
      let moved = 0;
      for (const row of this.query<{ stream: string; lane: number }>('SELECT DISTINCT stream, lane FROM forward_outbox WHERE target = $1 AND dead = 0', [target])) {
        const lane = laneOf(row.stream);
        if (lane !== row.lane) moved += this.run('UPDATE forward_outbox SET lane = $1 WHERE target = $2 AND dead = 0 AND stream = $3 AND lane = $4', [lane, target, row.stream, row.lane]);
      }
      return moved;
    });
  }

  outboxTargets(): string[] {
    return this.column<string>('SELECT target FROM forward_outbox_totals WHERE dead = 0 AND entries > 0 ORDER BY target COLLATE "C"');
  }

  close(): void {
    this.db.close();
  }
}

/** PostgreSQL failures that pass (server restarting, unreachable, disk full, conflicts): kept and retried. */
export function isPostgresUnavailable(error: unknown): boolean {
  return error instanceof PostgresUnavailableError;
}
