/**
 * Decoding on worker threads gives what decoding on the main thread gives: the same records, in
 * the same order, and the same answers (status, code, where) for bodies it refuses. The compiled
 * worker (dist/, built before the tests) is the one `leakwatch serve` runs.
 */
import { deflateRawSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { LeakwatchError } from '../../src/errors.js';
import { decodeReceivedBody, type ReceivedBody } from '../../src/ingest/decode-body.js';
import { DecodePool, type DecodeSettings } from '../../src/ingest/decode-pool.js';
import { InflightBytes } from '../../src/ingest/inflight.js';
import { freeNow } from '../../src/ingest/free-now.js';
import { PackedBatch, RecordPacker, takeAllSpareScratch, takeBackScratch } from '../../src/ingest/packed-records.js';
import { BoundedRecordQueue } from '../../src/ingest/queue.js';
import { journalPosition, type LogRecord } from '../../src/ingest/record.js';
import { FLUENT_BIT_BODIES, FLUENTD_BODIES, VECTOR_BODIES } from '../fixtures/shippers/bodies.js';

const WORKER_FILE = new URL('../../dist/ingest/decode-worker.js', import.meta.url);
const SETTINGS: DecodeSettings = { maxBytes: 32 * 1024 * 1024, limits: { maxRecords: 1000 } };
const RECEIVED_AT = Date.UTC(2026, 0, 1);
const pools: DecodePool[] = [];

function pool(settings = SETTINGS, inflight?: InflightBytes): DecodePool {
  const made = new DecodePool(settings, { threads: 1, workerFile: WORKER_FILE, ...(inflight ? { inflight } : {}) });
  pools.push(made);
  return made;
}

afterAll(async () => {
  await Promise.all(pools.map((made) => made.close()));
});

async function refusal(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error instanceof LeakwatchError ? { ...error.toJSON(), class: 'LeakwatchError' } : { message: (error as Error).message };
  }
  throw new Error('expected a refusal');
}

