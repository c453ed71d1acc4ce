import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { streamKeyOf, type LogRecord } from '../../src/ingest/record.js';
import { MIGRATIONS, migrate } from '../../src/store/migrations.js';
import { DB_FILE_NAME, JOURNAL_DIR_NAME, SqliteStore } from '../../src/store/sqlite-store.js';
import { SegmentJournal } from '../../src/store/segment-journal.js';
import type { JournalContent } from '../../src/store/store.js';

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
  it('keeps batches in order across a reopen until they are pruned', async () => {
    const store = new SqliteStore(dir);
    const first = await store.appendJournal(1000, { records: [record('WARN 1101 11:59:32.962 CDT finagle/netty4-103: Failed to initialize a channel.')] });
    const second = await store.appendJournal(2000, { records: [record('io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 1048576 byte(s)'), record('at io.netty.util.internal.PlatformDependent.incrementMemoryCounter(')] });
    expect(second).toBeGreaterThan(first);
    store.close();

    const reopened = new SqliteStore(dir);
    const batches = reopened.journalAfter(0, 10);
    expect(batches.map((b) => [b.seq, b.receivedAt, 'records' in b.content ? b.content.records.length : -1])).toEqual([[first, 1000, 1], [second, 2000, 2]]);
    expect('records' in batches[1]!.content && batches[1]!.content.records[1]!.message).toBe('at io.netty.util.internal.PlatformDependent.incrementMemoryCounter(');
    expect(reopened.journalAfter(first, 10).map((b) => b.seq)).toEqual([second]);
    expect(reopened.journalCheckpoint()).toBeUndefined();
    reopened.checkpointJournal(first, { pushedThrough: second, pending: [second * 2 ** 24 + 1, second * 2 ** 24, 7] });
    // Pruned through `first`: `second` stays (the first may too, in the same segment file).
    expect(reopened.journalAfter(0, 10).map((b) => b.seq)).toContain(second);
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
  it('keeps a body as received, with its content type and encoding, byte for byte', async () => {
    const store = new SqliteStore(dir);
    const body = gzipSync('[{"message":"io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 1048576 byte(s)"}]');
    const seq = await store.appendJournal(1500, { body: { body, contentType: 'application/json', contentEncoding: 'gzip' } });
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
  ])('migration 3 keeps the sequence of a version-2 journal %s (the checkpoint refers to it)', async (_name, pruned) => {
    const raw = new Database(join(dir, DB_FILE_NAME));
    migrate(raw, MIGRATIONS.filter((m) => m.version <= 2));
    const insert = raw.prepare('INSERT INTO ingest_journal (received_at, records) VALUES (?, ?)');
    for (let index = 0; index < 5; index++) insert.run(index, JSON.stringify([record(`line ${index}`)]));
    if (pruned) raw.exec('DELETE FROM ingest_journal');
    raw.close();

    const store = new SqliteStore(dir);
    expect(store.journalAfter(0, 10).map((batch) => batch.seq)).toEqual(pruned ? [] : [1, 2, 3, 4, 5]);
    const next = await store.appendJournal(9, { body: { body: Buffer.from('x'), contentType: 'text/plain', contentEncoding: undefined } });
    expect(next).toBe(6);
    store.close();
  });
});

