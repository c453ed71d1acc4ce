import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

  it('reports a file that is not a database clearly', async () => {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(dir, DB_FILE_NAME), 'this is not sqlite, just text that fills a page '.repeat(200));
    expect(() => new SqliteStore(dir)).toThrow(/cannot open store .*leakwatch\.db: file is not a database/);
  });
});