describe('the decoding threads', () => {
  const threads = pool();

  it('run in a worker when the compiled worker exists', () => {
    expect(threads.size).toBe(1);
  });

  it.each([...VECTOR_BODIES, ...FLUENT_BIT_BODIES, ...FLUENTD_BODIES].map((body) => [body.name, body] as const))(
    'give the main thread\'s records for %s, plain and gzip',
    async (_name, fixture) => {
      for (const [body, contentEncoding] of [[fixture.body, undefined], [gzipSync(fixture.body), 'gzip']] as const) {
        const received: ReceivedBody = { body, contentType: fixture.contentType, contentEncoding };
        const here = await decodeReceivedBody(received, RECEIVED_AT, SETTINGS);
        const there = await threads.decode(received, RECEIVED_AT);
        expect(there).toEqual(here);
        expect(there.records).toHaveLength(fixture.records);
      }
    },
  );

  it('give the main thread\'s messages whatever their characters, across the growth of its buffers', async () => {
    // Lone surrogates come from JSON escapes; 3,000 records of up to 400 characters outgrow the first columns and message bytes.
    const messages = ['plain ASCII', 'caf\u00e9 \u2014 \u{1f680}', 'lone \\ud800 high', 'lone \\udc00 low', 'pair \\ud83d\\ude80', ''];
    const lines = Array.from({ length: 3000 }, (_, index) => `{"host":"web-${index % 3}","SYSLOG_IDENTIFIER":"linkerd","_PID":"${5699 + (index % 5)}","message":"${messages[index % messages.length]} ${'x'.repeat(index % 400)}"}`);
    const received: ReceivedBody = { body: Buffer.from(`[${lines.join(',')}]`), contentType: 'application/json', contentEncoding: undefined };
    const here = await decodeReceivedBody(received, RECEIVED_AT, { ...SETTINGS, limits: { maxRecords: 5000 } });
    const there = await pool({ ...SETTINGS, limits: { maxRecords: 5000 } }).decode(received, RECEIVED_AT);
    expect(here.records).toHaveLength(3000);
    expect(here.records.some((record) => !record.message.isWellFormed())).toBe(true);
    expect(there).toEqual(here);
  });

  it('lend their scratch set with a batch and reuse it once released: each body gets its own records, nothing of the one before', async () => {
    const threads = pool({ ...SETTINGS, limits: { maxRecords: 50_000 } });
    const bodyOf = (count: number, text: string): ReceivedBody => {
      const lines = Array.from({ length: count }, (_, index) => `{"host":"web-${index % 4}","SYSLOG_IDENTIFIER":"linkerd","_PID":"5699","message":"${text} ${index} ${'y'.repeat(index % 90)}"}`);
      return { body: Buffer.from(`[${lines.join(',')}]`), contentType: 'application/json', contentEncoding: undefined };
    };
    // Larger, then smaller ones (a reused set longer than the body), then one with other characters.
    const bodies = [bodyOf(20_000, 'first'), bodyOf(20_000, 'second'), bodyOf(12_000, 'third'), bodyOf(19_000, 'caf\u00e9 \u2014'), bodyOf(20_000, 'fifth')];
    for (const received of bodies) {
      const here = await decodeReceivedBody(received, RECEIVED_AT, { ...SETTINGS, limits: { maxRecords: 50_000 } });
      const there = await threads.decodeToBatch(received, RECEIVED_AT);
      const batch = there.records;
      if (!(batch instanceof PackedBatch)) throw new Error('a thread answers with a packed batch');
      expect(batch.lent).toBe(true);
      expect(batch.slice()).toEqual(here.records);
      batch.release();
      // Its columns are the thread's again.
      expect(() => batch.slice(0, 1)).toThrow(/after release/);
    }
  });

  it('refuse a body with the same answer as the main thread (code, limit, where)', async () => {
    const cases: ReceivedBody[] = [
      { body: Buffer.from(JSON.stringify(Array.from({ length: 1001 }, (_, index) => ({ message: `line ${index}` })))), contentType: 'application/json', contentEncoding: undefined },
      { body: Buffer.from('[{"message":"never closed"'), contentType: 'application/json', contentEncoding: undefined },
      { body: Buffer.from('not gzip at all'), contentType: 'application/json', contentEncoding: 'gzip' },
      // The threads inflate in place (zlib stops at the cap), the main thread in thread-pool chunks: same answers.
      { body: gzipSync(Buffer.alloc(33 * 1024 * 1024, ' ')), contentType: 'application/json', contentEncoding: 'gzip' },
      { body: gzipSync(Buffer.from(JSON.stringify([{ message: 'cut short' }]))).subarray(0, 20), contentType: 'application/json', contentEncoding: 'gzip' },
      { body: deflateRawSync(Buffer.alloc(33 * 1024 * 1024, ' ')), contentType: 'application/json', contentEncoding: 'deflate' },
      { body: Buffer.from([0x78, 0x9c, 0xff, 0xff, 0xff]), contentType: 'application/json', contentEncoding: 'deflate' },
    ];
    for (const received of cases) {
      const here = await refusal(decodeReceivedBody(received, RECEIVED_AT, SETTINGS));
      expect(await refusal(threads.decode(received, RECEIVED_AT))).toEqual(here);
      expect(here).toMatchObject({ class: 'LeakwatchError' });
    }
  });

  it('count what they decompress against the bytes in flight of every request', async () => {
    const inflight = new InflightBytes(64 * 1024);
    const capped = pool(SETTINGS, inflight);
    const other = inflight.claim();
    other.add(1024);
    // 200 KB once inflated, while another request holds bytes: refused for now (503), not decoded.
    const body = gzipSync(JSON.stringify(Array.from({ length: 900 }, () => ({ message: 'x'.repeat(200) }))));
    const mine = inflight.claim();
    mine.add(body.length);
    expect(await refusal(capped.decode({ body, contentType: 'application/json', contentEncoding: 'gzip' }, RECEIVED_AT, mine))).toMatchObject({
      statusCode: 503,
      code: 'LW_ERR_OVERLOADED',
    });
    // What the thread claimed is given back; alone, the same request goes through.
    expect(inflight.bytes).toBe(1024 + body.length);
    other.release();
    expect((await capped.decode({ body, contentType: 'application/json', contentEncoding: 'gzip' }, RECEIVED_AT, mine)).records).toHaveLength(900);
    mine.release();
    expect(inflight.bytes).toBe(0);
  });

  it('decode the bodies of a thread that died on the main thread, and the next ones on a fresh thread', async () => {
    const fragile = pool();
    const lines = Array.from({ length: 900 }, (_, index) => ({ message: `line ${index}` }));
    const body: ReceivedBody = { body: Buffer.from(JSON.stringify(lines)), contentType: 'application/json', contentEncoding: undefined };
    const expected = await decodeReceivedBody(body, RECEIVED_AT, SETTINGS);
    const inFlight = fragile.decode(body, RECEIVED_AT);
    // The thread as the pool holds it, ended from outside as running out of heap would end it.
    await (fragile as unknown as { threads: Array<{ worker: { terminate(): Promise<number> } }> }).threads[0]!.worker.terminate();
    expect(await inFlight).toEqual(expected);
    expect(fragile.threadFailures).toBe(1);
    expect(fragile.size).toBe(1);
    expect(await fragile.decode(body, RECEIVED_AT)).toEqual(expected);
  });
});

