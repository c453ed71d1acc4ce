import { mkdtempSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MIGRATIONS, migrate } from '../../src/store/migrations.js';
import { DB_FILE_NAME, SqliteStore } from '../../src/store/sqlite-store.js';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'leakwatch-store-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('SqliteStore', () => {
  it('creates leakwatch.db in WAL mode with the chosen synchronous level and records migrations once', () => {
    const store = new SqliteStore(join(dir, 'nested', 'data'), { synchronous: 'FULL' });
    expect(store.schemaVersion).toBe(MIGRATIONS.at(-1)!.version);
    expect(store.synchronousLevel).toBe('FULL');
    store.close();
    const again = new SqliteStore(join(dir, 'nested', 'data'));
    expect(again.synchronousLevel).toBe('NORMAL');
    again.close();
    const raw = new Database(join(dir, 'nested', 'data', DB_FILE_NAME));
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      const applied = raw.prepare('SELECT version, name FROM schema_migrations').all();
      expect(applied).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
      const tables = raw.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
      expect(tables).toEqual(expect.arrayContaining(['events', 'incidents', 'memory_samples', 'schema_migrations']));
    } finally {
      raw.close();
    }
  });

  it('applies a later migration on top and refuses a database newer than it knows', () => {
    new SqliteStore(dir).close();
    const raw = new Database(join(dir, DB_FILE_NAME));
    try {
      const next = MIGRATIONS.at(-1)!.version + 1;
      const later = [...MIGRATIONS, { version: next, name: 'a later change', sql: 'CREATE TABLE later (id INTEGER PRIMARY KEY, body BLOB NOT NULL)', postgres: '' }];
      expect(migrate(raw, later)).toBe(next);
      expect(raw.prepare("SELECT COUNT(*) FROM sqlite_master WHERE name = 'later'").pluck().get()).toBe(1);
    } finally {
      raw.close();
    }
    const known = MIGRATIONS.at(-1)!.version;
    expect(() => new SqliteStore(dir)).toThrow(`schema version ${known + 1} is newer than this leakwatch understands (${known})`);
  });

  it('migration 7 keeps every event, in its order, and finds each by its time and id', () => {
    const raw = new Database(join(dir, DB_FILE_NAME));
    migrate(raw, MIGRATIONS.filter((m) => m.version <= 6));
    const insert = raw.prepare('INSERT INTO events (id, incident_id, time, host, service, category, body) VALUES (?, ?, ?, ?, ?, ?, ?)');
    // Inserted out of time order: the row order (ties in the event lists) must survive.
    const events = [3, 1, 2].map((n) => ({ id: `id-${n}`, time: 1_700_000_000_000 + n, body: JSON.stringify({ id: `id-${n}` }) }));
    for (const event of events) insert.run(event.id, 'incident-1', event.time, 'h1', 'linkerd', 'direct-memory-exhausted', event.body);
    raw.close();

    const store = new SqliteStore(dir);
    try {
      for (const event of events) expect(store.hasEvent(event.id, event.time)).toBe(true);
      expect(store.hasEvent('id-1', 1_700_000_000_002)).toBe(false);
      expect(store.eventsOfIncident('incident-1', 10).map((event) => event.id)).toEqual(['id-3', 'id-2', 'id-1']);
    } finally {
      store.close();
    }
    const after = new Database(join(dir, DB_FILE_NAME));
    try {
      expect(after.prepare('SELECT id FROM events ORDER BY rowid').pluck().all()).toEqual(['id-3', 'id-1', 'id-2']);
      expect(after.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' ORDER BY name").pluck().all()).toEqual(['events_by_incident', 'events_by_stream', 'events_by_time_and_id']);
      expect(() => after.prepare('INSERT INTO events (id, incident_id, time, host, service, category, body) VALUES (?, ?, ?, ?, ?, ?, ?)').run('id-1', 'x', 1_700_000_000_001, 'h', 's', 'c', '{}')).toThrow(/UNIQUE/);
    } finally {
      after.close();
    }
  });


  it("finds a process's last reported limit by an index of the samples that carry one, not by reading its samples", () => {
    const store = new SqliteStore(dir);
    // The store's own statement, as it runs it: a rewording that loses the index fails here.
    const source = (store as unknown as { statements: { knownMaxOf: Database.Statement } }).statements.knownMaxOf.source;
    store.close();
    const raw = new Database(join(dir, DB_FILE_NAME), { readonly: true });
    try {
      const plan = raw.prepare(`EXPLAIN QUERY PLAN ${source}`).all('lb-1', 'linkerd', '4416', Number.MAX_SAFE_INTEGER) as { detail: string }[];
      expect(plan.map((step) => step.detail)).toEqual([expect.stringMatching(/^SEARCH memory_samples USING INDEX samples_with_limit \(host=\? AND service=\? AND pid=\? AND t<\?\)$/)]);
    } finally {
      raw.close();
    }
  });
  it('reports a file that is not a database clearly', async () => {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(dir, DB_FILE_NAME), 'this is not sqlite, just text that fills a page '.repeat(200));
    expect(() => new SqliteStore(dir)).toThrow(/cannot open store .*leakwatch\.db: file is not a database/);
  });

  it('a transaction that reads before it writes waits for another process holding the write lock', async () => {
    const store = new SqliteStore(dir);
    // A second process (the sqlite3 shell, a second leakwatch) takes the write lock for 300 ms.
    const holder = spawn(
      process.execPath,
      ['-e', `
        const db = new (require('better-sqlite3'))(process.argv[1]);
        db.exec('BEGIN IMMEDIATE');
        db.prepare("INSERT INTO meta (key, value) VALUES ('holder', 'was here')").run();
        process.stdout.write('locked\\n');
        setTimeout(() => { db.exec('COMMIT'); db.close(); }, 300);
      `, join(dir, DB_FILE_NAME)],
      { cwd: fileURLToPath(new URL('../..', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise((resolve) => holder.once('exit', resolve));
    await new Promise<void>((resolve, reject) => {
      holder.stdout.setEncoding('utf8').on('data', (text: string) => text.includes('locked') && resolve());
      holder.once('exit', (code) => reject(new Error(`the lock holder exited with ${code}`)));
    });
    const started = Date.now();
    // As a batch does: look up whether the event is stored, then store. A deferred transaction
    // failed here at once with SQLITE_BUSY: SQLite never waits to turn a read into a write.
    store.transaction(() => {
      expect(store.getMeta('batch')).toBeUndefined();
      store.setMeta('batch', 'stored');
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    await exited;
    expect(store.getMeta('holder')).toBe('was here');
    expect(store.getMeta('batch')).toBe('stored');
    store.close();
  });
});
