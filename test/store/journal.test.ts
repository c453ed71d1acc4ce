import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { streamKeyOf, type LogRecord } from '../../src/ingest/record.js';
import { MIGRATIONS, migrate } from '../../src/store/migrations.js';
import { DB_FILE_NAME, SqliteStore } from '../../src/store/sqlite-store.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'leakwatch-journal-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

// A line from the linkerd forum thread "Non-heap Memory Leak on 1.3.1" (discourse.linkerd.io, November 2017) (linkerd 1.3.1 on journald).
function record(message: string): LogRecord {
  return { time: 1730462372962, host: 'web-1', service: 'linkerd', pid: '5699', stream: streamKeyOf('web-1', 'linkerd', '5699'), message };
}

describe('ingest journal', () => {
  it('keeps batches in order across a reopen until they are pruned', () => {
    const store = new SqliteStore(dir);
    const first = store.appendJournal(1000, { records: [record('WARN 1101 11:59:32.962 CDT finagle/netty4-103: Failed to initialize a channel.')] });
    const second = store.appendJournal(2000, { records: [record('io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 1048576 byte(s)'), record('at io.netty.util.internal.PlatformDependent.incrementMemoryCounter(')] });
    expect(second).toBeGreaterThan(first);
    store.close();

    const reopened = new SqliteStore(dir);
    const batches = reopened.journalAfter(0, 10);
    expect(batches.map((b) => [b.seq, b.receivedAt, 'records' in b.content ? b.content.records.length : -1])).toEqual([[first, 1000, 1], [second, 2000, 2]]);
    expect('records' in batches[1]!.content && batches[1]!.content.records[1]!.message).toBe('at io.netty.util.internal.PlatformDependent.incrementMemoryCounter(');
    expect(reopened.journalAfter(first, 10).map((b) => b.seq)).toEqual([second]);
    expect(reopened.journalCheckpoint()).toBeUndefined();
    reopened.checkpointJournal(first, { pushedThrough: second, pending: [second * 2 ** 24 + 1, second * 2 ** 24, 7] });
    expect(reopened.journalAfter(0, 10).map((b) => b.seq)).toEqual([second]);
    reopened.close();

    const again = new SqliteStore(dir);
    expect(again.journalCheckpoint()).toEqual({ pushedThrough: second, pending: [7, second * 2 ** 24, second * 2 ** 24 + 1] });
    again.close();
  });

  it('migration 2 folds duplicate memory samples of a version-1 store and then ignores re-sent ones', () => {
    const raw = new Database(join(dir, DB_FILE_NAME));
    migrate(raw, MIGRATIONS.filter((m) => m.version === 1));
    const insert = raw.prepare('INSERT INTO memory_samples (host, service, pid, t, used_bytes, max_bytes, source) VALUES (?, ?, ?, ?, ?, ?, ?)');
    insert.run('web-1', 'linkerd', '5699', 1000, 500, null, 'jvm-buffer-pool');
    insert.run('web-1', 'linkerd', '5699', 1000, 500, null, 'jvm-buffer-pool');
    insert.run('web-1', 'linkerd', '5699', 1000, 700, null, 'finagle-netty4-pooling');
    raw.close();

    const store = new SqliteStore(dir);
    const process = { host: 'web-1', service: 'linkerd', pid: '5699' };
    expect(store.samplesOf(process, 10)).toHaveLength(2);
    store.insertSamples([{ ...process, t: 1000, used_bytes: 500, max_bytes: null, source: 'jvm-buffer-pool' }]);
    expect(store.samplesOf(process, 10)).toHaveLength(2);
    store.close();
  });
});

describe('journaled bodies', () => {
  it('keeps a body as received, with its content type and encoding, byte for byte', () => {
    const store = new SqliteStore(dir);
    const body = gzipSync('[{"message":"io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 1048576 byte(s)"}]');
    const seq = store.appendJournal(1500, { body: { body, contentType: 'application/json', contentEncoding: 'gzip' } });
    store.close();
    const [batch] = new SqliteStore(dir).journalAfter(0, 10);
    expect(batch?.seq).toBe(seq);
    expect(batch?.receivedAt).toBe(1500);
    expect('body' in batch!.content && Buffer.compare(Buffer.from(batch!.content.body.body), body)).toBe(0);
    expect('body' in batch!.content && [batch!.content.body.contentType, batch!.content.body.contentEncoding]).toEqual(['application/json', 'gzip']);
  });

  it.each([
    ['holding batches', false],
    ['pruned to empty', true],
  ])('migration 3 keeps the sequence of a version-2 journal %s (the checkpoint refers to it)', (_name, pruned) => {
    const raw = new Database(join(dir, DB_FILE_NAME));
    migrate(raw, MIGRATIONS.filter((m) => m.version <= 2));
    const insert = raw.prepare('INSERT INTO ingest_journal (received_at, records) VALUES (?, ?)');
    for (let index = 0; index < 5; index++) insert.run(index, JSON.stringify([record(`line ${index}`)]));
    if (pruned) raw.exec('DELETE FROM ingest_journal');
    raw.close();

    const store = new SqliteStore(dir);
    expect(store.journalAfter(0, 10).map((batch) => batch.seq)).toEqual(pruned ? [] : [1, 2, 3, 4, 5]);
    const next = store.appendJournal(9, { body: { body: Buffer.from('x'), contentType: 'text/plain', contentEncoding: undefined } });
    expect(next).toBe(6);
    store.close();
  });
});

describe('the file gives space back', () => {
  it('after a flood of journaled batches is pruned, the database file shrinks to a fraction of its peak', () => {
    const store = new SqliteStore(dir);
    const line = `at io.netty.util.internal.PlatformDependent.incrementMemoryCounter(${'x'.repeat(200)}`;
    let last = 0;
    for (let batch = 0; batch < 200; batch++) last = store.appendJournal(batch, { records: Array.from({ length: 200 }, () => record(line)) });
    store.close();
    const peak = statSync(join(dir, DB_FILE_NAME)).size;
    expect(peak).toBeGreaterThan(8 * 1024 * 1024);

    const reopened = new SqliteStore(dir);
    reopened.checkpointJournal(last, { pushedThrough: last, pending: [] });
    expect(reopened.fileUsage().freeBytes).toBeGreaterThan(peak / 2);
    while (reopened.reclaimSpace() > 0);
    expect(reopened.fileUsage().freeBytes).toBeLessThan(peak / 10);
    reopened.close();
    expect(statSync(join(dir, DB_FILE_NAME)).size).toBeLessThan(peak / 10);
  });

  it('a file made without incremental vacuum is converted when it is opened', () => {
    const raw = new Database(join(dir, DB_FILE_NAME));
    migrate(raw);
    expect(raw.pragma('auto_vacuum', { simple: true })).toBe(0);
    raw.close();
    const store = new SqliteStore(dir);
    store.close();
    const check = new Database(join(dir, DB_FILE_NAME), { readonly: true });
    expect(check.pragma('auto_vacuum', { simple: true })).toBe(2);
    check.close();
  });
});