describe('bytes in flight shared between threads', () => {
  it('give back what a dead thread\'s claims still held', () => {
    const inflight = new InflightBytes(1 << 20);
    const share = new BigInt64Array(new SharedArrayBuffer(8));
    const request = inflight.claim();
    request.add(100);
    const threads = inflight.claim(request.bytes, share);
    threads.add(5000);
    expect(inflight.bytes).toBe(5100);
    // The thread dies before it releases its claim.
    inflight.giveBackShare(share);
    expect(inflight.bytes).toBe(100);
    expect(share[0]).toBe(0n);
  });
});

describe('packed records', () => {
  it('unpack to records equal to the ones packed, absent properties left out', () => {
    const optional = <T>(arbitrary: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arbitrary, { nil: undefined });
    const record = fc
      .record({
        time: fc.integer({ min: 0, max: 2 ** 45 }),
        sourceUs: optional(fc.integer({ min: 0, max: 2 ** 52 })),
        position: optional(fc.nat()),
        host: fc.constantFrom('', 'web-1', 'web-2'),
        service: fc.constantFrom('', 'linkerd'),
        pid: fc.constantFrom('', '5699', '5700'),
        // ASCII, any Unicode, and any UTF-16 code units (lone surrogates, which UTF-8 cannot carry).
        message: fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: fc.nat({ max: 0xffff }).map((code) => String.fromCharCode(code)) })),
        malformed: optional(fc.constant(true as const)),
        withoutText: optional(fc.constant(true as const)),
        fields: optional(fc.dictionary(fc.string(), fc.jsonValue(), { noNullPrototype: true })),
      })
      .map((drawn): LogRecord => {
        const built: LogRecord = { time: drawn.time, host: drawn.host, service: drawn.service, pid: drawn.pid, stream: `${drawn.host}\u001f${drawn.service}\u001f${drawn.pid}`, message: drawn.message };
        for (const key of ['sourceUs', 'position', 'malformed', 'withoutText', 'fields'] as const) if (drawn[key] !== undefined) Object.assign(built, { [key]: drawn[key] });
        return built;
      });
    fc.assert(
      fc.property(fc.array(record, { maxLength: 50 }), (records) => {
        // As a decoding thread packs a body: each record as it is made, then finish().
        const packer = new RecordPacker();
        for (const record of records) packer.add(record);
        const { packed } = packer.finish();
        expect(new PackedBatch(structuredClone(packed)).slice()).toStrictEqual(records);
        // Journaled: each record gets its batch and place too, whichever optional properties it has.
        const journaled = new PackedBatch(structuredClone(packed));
        journaled.seq = 3;
        expect(journaled.slice()).toStrictEqual(records.map((record, index) => ({ ...record, seq: 3, journalPos: journalPosition(3, index) })));
      }),
      { numRuns: 300 },
    );
  });

  it('lend the scratch set when a body uses at least a third of it, and copy the columns out of it otherwise', () => {
    const records = (count: number): LogRecord[] => Array.from({ length: count }, (_, index) => ({ time: index, host: 'h', service: 'linkerd', pid: '1', stream: 'h\u001flinkerd\u001f1', message: `line ${index} ${'z'.repeat(50)}` }));
    // Sized for ~1 MB of body: 1,024 records of ~60 bytes use the columns but not a third of the message bytes.
    const sparse = new RecordPacker(1_000_000);
    for (const record of records(1024)) sparse.add(record);
    const copied = sparse.finish();
    expect(copied.lent).toBe(false);
    // Exact sizes, in buffers of their own.
    expect(copied.transfer.map((buffer) => buffer.byteLength)).toEqual([8, 8, 8, 1, 4, 4, 0].map((bytes) => bytes * 1024).with(6, copied.packed.messageBytes.byteLength));
    const full = new RecordPacker(1_000_000);
    for (const record of records(6000)) full.add(record);
    const lent = full.finish();
    expect(lent.lent).toBe(true);
    expect(lent.transfer).toHaveLength(7);
    expect(lent.packed.time.buffer).toBe(lent.transfer[0]);
    expect(new PackedBatch(structuredClone(lent.packed, { transfer: lent.transfer })).slice()).toStrictEqual(records(6000));
    // What is not a scratch set is let go, not kept.
    expect(() => takeBackScratch([new ArrayBuffer(8)])).not.toThrow();
  });

  it('free the spare sets when told to (as a decoding thread does after a second without a body): each of their buffers is given back now, detached', () => {
    takeAllSpareScratch();
    const packer = new RecordPacker(1_000_000);
    for (let index = 0; index < 6000; index++) packer.add({ time: index, host: 'h', service: 'linkerd', pid: '1', stream: 'h\u001flinkerd\u001f1', message: `line ${index} ${'z'.repeat(50)}` });
    const { transfer, lent } = packer.finish();
    expect(lent).toBe(true);
    takeBackScratch(transfer);
    const spare = takeAllSpareScratch();
    expect(spare).toHaveLength(7);
    expect(spare.every((buffer) => buffer.byteLength > 0)).toBe(true);
    freeNow(spare);
    expect(spare.map((buffer) => buffer.byteLength)).toEqual([0, 0, 0, 0, 0, 0, 0]);
    expect(takeAllSpareScratch()).toEqual([]);
    // A buffer of Node's pool cannot be transferred: it is left to the collector, without an error.
    const pooled = Buffer.from('pooled').buffer as ArrayBuffer;
    expect(() => freeNow([pooled])).not.toThrow();
    expect(pooled.byteLength).toBeGreaterThan(0);
  });

  it('unpack a slice at a time as the engine takes them: the same records, with their journal places once journaled', () => {
    const line = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.constant('\ud800'));
    fc.assert(
      fc.property(fc.array(line, { minLength: 1, maxLength: 60 }), fc.array(fc.nat(), { maxLength: 6 }), fc.option(fc.integer({ min: 1, max: 2 ** 20 }), { nil: undefined }), (messages, cuts, seq) => {
        const records: LogRecord[] = messages.map((message, index) => ({ time: index, host: `h${index % 3}`, service: 'linkerd', pid: '1', stream: `h${index % 3}\u001flinkerd\u001f1`, message }));
        const packer = new RecordPacker();
        for (const record of records) packer.add(record);
        const batch = new PackedBatch(structuredClone(packer.finish().packed));
        if (seq !== undefined) batch.seq = seq;
        const bounds = [...new Set([0, ...cuts.map((cut) => cut % (records.length + 1)), records.length])].sort((a, b) => a - b);
        const sliced: LogRecord[] = [];
        for (let at = 1; at < bounds.length; at++) sliced.push(...batch.slice(bounds[at - 1], bounds[at]));
        const expected = records.map((record, index) => (seq === undefined ? record : { ...record, seq, journalPos: journalPosition(seq, index) }));
        expect(sliced).toStrictEqual(expected);
        // The queue counts it as it counts the records themselves, where the messages are ASCII.
        if (messages.every((message) => /^[\x00-\x7f]*$/.test(message))) {
          const packedQueue = new BoundedRecordQueue(1_000_000);
          const arrayQueue = new BoundedRecordQueue(1_000_000);
          packedQueue.offer(batch);
          arrayQueue.offer(records);
          expect(packedQueue.bytes).toBe(arrayQueue.bytes);
        }
      }),
      { numRuns: 300 },
    );
  });
});
