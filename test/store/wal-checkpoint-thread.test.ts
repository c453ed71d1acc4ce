/**
 * The server's store (compiled, as `leakwatch serve` runs it) checkpoints its write-ahead log on a
 * thread of its own: the log stays near the 16 MiB threshold while the main connection never
 * checkpoints in a commit, and what was written is all in the database afterwards.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { tempDirs } from '../helpers/temp-dirs.js';

const COMPILED = new URL('../../dist/store/sqlite-store.js', import.meta.url).href;
const tempDir = tempDirs();
const MiB = 1024 * 1024;

function walBytes(path: string): number {
  try {
    return statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
}

async function writeMiBs(store: { transaction<T>(work: () => T): T; setMeta(key: string, value: string): void }, path: string, count: number): Promise<number> {
  let largestWal = 0;
  for (let index = 0; index < count; index++) {
    store.transaction(() => store.setMeta(`filler-${index}`, String(index % 10).repeat(MiB)));
    largestWal = Math.max(largestWal, walBytes(path));
    // Shippers pause between batches; the thread checkpoints in those gaps.
    await new Promise((resolve) => setTimeout(resolve, 40));
  }
  return largestWal;
}

describe('the write-ahead log checkpointed on its own thread', () => {
  it('keeps the log bounded without the main connection checkpointing, and loses nothing', async () => {
    const { SqliteStore, DB_FILE_NAME } = (await import(COMPILED)) as typeof import('../../src/store/sqlite-store.js');
    const dir = tempDir('wal-thread');
    const store = new SqliteStore(dir, { checkpointOnThread: true });
    const path = join(dir, DB_FILE_NAME);
    const largestWal = await writeMiBs(store, path, 64);
    expect(store.checkpointsOnThread).toBeGreaterThan(0);
    // 64 MiB written: without a checkpoint the log would hold all of it.
    expect(largestWal).toBeLessThan(40 * MiB);
    store.close();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.prepare("SELECT COUNT(*) FROM meta WHERE key LIKE 'filler-%'").pluck().get()).toBe(64);
    } finally {
      raw.close();
    }
  });

  it('without the thread, SQLite checkpoints in its commits as before', async () => {
    const { SqliteStore, DB_FILE_NAME } = (await import(COMPILED)) as typeof import('../../src/store/sqlite-store.js');
    const dir = tempDir('wal-commits');
    const store = new SqliteStore(dir);
    const largestWal = await writeMiBs(store, join(dir, DB_FILE_NAME), 24);
    expect(store.checkpointsOnThread).toBe(0);
    expect(largestWal).toBeLessThan(40 * MiB);
    store.close();
  });
});
