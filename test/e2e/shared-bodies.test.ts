import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SharedBodies } from '../../src/ingest/shared-bodies.js';
import { readJournalDir } from '../../src/store/segment-journal.js';
import { JOURNAL_DIR_NAME } from '../../src/store/sqlite-store.js';
import { shippedRulesWith } from '../helpers/rules-dir.js';
import { startServe, type ServeProcess } from '../helpers/serve-process.js';

// Large bodies are received into shared buffers that the next body reuses once a request is over.
// Each acknowledged body must be journaled and grouped exactly as sent, whatever came after it.

/** A Vector-like JSON array body of `lines` records, all its own: its host names the body. */
function body(index: number, lines: number): Buffer {
  const records = Array.from({ length: lines }, (_, line) => ({
    host: `body-${index}`,
    SYSLOG_IDENTIFIER: 'linkerd',
    _PID: '4242',
    message: `I 1201 10:00:${String(line % 60).padStart(2, '0')}.${String(line % 1000).padStart(3, '0')} UTC THREAD1: body ${index} line ${line}`,
    timestamp: new Date(Date.UTC(2026, 11, 1, 10, 0, 0) + line).toISOString(),
  }));
  return Buffer.from(JSON.stringify(records));
}

describe('large bodies in reused shared buffers, through the real server', () => {
  let dataDir: string;
  let rules: ReturnType<typeof shippedRulesWith>;
  let server: ServeProcess;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'leakwatch-shared-'));
    // Each body's last record stays open for the test's length, so its journal entry stays too.
    rules = shippedRulesWith({ expire_after: '10m' });
    server = await startServe(['--data-dir', dataDir, '--rules', rules.dir]);
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rules.remove();
  });

  it('decodes and journals every acknowledged body byte for byte, four at a time, plain and gzip', async () => {
    const sent = Array.from({ length: 12 }, (_, index) => body(index, 20_000 + index));
    expect(Math.min(...sent.map((one) => one.length))).toBeGreaterThan(256 * 1024);
    const post = async (index: number): Promise<void> => {
      const gzip = index % 2 === 1;
      const response = await request(`${server.url}/ingest`, {
        method: 'POST',
        body: gzip ? gzipSync(sent[index] as Buffer) : (sent[index] as Buffer),
        headers: { 'content-type': 'application/json', ...(gzip ? { 'content-encoding': 'gzip' } : {}) },
      });
      expect(await response.body.json()).toEqual({ accepted: 20_000 + index, malformed: 0, without_text: 0 });
    };
    for (let index = 0; index < sent.length; index += 4) await Promise.all([post(index), post(index + 1), post(index + 2), post(index + 3)]);
    expect(await server.stop('SIGKILL')).toBeNull();
    const journaled = readJournalDir(join(dataDir, JOURNAL_DIR_NAME)).map((batch) => {
      if (!('body' in batch.content)) throw new Error('a body is journaled as received');
      const { body: raw, contentEncoding } = batch.content.body;
      return contentEncoding === 'gzip' ? gunzipSync(raw) : Buffer.from(raw);
    });
    expect(journaled.map((one) => one.toString('utf8')).sort()).toEqual(sent.map((one) => one.toString('utf8')).sort());
  });

  it('reads a body with and without Content-Length alike, and one cut short of its length leaves the next ones whole', async () => {
    // A data folder of its own: the one above holds the first test's journal.
    const ownDir = mkdtempSync(join(tmpdir(), 'leakwatch-shared-'));
    server = await startServe(['--data-dir', ownDir, '--rules', rules.dir]);
    const post = async (sent: Buffer, chunked: boolean): Promise<unknown> => {
      // Without a length, undici sends a stream chunked.
      const response = await request(`${server.url}/ingest`, {
        method: 'POST',
        body: chunked ? Readable.from([sent.subarray(0, 100_000), sent.subarray(100_000, 300_000), sent.subarray(300_000)]) : sent,
        headers: { 'content-type': 'application/json' },
      });
      return response.body.json();
    };
    const cutShort = async (sent: Buffer): Promise<void> => {
      const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(`POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${sent.length}\r\n\r\n`);
      socket.write(sent.subarray(0, sent.length - 1000));
      await new Promise((resolve) => setTimeout(resolve, 100));
      socket.destroy();
    };
    for (let round = 0; round < 3; round++) {
      const lengthFirst = body(100 + round, 9_000 + round);
      await cutShort(body(200 + round, 12_000));
      expect(await post(lengthFirst, false)).toEqual({ accepted: 9_000 + round, malformed: 0, without_text: 0 });
      expect(await post(body(300 + round, 11_000 + round), true)).toEqual({ accepted: 11_000 + round, malformed: 0, without_text: 0 });
    }
    await server.stop();
    rmSync(ownDir, { recursive: true, force: true });
  });
});

