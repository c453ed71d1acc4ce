/**
 * The Store interface has two implementations, and what is written once over it (the incident
 * lifecycle, the memory tracker) must give the same answers on both: tests run their cases on
 * each. PostgreSQL is a real server (scale-servers.ts), started once per test file, with a fresh
 * database per case.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import { startPostgres, type PostgresServer } from './scale-servers.js';
import { tempDirs } from './temp-dirs.js';

export interface StoreBackend {
  name: string;
  /** A store on fresh, empty storage. */
  fresh(): Store;
  /** The same storage opened again (a restart). */
  reopen(): Store;
  cleanUp(): void;
}

/** Both backends; call at the top level of a test file (it starts PostgreSQL for the file). */
export function storeBackends(prefix: string): StoreBackend[] {
  let postgres: PostgresServer | undefined;
  beforeAll(async () => {
    postgres = await startPostgres();
  });
  afterAll(() => postgres?.remove());

  const tempDir = tempDirs();
  let dir = '';
  const sqlite: StoreBackend = {
    name: 'SQLite',
    fresh: () => new SqliteStore((dir = tempDir(prefix))),
    reopen: () => new SqliteStore(dir),
    cleanUp: () => rmSync(dir, { recursive: true, force: true }),
  };
  let databases = 0;
  let url = '';
  const postgresBackend: StoreBackend = {
    name: 'PostgreSQL',
    fresh: () => {
      const database = `${prefix.replace(/\W/g, '_')}_${++databases}`;
      postgres!.createDatabase(database);
      url = postgres!.url.replace(/\/leakwatch$/, `/${database}`);
      return new PostgresStore(url);
    },
    reopen: () => new PostgresStore(url),
    cleanUp: () => undefined,
  };
  return [sqlite, postgresBackend];
}
