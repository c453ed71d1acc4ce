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

type WritableStore = { transaction<T>(work: () => T): T; setMeta(key: string, value: string): void; readonly checkpointsOnThread: number };

/**
 * Writes `count` MiB, a transaction each, like batches of a shipper; with `waitForThread`, a write
 * that takes the log past the threshold waits (up to 10 s) for the thread's next checkpoint, as
 * the gaps between batches give it time to do.
 */
async function writeMiBs(store: WritableStore, path: string, count: number, waitForThread = false): Promise<number> {
  let largestWal = 0;
  for (let index = 0; index < count; index++) {
    store.transaction(() => store.setMeta(`filler-${index}`, String(index % 10).repeat(MiB)));
    largestWal = Math.max(largestWal, walBytes(path));
    if (!waitForThread || walBytes(path) < 16 * MiB) continue;
    const before = store.checkpointsOnThread;
    const deadline = Date.now() + 10_000;
    while (store.checkpointsOnThread === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return largestWal;
}

describe('the write-ahead log checkpointed on its own thread', () => {
  it('keeps the log bounded without the main connection checkpointing, and loses nothing', async () => {
    const { SqliteStore, DB_FILE_NAME } = (await import(COMPILED)) as typeof import('../../src/store/sqlite-store.js');
    const dir = tempDir('wal-thread');
    const store = new SqliteStore(dir, { checkpointOnThread: true });
    const path = join(dir, DB_FILE_NAME);
    const largestWal = await writeMiBs(store, path, 64, true);
    expect(store.checkpointsOnThread).toBeGreaterThanOrEqual(2);
    // 64 MiB written: without a checkpoint the log would hold all of it; the log starts again
    // from its beginning after each checkpoint, so the file stays near the 16 MiB threshold.
    expect(largestWal).toBeLessThan(32 * MiB);
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