describe('the journal\'s segment files', () => {
  const line = `at io.netty.util.internal.PlatformDependent.incrementMemoryCounter(${'x'.repeat(200)}`;

  it('a flood of batches, once pruned, leaves no journal bytes and no database growth behind', async () => {
    const store = new SqliteStore(dir);
    const dbBefore = statSync(join(dir, DB_FILE_NAME)).size;
    let last = 0;
    for (let batch = 0; batch < 200; batch++) last = await store.appendJournal(batch, { records: Array.from({ length: 200 }, () => record(line)) });
    expect(store.journalBytes()).toBeGreaterThan(8 * 1024 * 1024);
    store.checkpointJournal(last, { pushedThrough: last, pending: [] });
    expect(store.journalBytes()).toBe(0);
    expect(readdirSync(join(dir, JOURNAL_DIR_NAME))).toEqual([]);
    store.close();
    expect(statSync(join(dir, DB_FILE_NAME)).size).toBeLessThan(dbBefore + 1024 * 1024);
    // Numbering goes on after the pruned batches (the checkpoint refers to them).
    const reopened = new SqliteStore(dir);
    expect(await reopened.appendJournal(1, { records: [record(line)] })).toBe(last + 1);
    reopened.close();
  });

  it('rotates segments and deletes only those whose batches are all pruned', () => {
    const journal = new SegmentJournal(join(dir, 'segments'), 0, 4096);
    const body = (text: string): JournalContent => ({ body: { body: Buffer.from(text.repeat(300)), contentType: 'text/plain', contentEncoding: undefined } });
    for (let index = 1; index <= 12; index++) journal.append(index, body(`batch ${index} `));
    const before = readdirSync(join(dir, 'segments')).length;
    expect(before).toBeGreaterThan(3);
    journal.prune(6);
    expect(journal.after(0, 100).map((batch) => batch.seq)[0]).toBeLessThanOrEqual(7);
    expect(journal.after(6, 100).map((batch) => batch.seq)).toEqual([7, 8, 9, 10, 11, 12]);
    expect(readdirSync(join(dir, 'segments')).length).toBeLessThan(before);
    journal.close();
  });

  it('writes batches handed in together off the event loop, in the order of the calls, and settles them in that order', async () => {
    const path = join(dir, 'in-order');
    // Small segments: a few of the writes start a new file while others wait behind them.
    const journal = new SegmentJournal(path, 0, 64 * 1024);
    const body = (index: number): JournalContent => ({ body: { body: Buffer.from(`batch ${index} `.repeat(2000 + index)), contentType: 'text/plain', contentEncoding: undefined } });
    const settled: number[] = [];
    const writes = Array.from({ length: 40 }, (_, index) => journal.appendInOrder(1000 + index, body(index)).then((seq) => (settled.push(seq), seq)));
    // Nothing is written yet: the calls only took their places.
    expect(journal.after(0, 100)).toEqual([]);
    // A prune meanwhile keeps the segment the writes in flight go to.
    journal.prune(Number.MAX_SAFE_INTEGER);
    const seqs = await Promise.all(writes);
    expect(seqs).toEqual(Array.from({ length: 40 }, (_, index) => index + 1));
    expect(settled).toEqual(seqs);
    expect(readdirSync(path).length).toBeGreaterThan(5);
    const read = journal.after(0, 100);
    expect(read.map((batch) => [batch.seq, batch.receivedAt])).toEqual(seqs.map((seq) => [seq, 999 + seq]));
    expect(read.every((batch, index) => 'body' in batch.content && Buffer.from(batch.content.body.body).toString().startsWith(`batch ${index} `))).toBe(true);
    journal.close();
  });

  it('close() with writes in flight lets them finish before the file is closed, and refuses new ones', async () => {
    const path = join(dir, 'closing');
    const journal = new SegmentJournal(path);
    const content: JournalContent = { body: { body: Buffer.alloc(4 * 1024 * 1024, 'x'), contentType: 'text/plain', contentEncoding: undefined } };
    const writes = [journal.appendInOrder(1, content), journal.appendInOrder(2, content)];
    journal.close();
    await expect(journal.appendInOrder(3, content)).rejects.toThrow(/closed/);
    expect(await Promise.all(writes)).toEqual([1, 2]);
    expect(new SegmentJournal(path).after(0, 10).map((batch) => batch.seq)).toEqual([1, 2]);
  });

  it('cuts off an entry a crash left half-written, and numbers on from the last whole one', () => {
    const path = join(dir, 'torn');
    const journal = new SegmentJournal(path);
    const content: JournalContent = { body: { body: Buffer.from('{"message":"whole"}'), contentType: 'application/json', contentEncoding: undefined } };
    journal.append(1000, content);
    journal.append(2000, content);
    journal.close();
    const [segment] = readdirSync(path);
    const file = join(path, segment!);
    const whole = statSync(file).size;
    // The third entry's first bytes, as a kill -9 during its write leaves them.
    appendFileSync(file, Buffer.from('LWJ1\u0000\u0000\u0000'));
    const reopened = new SegmentJournal(path);
    expect(statSync(file).size).toBe(whole);
    expect(reopened.after(0, 10).map((batch) => [batch.seq, batch.receivedAt])).toEqual([[1, 1000], [2, 2000]]);
    expect(reopened.append(3000, content)).toBe(3);
    reopened.close();
    // The reopened journal wrote batch 3 to a segment of its own. A flipped bit in batch 2 fails
    // its CRC: it is not taken for a batch (nor is anything after it in its file); batch 3 is.
    expect(readdirSync(path)).toHaveLength(2);
    const data = readFileSync(file);
    data[data.length - 6] = (data[data.length - 6] ?? 0) ^ 1;
    writeFileSync(file, data);
    expect(new SegmentJournal(path).after(0, 10).map((batch) => batch.seq)).toEqual([1, 3]);
  });
});

describe('the database file gives space back', () => {
  it('after many rows are deleted, reclaimSpace shrinks the file to a fraction of its peak', () => {
    const store = new SqliteStore(dir);
    const process = { host: 'web-1', service: 'linkerd', pid: '5699' };
    for (let chunk = 0; chunk < 20; chunk++) {
      store.insertSamples(Array.from({ length: 10_000 }, (_, index) => ({ ...process, t: chunk * 10_000 + index, used_bytes: index, max_bytes: null, source: 'jvm-buffer-pool' })));
    }
    store.close();
    const peak = statSync(join(dir, DB_FILE_NAME)).size;
    expect(peak).toBeGreaterThan(4 * 1024 * 1024);
    const reopened = new SqliteStore(dir);
    reopened.pruneSilentProcesses(Number.MAX_SAFE_INTEGER);
    expect(reopened.fileUsage().freeBytes).toBeGreaterThan(peak / 2);
    while (reopened.reclaimSpace() > 0);
    expect(reopened.fileUsage().freeBytes).toBeLessThan(peak / 10);
    reopened.close();
    expect(statSync(join(dir, DB_FILE_NAME)).size).toBeLessThan(peak / 4);
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