describe('SharedBodies', () => {
  it('copies small bodies, lends large ones and reuses a buffer once it is given back', () => {
    const bodies = new SharedBodies();
    const small = bodies.join([Buffer.from('ab'), Buffer.from('c')], 3);
    expect(small.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    const first = bodies.join([Buffer.alloc(200_000, 1), Buffer.alloc(200_000, 2)], 400_000);
    expect(first.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect([first[0], first[399_999]]).toEqual([1, 2]);
    // Not given back yet: a second body gets a buffer of its own.
    const second = bodies.join([Buffer.alloc(300_000, 3)], 300_000);
    expect(second.buffer).not.toBe(first.buffer);
    bodies.release(first);
    bodies.release(first);
    bodies.release(small);
    expect(bodies.keptCount).toBe(1);
    const third = bodies.join([Buffer.alloc(350_000, 4)], 350_000);
    expect(third.buffer).toBe(first.buffer);
    expect(third.length).toBe(350_000);
    expect(third.every((byte) => byte === 4)).toBe(true);
  });

  it('puts a body that announced its length together as it comes, and takes its buffer back when the upload fails', () => {
    const bodies = new SharedBodies();
    expect(bodies.assemble(1000)).toBeUndefined();
    expect(bodies.assemble(Number.NaN)).toBeUndefined();
    const assembly = bodies.assemble(400_000);
    if (assembly === undefined) throw new Error('a 400 kB body is put together in shared memory');
    expect(assembly.add(Buffer.alloc(250_000, 1))).toBe(true);
    // More than announced is not written.
    expect(assembly.add(Buffer.alloc(150_001, 2))).toBe(false);
    expect(assembly.add(Buffer.alloc(150_000, 2))).toBe(true);
    const whole = assembly.body();
    expect(whole.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect([whole.length, whole[0], whole[249_999], whole[250_000], whole[399_999]]).toEqual([400_000, 1, 1, 2, 2]);
    bodies.release(whole);
    expect(bodies.keptCount).toBe(1);
    const failed = bodies.assemble(300_000);
    expect(bodies.keptCount).toBe(0);
    failed?.add(Buffer.alloc(1000, 3));
    expect(failed?.body().length).toBe(1000);
    failed?.discard();
    expect(bodies.keptCount).toBe(1);
  });

  it('keeps at most four, and drops them when none has been asked for in a few seconds', () => {
    vi.useFakeTimers();
    try {
      const bodies = new SharedBodies();
      const lent = Array.from({ length: 6 }, () => bodies.join([Buffer.alloc(300_000)], 300_000));
      for (const one of lent) bodies.release(one);
      expect(bodies.keptCount).toBe(4);
      vi.advanceTimersByTime(4000);
      bodies.release(bodies.join([Buffer.alloc(300_000)], 300_000));
      vi.advanceTimersByTime(4000);
      expect(bodies.keptCount).toBe(4);
      vi.advanceTimersByTime(2000);
      expect(bodies.keptCount).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
