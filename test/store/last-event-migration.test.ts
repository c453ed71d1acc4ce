import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LeakEvent } from '../../src/engine/event.js';
import { IncidentService } from '../../src/incidents/service.js';
import { MIGRATIONS, migrate, migratePostgres } from '../../src/store/migrations.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { SyncPostgres } from '../../src/store/postgres-sync.js';
import { DB_FILE_NAME, SqliteStore } from '../../src/store/sqlite-store.js';
import { makeEvent } from '../incidents/fixtures.js';
import { startPostgres, type PostgresServer } from '../helpers/scale-servers.js';
import { tempDirs } from '../helpers/temp-dirs.js';

/*
 * Migration 8: incidents stop carrying their last event whole and name it instead. A store
 * written before it, with one incident whose last event is stored and one whose last event is
 * not (a store from before the per-incident cap kept the newest), must show both as it did.
 */

const T0 = Date.parse('2017-11-01T16:59:32.962Z');
const BEFORE_NAMING = MIGRATIONS.filter((migration) => migration.version <= 7);

interface Written {
  incident: string;
  /** The events rows: [event, time]. */
  events: Array<[LeakEvent, number]>;
  /** The incident's last_seen and its last event as the old rows carried it (incident_id null). */
  lastSeen: number;
  lastEvent: LeakEvent;
}

function oldStore(): Written[] {
  const stored = ['incident-stored', 'incident-gone'].map((incident, n) => {
    const events = [0, 1, 2].map((seq) => makeEvent('oodm', { time: T0 + seq * 1000, host: `lb-${n}`, seq }));
    return { incident, events, last: events[2]! };
  });
  return [
    { incident: stored[0]!.incident, events: stored[0]!.events.map((event) => [{ ...event, incident_id: stored[0]!.incident }, Date.parse(event.timestamp)]), lastSeen: T0 + 2000, lastEvent: stored[0]!.last },
    // Its newest event is not in events.
    { incident: stored[1]!.incident, events: stored[1]!.events.slice(0, 2).map((event) => [{ ...event, incident_id: stored[1]!.incident }, Date.parse(event.timestamp)]), lastSeen: T0 + 2000, lastEvent: stored[1]!.last },
  ];
}

function incidentRow(written: Written, n: number): unknown[] {
  const event = written.lastEvent;
  return [written.incident, event.incident_key, event.rule, event.category, event.severity, 'open', event.host, event.service, JSON.stringify([event.pid]), T0, written.lastSeen, 3, 'summary', JSON.stringify(event.fields), '[]', JSON.stringify(event), n];
}

function expectShownAsBefore(store: SqliteStore | PostgresStore, written: Written[]): void {
  const incidents = new IncidentService(store);
  const listed = incidents.list({ status: 'all', limit: 10 }).incidents;
  for (const entry of written) {
    const expected = { ...entry.lastEvent, incident_id: entry.incident };
    expect(listed.find((incident) => incident.id === entry.incident)!.last_event).toEqual(expected);
    const shown = incidents.get(entry.incident)!;
    expect(shown.last_event).toEqual(expected);
    expect(shown.events[0]).toEqual(expected);
    expect(shown.events).toHaveLength(3);
  }
  // A new event moves the last event as before.
  const next = makeEvent('oodm', { time: T0 + 5000, host: 'lb-0', seq: 9 });
  incidents.ingest([next]);
  expect(incidents.get('incident-stored')!.last_event).toEqual({ ...next, incident_id: 'incident-stored' });
}

describe('migration 8 on SQLite', () => {
  const tempDir = tempDirs();

  it('names each incident last event, stores the one that was missing, and shows both as before', () => {
    const dir = tempDir('last-event-migration');
    const raw = new Database(join(dir, DB_FILE_NAME));
    migrate(raw, BEFORE_NAMING);
    const written = oldStore();
    const insertEvent = raw.prepare('INSERT INTO events (id, incident_id, time, host, service, category, body) VALUES (?, ?, ?, ?, ?, ?, ?)');
    const insertIncident = raw.prepare(
      `INSERT INTO incidents (id, key, rule, category, severity, status, host, service, pids, first_seen, last_seen, count, summary, fields, evidence, last_event, reopened_count)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    written.forEach((entry, n) => {
      for (const [event, time] of entry.events) insertEvent.run(event.id, event.incident_id, time, event.host, event.service, event.category, JSON.stringify(event));
      insertIncident.run(...incidentRow(entry, n));
    });
    raw.close();

    const store = new SqliteStore(dir);
    try {
      expectShownAsBefore(store, written);
    } finally {
      store.close();
    }
    const after = new Database(join(dir, DB_FILE_NAME));
    try {
      const columns = after.prepare("SELECT name FROM pragma_table_info('incidents')").pluck().all();
      expect(columns).toContain('last_event_id');
      expect(columns).not.toContain('last_event');
      expect(after.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'incidents' AND sql IS NOT NULL ORDER BY name").pluck().all()).toEqual([
        'incidents_by_key',
        'incidents_by_opening',
        'incidents_by_recency',
        'incidents_by_status',
      ]);
    } finally {
      after.close();
    }
  });
});

describe('migration 8 on PostgreSQL', () => {
  let postgres: PostgresServer | undefined;
  beforeAll(async () => {
    postgres = await startPostgres();
  });
  afterAll(() => postgres?.remove());

  it('names each incident last event, stores the one that was missing, and shows both as before', () => {
    postgres!.createDatabase('last_event_migration');
    const url = postgres!.url.replace(/\/leakwatch$/, '/last_event_migration');
    const raw = new SyncPostgres(url);
    const written = oldStore();
    try {
      migratePostgres(raw, BEFORE_NAMING);
      written.forEach((entry, n) => {
        for (const [event, time] of entry.events) {
          raw.query('INSERT INTO events (id, incident_id, time, host, service, category, body) VALUES ($1, $2, $3, $4, $5, $6, $7)', [event.id, event.incident_id, time, event.host, event.service, event.category, JSON.stringify(event)]);
        }
        raw.query(
          `INSERT INTO incidents (id, key, rule, category, severity, status, host, service, pids, first_seen, last_seen, count, summary, fields, evidence, last_event, reopened_count)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
          incidentRow(entry, n),
        );
      });
    } finally {
      raw.close();
    }

    const store = new PostgresStore(url);
    try {
      expectShownAsBefore(store, written);
    } finally {
      store.close();
    }
  });
});
