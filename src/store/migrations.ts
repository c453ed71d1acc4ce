import type Database from 'better-sqlite3';
import type { SyncPostgres } from './postgres-sync.js';

/**
 * Versioned schema changes, applied in order, each in its own transaction and recorded in
 * `schema_migrations`, for both backends: `sql` for SQLite, `postgres` for PostgreSQL (the same
 * tables and the same version numbers, so a change is written once for each, side by side).
 * Never edit a released migration: append a new one.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
  /** The same change for PostgreSQL; '' when it has nothing to do there. */
  postgres: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'events, incidents, memory samples',
    sql: `
      CREATE TABLE events (
        id          TEXT PRIMARY KEY,
        incident_id TEXT NOT NULL,
        time        INTEGER NOT NULL,
        host        TEXT NOT NULL,
        service     TEXT NOT NULL,
        category    TEXT NOT NULL,
        body        TEXT NOT NULL          -- the LeakEvent as JSON, incident_id filled
      );
      CREATE INDEX events_by_incident ON events (incident_id, time);
      CREATE INDEX events_by_stream ON events (host, service, time);

      CREATE TABLE incidents (
        id             TEXT PRIMARY KEY,
        key            TEXT NOT NULL,
        rule           TEXT NOT NULL,
        category       TEXT NOT NULL,
        severity       TEXT NOT NULL,
        status         TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
        host           TEXT NOT NULL,
        service        TEXT NOT NULL,
        pids           TEXT NOT NULL,
        first_seen     INTEGER NOT NULL,
        last_seen      INTEGER NOT NULL,
        count          INTEGER NOT NULL,
        summary        TEXT NOT NULL,
        fields         TEXT NOT NULL,
        evidence       TEXT NOT NULL,
        last_event     TEXT NOT NULL,
        acked_at       INTEGER,
        resolved_at    INTEGER,
        reopened_count INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX incidents_by_key ON incidents (key, first_seen);
      CREATE INDEX incidents_by_recency ON incidents (last_seen DESC, id);
      CREATE INDEX incidents_by_status ON incidents (status, last_seen);
      CREATE INDEX incidents_by_opening ON incidents (host, service, first_seen);

      CREATE TABLE memory_samples (
        host       TEXT NOT NULL,
        service    TEXT NOT NULL,
        pid        TEXT NOT NULL,
        t          INTEGER NOT NULL,
        used_bytes INTEGER NOT NULL,
        max_bytes  INTEGER,
        source     TEXT NOT NULL
      );
      CREATE INDEX samples_by_process ON memory_samples (host, service, pid, t);

      CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );
    `,
    postgres: `
      CREATE TABLE events (
        id          TEXT PRIMARY KEY,
        incident_id TEXT NOT NULL,
        time        BIGINT NOT NULL,
        host        TEXT NOT NULL,
        service     TEXT NOT NULL,
        category    TEXT NOT NULL,
        body        TEXT NOT NULL,
        rowid       BIGSERIAL NOT NULL     -- insertion order, as SQLite's rowid breaks ties
      );
      CREATE INDEX events_by_incident ON events (incident_id, time);
      CREATE INDEX events_by_stream ON events (host, service, time);

      CREATE TABLE incidents (
        id             TEXT PRIMARY KEY,
        key            TEXT NOT NULL,
        rule           TEXT NOT NULL,
        category       TEXT NOT NULL,
        severity       TEXT NOT NULL,
        status         TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
        host           TEXT NOT NULL,
        service        TEXT NOT NULL,
        pids           TEXT NOT NULL,
        first_seen     BIGINT NOT NULL,
        last_seen      BIGINT NOT NULL,
        count          BIGINT NOT NULL,
        summary        TEXT NOT NULL,
        fields         TEXT NOT NULL,
        evidence       TEXT NOT NULL,
        last_event     TEXT NOT NULL,
        acked_at       BIGINT,
        resolved_at    BIGINT,
        reopened_count INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX incidents_by_key ON incidents (key, first_seen);
      CREATE INDEX incidents_by_recency ON incidents (last_seen DESC, id);
      CREATE INDEX incidents_by_status ON incidents (status, last_seen);
      CREATE INDEX incidents_by_opening ON incidents (host, service, first_seen);

      CREATE TABLE memory_samples (
        host       TEXT NOT NULL,
        service    TEXT NOT NULL,
        pid        TEXT NOT NULL,
        t          BIGINT NOT NULL,
        used_bytes BIGINT NOT NULL,
        max_bytes  BIGINT,
        source     TEXT NOT NULL,
        rowid      BIGSERIAL NOT NULL
      );
      CREATE INDEX samples_by_process ON memory_samples (host, service, pid, t);

      CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'ingest journal; memory samples unique per process, time and source',
    sql: `
      -- Batches answered 200 whose groups may not all have closed yet: replayed after a crash.
      CREATE TABLE ingest_journal (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at INTEGER NOT NULL,
        records     TEXT NOT NULL          -- the batch's LogRecords as a JSON array
      );

      -- A replayed metrics snapshot must not add its samples twice.
      DELETE FROM memory_samples WHERE rowid NOT IN (
        SELECT MIN(rowid) FROM memory_samples GROUP BY host, service, pid, t, source
      );
      CREATE UNIQUE INDEX samples_unique ON memory_samples (host, service, pid, t, source);
    `,
    postgres: `
      CREATE TABLE ingest_journal (
        seq         BIGSERIAL PRIMARY KEY,
        received_at BIGINT NOT NULL,
        records     TEXT NOT NULL
      );
      CREATE UNIQUE INDEX samples_unique ON memory_samples (host, service, pid, t, source);
    `,
  },
  {
    version: 3,
    name: 'ingest journal keeps request bodies as received',
    sql: `
      -- A body as it arrived (still compressed) is a fraction of its records as JSON, and costs
      -- nothing to write out; a replay decodes it again. Sequence numbers continue where they were:
      -- the last checkpoint refers to them.
      CREATE TABLE ingest_journal_new (
        seq              INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at      INTEGER NOT NULL,
        records          TEXT,             -- records built in process, as a JSON array
        body             BLOB,             -- or the request body as received
        content_type     TEXT,
        content_encoding TEXT,
        CHECK ((records IS NULL) <> (body IS NULL))
      );
      INSERT INTO ingest_journal_new (seq, received_at, records) SELECT seq, received_at, records FROM ingest_journal;
      INSERT INTO sqlite_sequence (name, seq)
        SELECT 'ingest_journal_new', seq FROM sqlite_sequence WHERE name = 'ingest_journal'
          AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'ingest_journal_new');
      UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'ingest_journal'))
        WHERE name = 'ingest_journal_new';
      DROP TABLE ingest_journal;
      ALTER TABLE ingest_journal_new RENAME TO ingest_journal;
    `,
    postgres: `
      ALTER TABLE ingest_journal ALTER COLUMN records DROP NOT NULL;
      ALTER TABLE ingest_journal ADD COLUMN body BYTEA, ADD COLUMN content_type TEXT, ADD COLUMN content_encoding TEXT,
        ADD CONSTRAINT journal_records_or_body CHECK ((records IS NULL) <> (body IS NULL));
    `,
  },
  {
    version: 4,
    name: 'forwarding outbox',
    sql: `
      -- What each forwarding target has still to receive, written in the transaction that stores
      -- the event. A row leaves when its target has taken it; a dead letter (dead = 1) stays until
      -- it is retried or ages out. One row per target and record: a replayed record is not queued twice.
      CREATE TABLE forward_outbox (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        target      TEXT NOT NULL,
        lane        INTEGER NOT NULL,      -- stable hash of the stream % the target's concurrency
        stream      TEXT NOT NULL,
        record_id   TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        bytes       INTEGER NOT NULL,
        body        TEXT NOT NULL,         -- the event (or grouped record) as JSON
        attempts    INTEGER NOT NULL DEFAULT 0,
        next_at     INTEGER NOT NULL DEFAULT 0,
        dead        INTEGER NOT NULL DEFAULT 0 CHECK (dead IN (0, 1)),
        dead_at     INTEGER,
        last_status INTEGER,               -- HTTP status of the last attempt; 0 for a network error
        last_error  TEXT
      );
      CREATE UNIQUE INDEX outbox_record ON forward_outbox (target, record_id);
      CREATE INDEX outbox_lane ON forward_outbox (target, dead, lane, id);
      CREATE INDEX outbox_order ON forward_outbox (dead, target, id);

      -- Entries and bytes per target and state, kept by triggers: the cap checked at every ingest
      -- and the metrics read a few rows, always in step with what is committed.
      CREATE TABLE forward_outbox_totals (
        target  TEXT NOT NULL,
        dead    INTEGER NOT NULL,
        entries INTEGER NOT NULL,
        bytes   INTEGER NOT NULL,
        PRIMARY KEY (target, dead)
      );
      CREATE TRIGGER forward_outbox_added AFTER INSERT ON forward_outbox BEGIN
        INSERT INTO forward_outbox_totals (target, dead, entries, bytes) VALUES (NEW.target, NEW.dead, 1, NEW.bytes)
          ON CONFLICT (target, dead) DO UPDATE SET entries = entries + 1, bytes = bytes + excluded.bytes;
      END;
      CREATE TRIGGER forward_outbox_removed AFTER DELETE ON forward_outbox BEGIN
        UPDATE forward_outbox_totals SET entries = entries - 1, bytes = bytes - OLD.bytes WHERE target = OLD.target AND dead = OLD.dead;
      END;
      CREATE TRIGGER forward_outbox_moved AFTER UPDATE OF dead ON forward_outbox WHEN OLD.dead <> NEW.dead BEGIN
        UPDATE forward_outbox_totals SET entries = entries - 1, bytes = bytes - OLD.bytes WHERE target = OLD.target AND dead = OLD.dead;
        INSERT INTO forward_outbox_totals (target, dead, entries, bytes) VALUES (NEW.target, NEW.dead, 1, NEW.bytes)
          ON CONFLICT (target, dead) DO UPDATE SET entries = entries + 1, bytes = bytes + excluded.bytes;
      END;
    `,
    postgres: `
      CREATE TABLE forward_outbox (
        id          BIGSERIAL PRIMARY KEY,
        target      TEXT NOT NULL,
        lane        INTEGER NOT NULL,
        stream      TEXT NOT NULL,
        record_id   TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        bytes       BIGINT NOT NULL,
        body        TEXT NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        next_at     BIGINT NOT NULL DEFAULT 0,
        dead        INTEGER NOT NULL DEFAULT 0 CHECK (dead IN (0, 1)),
        dead_at     BIGINT,
        last_status INTEGER,
        last_error  TEXT
      );
      CREATE UNIQUE INDEX outbox_record ON forward_outbox (target, record_id);
      CREATE INDEX outbox_lane ON forward_outbox (target, dead, lane, id);
      CREATE INDEX outbox_order ON forward_outbox (dead, target, id);

      CREATE TABLE forward_outbox_totals (
        target  TEXT NOT NULL,
        dead    INTEGER NOT NULL,
        entries BIGINT NOT NULL,
        bytes   BIGINT NOT NULL,
        PRIMARY KEY (target, dead)
      );
      CREATE FUNCTION forward_outbox_count() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
          UPDATE forward_outbox_totals SET entries = entries - 1, bytes = bytes - OLD.bytes WHERE target = OLD.target AND dead = OLD.dead;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
          INSERT INTO forward_outbox_totals (target, dead, entries, bytes) VALUES (NEW.target, NEW.dead, 1, NEW.bytes)
            ON CONFLICT (target, dead) DO UPDATE SET entries = forward_outbox_totals.entries + 1, bytes = forward_outbox_totals.bytes + EXCLUDED.bytes;
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER forward_outbox_added_or_removed AFTER INSERT OR DELETE ON forward_outbox FOR EACH ROW EXECUTE FUNCTION forward_outbox_count();
      CREATE TRIGGER forward_outbox_moved AFTER UPDATE OF dead ON forward_outbox FOR EACH ROW WHEN (OLD.dead <> NEW.dead) EXECUTE FUNCTION forward_outbox_count();
    `,
  },
  {
    version: 5,
    name: 'direct-memory limits learned per host and service',
    sql: `
      -- The newest limit any process of a host+service reported (an OutOfDirectMemoryError's max,
      -- a series that carries it): a restarted process runs with the same flags. Kept apart from
      -- the samples, which are pruned.
      CREATE TABLE direct_memory_limits (
        host       TEXT NOT NULL,
        service    TEXT NOT NULL,
        max_bytes  INTEGER NOT NULL,
        learned_at INTEGER NOT NULL,
        pid        TEXT NOT NULL,
        source     TEXT NOT NULL,
        PRIMARY KEY (host, service)
      );
      INSERT INTO direct_memory_limits (host, service, max_bytes, learned_at, pid, source)
        SELECT host, service, max_bytes, t, pid, source FROM memory_samples AS s
         WHERE max_bytes IS NOT NULL
           AND t = (SELECT MAX(t) FROM memory_samples WHERE host = s.host AND service = s.service AND max_bytes IS NOT NULL)
         GROUP BY host, service;
    `,
    postgres: `
      CREATE TABLE direct_memory_limits (
        host       TEXT NOT NULL,
        service    TEXT NOT NULL,
        max_bytes  BIGINT NOT NULL,
        learned_at BIGINT NOT NULL,
        pid        TEXT NOT NULL,
        source     TEXT NOT NULL,
        PRIMARY KEY (host, service)
      );
      INSERT INTO direct_memory_limits (host, service, max_bytes, learned_at, pid, source)
        SELECT DISTINCT ON (host, service) host, service, max_bytes, t, pid, source FROM memory_samples
         WHERE max_bytes IS NOT NULL
         ORDER BY host, service, t DESC;
    `,
  },
  {
    version: 6,
    name: 'scale-out: where each partition stands; shared count windows',
    // The scale-out mode runs on PostgreSQL only.
    sql: '',
    postgres: `
      -- Per partition of the record stream (NATS JetStream): the newest message whose records all
      -- reached the engine, and of those the records not yet in a stored group (journal
      -- positions as [first, count] runs). A node that takes the partition over replays from here.
      CREATE TABLE partition_checkpoints (
        partition      INTEGER PRIMARY KEY,
        pushed_through BIGINT NOT NULL,
        pending        TEXT NOT NULL,
        node           TEXT NOT NULL,
        updated_at     BIGINT NOT NULL
      );

      -- The times of the events that count toward rules' {count, within} thresholds, shared by
      -- the engine nodes (processes of one host and service may be grouped on different ones);
      -- one row per event occurrence, so a group replayed after a crash counts once.
      CREATE TABLE count_window_times (
        key        TEXT NOT NULL,
        occurrence TEXT NOT NULL,
        time       BIGINT NOT NULL,
        PRIMARY KEY (key, occurrence)
      );
      CREATE INDEX count_window_times_by_time ON count_window_times (key, time);
      -- Records an occurrence (once) and returns the key's newest keep times, newest first; the
      -- key is locked for the transaction, so two nodes counting it take turns. Older times,
      -- which can never count again, are trimmed.
      CREATE FUNCTION leakwatch_count_window_record(k TEXT, occ TEXT, t BIGINT, keep INTEGER) RETURNS SETOF BIGINT LANGUAGE plpgsql AS $$
      DECLARE
        cutoff BIGINT;
      BEGIN
        PERFORM pg_advisory_xact_lock(hashtextextended('count-window' || chr(31) || k, 0));
        INSERT INTO count_window_times (key, occurrence, time) VALUES (k, occ, t) ON CONFLICT DO NOTHING;
        SELECT time INTO cutoff FROM count_window_times WHERE key = k ORDER BY time DESC OFFSET keep LIMIT 1;
        IF cutoff IS NOT NULL THEN
          DELETE FROM count_window_times WHERE key = k AND time < cutoff;
        END IF;
        RETURN QUERY SELECT time FROM count_window_times WHERE key = k ORDER BY time DESC LIMIT keep;
      END $$;
    `,
  },
  {
    version: 7,
    name: 'events looked up by time and id',
    sql: `
      -- An event's id is a hash, so an index on the id alone takes each new event at a random
      -- place: every commit of 100 events rewrote ~100 of its pages. The same id always has the
      -- same time (the hash covers it), and events come nearly in time order, so an index on
      -- (time, id) grows at its end. Measured on the bench's 31,008 events, 100 per transaction:
      -- 27% fewer pages written, 25% less time.
      CREATE TABLE events_by_time_id (
        id          TEXT NOT NULL,
        incident_id TEXT NOT NULL,
        time        INTEGER NOT NULL,
        host        TEXT NOT NULL,
        service     TEXT NOT NULL,
        category    TEXT NOT NULL,
        body        TEXT NOT NULL
      );
      INSERT INTO events_by_time_id (rowid, id, incident_id, time, host, service, category, body)
        SELECT rowid, id, incident_id, time, host, service, category, body FROM events ORDER BY rowid;
      DROP TABLE events;
      ALTER TABLE events_by_time_id RENAME TO events;
      CREATE UNIQUE INDEX events_by_time_and_id ON events (time, id);
      CREATE INDEX events_by_incident ON events (incident_id, time);
      CREATE INDEX events_by_stream ON events (host, service, time);
    `,
    // PostgreSQL's id index costs a lookup, not a page per event written: its schema stays.
    postgres: '',
  },
  {
    version: 8,
    name: 'an incident names its last event instead of carrying it',
    sql: `
      -- Every batch rewrote each incident it touched with its newest event inside (~2 KB), a page
      -- per incident per commit. The event is in events already, at the incident's last_seen (the
      -- last event is the one that set it, and pruning keeps the newest): the row keeps its id.
      -- Measured on the bench's 31,008 events, 50 per transaction: 157 -> 139 log pages per
      -- commit, 13% less CPU. An incident whose last event is no longer stored gets it back.
      INSERT OR IGNORE INTO events (id, incident_id, time, host, service, category, body)
        SELECT json_extract(last_event, '$.id'), id, last_seen, host, service, category, json_set(last_event, '$.incident_id', id)
          FROM incidents AS i
         WHERE NOT EXISTS (SELECT 1 FROM events WHERE time = i.last_seen AND id = json_extract(i.last_event, '$.id'));
      CREATE TABLE incidents_naming_last_event (
        id             TEXT PRIMARY KEY,
        key            TEXT NOT NULL,
        rule           TEXT NOT NULL,
        category       TEXT NOT NULL,
        severity       TEXT NOT NULL,
        status         TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
        host           TEXT NOT NULL,
        service        TEXT NOT NULL,
        pids           TEXT NOT NULL,
        first_seen     INTEGER NOT NULL,
        last_seen      INTEGER NOT NULL,
        count          INTEGER NOT NULL,
        summary        TEXT NOT NULL,
        fields         TEXT NOT NULL,
        evidence       TEXT NOT NULL,
        last_event_id  TEXT NOT NULL,      -- the event at (last_seen, last_event_id) in events
        acked_at       INTEGER,
        resolved_at    INTEGER,
        reopened_count INTEGER NOT NULL DEFAULT 0
      );
      INSERT INTO incidents_naming_last_event (id, key, rule, category, severity, status, host, service, pids, first_seen, last_seen,
                                               count, summary, fields, evidence, last_event_id, acked_at, resolved_at, reopened_count)
        SELECT id, key, rule, category, severity, status, host, service, pids, first_seen, last_seen,
               count, summary, fields, evidence, json_extract(last_event, '$.id'), acked_at, resolved_at, reopened_count
          FROM incidents;
      DROP TABLE incidents;
      ALTER TABLE incidents_naming_last_event RENAME TO incidents;
      CREATE INDEX incidents_by_key ON incidents (key, first_seen);
      CREATE INDEX incidents_by_recency ON incidents (last_seen DESC, id);
      CREATE INDEX incidents_by_status ON incidents (status, last_seen);
      CREATE INDEX incidents_by_opening ON incidents (host, service, first_seen);
    `,
    postgres: `
      INSERT INTO events (id, incident_id, time, host, service, category, body)
        SELECT i.last_event::jsonb ->> 'id', i.id, i.last_seen, i.host, i.service, i.category,
               jsonb_set(i.last_event::jsonb, '{incident_id}', to_jsonb(i.id))::text
          FROM incidents AS i
         WHERE NOT EXISTS (SELECT 1 FROM events WHERE id = i.last_event::jsonb ->> 'id')
        ON CONFLICT DO NOTHING;
      ALTER TABLE incidents ADD COLUMN last_event_id TEXT;
      UPDATE incidents SET last_event_id = last_event::jsonb ->> 'id';
      ALTER TABLE incidents ALTER COLUMN last_event_id SET NOT NULL, DROP COLUMN last_event;
    `,
  },
  {
    version: 9,
    name: 'fixed annotation texts stored once',
    sql: `
      -- A rule's hint and runbook link are the same text in every event of the rule, ~480 of a
      -- stored event's ~2,300 bytes: at that size one event filled a 4 KiB page, without them two
      -- fit. A stored event's annotation that is a number names a row here (SqliteStore).
      CREATE TABLE rule_texts (
        id   INTEGER PRIMARY KEY,
        text TEXT NOT NULL UNIQUE
      );
    `,
    // PostgreSQL keeps each event's annotations whole: its rows are not written a page at a time.
    postgres: '',
  },
  {
    version: 10,
    name: 'memory samples that carry a limit, indexed',
    sql: `
      -- A process's last reported limit (knownMaxOf), asked for every memory view and every
      -- judged process: metrics snapshots carry none, so over samples_by_process the newest
      -- sample with a limit was found by reading every sample of the process (up to 4,000).
      CREATE INDEX samples_with_limit ON memory_samples (host, service, pid, t) WHERE max_bytes IS NOT NULL;
    `,
    postgres: `
      CREATE INDEX samples_with_limit ON memory_samples (host, service, pid, t, rowid) WHERE max_bytes IS NOT NULL;
    `,
  },
];

/** Applies the migrations the database has not seen yet. Returns the schema version afterwards. */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): number {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
  )`);
  const applied = new Set(
    (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((row) => row.version),
  );
  const newest = Math.max(0, ...applied);
  const known = Math.max(0, ...migrations.map((m) => m.version));
  if (newest > known) {
    throw new Error(`database schema version ${newest} is newer than this leakwatch understands (${known}); upgrade leakwatch`);
  }
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (applied.has(migration.version)) continue;
    db.transaction(() => {
      db.exec(migration.sql);
      record.run(migration.version, migration.name, new Date().toISOString());
    })();
  }
  return Math.max(newest, known);
}

/** Any key, shared by every leakwatch: nodes that start together migrate one after another. */
const MIGRATION_LOCK = 7_462_001;

/** The PostgreSQL side of migrate(): the same versions, all in one transaction (DDL is transactional there). */
export function migratePostgres(db: SyncPostgres, migrations: readonly Migration[] = MIGRATIONS): number {
  db.query('BEGIN');
  try {
    db.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    db.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT NOT NULL,
      applied_at TEXT NOT NULL
    )`);
    const applied = new Set(db.column<number>('SELECT version FROM schema_migrations'));
    const newest = Math.max(0, ...applied);
    const known = Math.max(0, ...migrations.map((m) => m.version));
    if (newest > known) {
      throw new Error(`database schema version ${newest} is newer than this leakwatch understands (${known}); upgrade leakwatch`);
    }
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(migration.version)) continue;
      if (migration.postgres.trim() !== '') db.query(migration.postgres);
      db.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [migration.version, migration.name, new Date().toISOString()]);
    }
    db.query('COMMIT');
    return Math.max(newest, known);
  } catch (error) {
    try {
      db.query('ROLLBACK');
    } catch {
      // The connection is gone: the server has rolled back already.
    }
    throw error;
  }
}
