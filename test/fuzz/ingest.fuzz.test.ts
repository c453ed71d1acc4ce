import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { encode } from '@msgpack/msgpack';
import fc from 'fast-check';
import * as snappyjs from 'snappyjs';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Compressor } from 'zstd-napi';
import { maskedCrc32c } from '../../src/ingest/snappy.js';
import { startServe, type ServeProcess } from '../helpers/serve-process.js';

/**
 * Issue 8: the fuzz run. Every body shape × content encoding × cap, sent to two real `leakwatch
 * serve` processes (one with tight caps, one with the defaults; SQLite journal, engine, shipped
 * rules), one to four requests at a time. Only 200, a 4xx or 503 with Retry-After may come back,
 * each within 1 s, and the servers' peak RSS (VmHWM) stays bounded. The seed is fixed and the run
 * stops after FUZZ_SECONDS; it prints the largest RSS and the longest event-loop stall of the
 * servers (their /metrics), measured apart from this process, which builds the bodies, and the
 * slowest answer with what it answered. FUZZ_TRACE=1 prints every answer slower than 250 ms.
 */
const SEED = 20_240_508;
const FUZZ_SECONDS = Number(process.env.LEAKWATCH_FUZZ_SECONDS ?? 40);
const ANSWER_BOUND_MS = 1000;
const RSS_BOUND = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;

const LINE = 'Nov 01 11:59:32 web-1 linkerd[5699]: io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 1048576 byte(s) of direct memory (used: 1037041958, max: 1037959168)';

type Shape =
  | 'json-array'
  | 'ndjson'
  | 'text'
  | 'json-stream'
  | 'msgpack-v1'
  | 'msgpack-v2'
  | 'random'
  | 'deep'
  | 'long-line'
  | 'tiny-records'
  | 'proto-key'
  | 'fc-json';

const SHAPES: Shape[] = ['json-array', 'ndjson', 'text', 'json-stream', 'msgpack-v1', 'msgpack-v2', 'random', 'deep', 'long-line', 'tiny-records', 'proto-key', 'fc-json'];
const ENCODINGS = ['identity', 'gzip', 'deflate', 'deflate-raw', 'zstd', 'zstd-checksum', 'snappy', 'snappy-framed', 'mislabelled', 'truncated', 'bit-flip'] as const;
type Encoding = (typeof ENCODINGS)[number];
const CONTENT_TYPES = [undefined, 'application/json', 'application/x-ndjson', 'application/msgpack', 'text/plain', 'application/octet-stream'];

function record(i: number, size: number): Record<string, unknown> {
  return { message: `${LINE} #${i} ${'x'.repeat(size)}`, host: `web-${i % 4}`, SYSLOG_IDENTIFIER: 'linkerd', _PID: String(5000 + (i % 8)) };
}

function makeBody(shape: Shape, count: number, size: number, depth: number, seedBytes: Uint8Array, fcJson: string): Buffer {
  switch (shape) {
    case 'json-array':
      return Buffer.from(JSON.stringify(Array.from({ length: count }, (_, i) => record(i, size))));
    case 'ndjson':
      return Buffer.from(Array.from({ length: count }, (_, i) => JSON.stringify(record(i, size))).join('\n'));
    case 'text':
      return Buffer.from(Array.from({ length: count }, (_, i) => `${LINE} #${i} ${'y'.repeat(size)}`).join('\n'));
    case 'json-stream':
      return Buffer.from(Array.from({ length: count }, (_, i) => JSON.stringify(record(i, size))).join(''));
    case 'msgpack-v1':
      return Buffer.concat(Array.from({ length: count }, (_, i) => Buffer.from(encode([1_509_537_572 + i, record(i, size)]))));
    case 'msgpack-v2':
      return Buffer.concat(Array.from({ length: count }, (_, i) => Buffer.from(encode([[1_509_537_572 + i, {}], record(i, size)]))));
    case 'random':
      return Buffer.from(seedBytes);
    case 'deep':
      return Buffer.from(`${JSON.stringify(record(0, size))}\n${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}\n${'['.repeat(depth)}${']'.repeat(depth)}`);
    case 'long-line':
      return Buffer.from(`${LINE}\n${'z'.repeat(count * 1024 + size)}\n${LINE}`);
    case 'tiny-records':
      return Buffer.alloc(count * 100, 0x80);
    case 'proto-key':
      return Buffer.concat([Buffer.from(encode(JSON.parse('{"message":"m","__proto__":{"x":1}}'))), Buffer.from(encode(record(1, size)))]);
    case 'fc-json':
      return Buffer.from(fcJson);
  }
}

function snappyFramed(data: Buffer): Buffer {
  const parts: Buffer[] = [Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59])];
  for (let offset = 0; offset < data.length; offset += 65536) {
    const chunk = data.subarray(offset, offset + 65536);
    const payload = Buffer.from(snappyjs.compress(chunk));
    const header = Buffer.alloc(8);
    header.writeUIntLE(payload.length + 4, 1, 3);
    header.writeUInt32LE(maskedCrc32c(chunk), 4);
    parts.push(header, payload);
  }
  return Buffer.concat(parts);
}

function zstd(data: Buffer, checksum: boolean): Buffer {
  const compressor = new Compressor();
  compressor.setParameters({ compressionLevel: 1, checksumFlag: checksum });
  return compressor.compress(data);
}

/** The body as sent, and the Content-Encoding it is labelled with. */
function encodeBody(raw: Buffer, encoding: Encoding, cut: number, flip: number): { body: Buffer; label: string | undefined } {
  switch (encoding) {
    case 'identity':
      return { body: raw, label: undefined };
    case 'gzip':
      return { body: gzipSync(raw, { level: 1 }), label: 'gzip' };
    case 'deflate':
      return { body: deflateSync(raw, { level: 1 }), label: 'deflate' };
    case 'deflate-raw':
      return { body: deflateRawSync(raw, { level: 1 }), label: 'deflate' };
    case 'zstd':
      return { body: zstd(raw, false), label: 'zstd' };
    case 'zstd-checksum':
      return { body: zstd(raw, true), label: 'zstd' };
    case 'snappy':
      return { body: Buffer.from(snappyjs.compress(raw)), label: 'snappy' };
    case 'snappy-framed':
      return { body: snappyFramed(raw), label: 'snappy' };
    case 'mislabelled':
      return { body: raw, label: (['gzip', 'zstd', 'snappy', 'deflate'] as const)[cut % 4] };
    case 'truncated': {
      const compressed = [gzipSync(raw), zstd(raw, true), Buffer.from(snappyjs.compress(raw))][cut % 3]!;
      return { body: compressed.subarray(0, Math.max(1, compressed.length - 1 - (flip % compressed.length))), label: ['gzip', 'zstd', 'snappy'][cut % 3] };
    }
    case 'bit-flip': {
      const compressed = Buffer.from([gzipSync(raw), zstd(raw, true), snappyFramed(raw)][cut % 3]!);
      const bit = flip % (compressed.length * 8);
      compressed[bit >> 3] = (compressed[bit >> 3] as number) ^ (1 << (bit & 7));
      return { body: compressed, label: ['gzip', 'zstd', 'snappy'][cut % 3] };
    }
  }
}

/** Bombs, made once: a few KB to a few MB that inflate far past every cap. */
function bombs(): Array<{ name: string; body: Buffer; label: string; contentType: string }> {
  const zeros = Buffer.alloc(64 * MiB);
  return [
    { name: 'gzip 64 MiB zeros', body: gzipSync(zeros, { level: 9 }), label: 'gzip', contentType: 'text/plain' },
    { name: 'zstd 64 MiB zeros', body: zstd(zeros, true), label: 'zstd', contentType: 'text/plain' },
    { name: 'gzip 32 MiB of empty msgpack maps', body: gzipSync(Buffer.alloc(32 * MiB, 0x80), { level: 9 }), label: 'gzip', contentType: 'application/msgpack' },
    { name: 'gzip 32 MiB of {}', body: gzipSync(Buffer.from('{}'.repeat(16 * MiB)), { level: 9 }), label: 'gzip', contentType: 'application/json' },
    { name: 'zstd window claim 2 GiB', body: Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0, 0, 0, 0]), label: 'zstd', contentType: 'text/plain' },
    { name: 'snappy 6 bytes declaring 32 MiB', body: Buffer.from([0x80, 0x80, 0x80, 0x10, 0x00, 0x41]), label: 'snappy', contentType: 'text/plain' },
  ];
}

const ALLOWED = new Set([200, 400, 408, 413, 415, 422, 503]);

/** Peak resident memory of a process (Linux), in bytes. */
function peakRss(pid: number): number {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : 0;
}

async function loopStallSeconds(base: string): Promise<number> {
  const text = await (await request(`${base}/metrics`)).body.text();
  return Number(/^leakwatch_event_loop_delay_max_seconds (\S+)$/m.exec(text)?.[1] ?? Number.NaN);
}

const TIGHT = ['--max-body-bytes', '256KiB', '--max-records', '500', '--max-line-bytes', '2KiB', '--max-message-bytes', '1KiB', '--max-depth', '8', '--max-zstd-window', '64KiB', '--max-inflight-bytes', '1MiB', '--queue-records', '2000', '--queue-bytes', '2MiB'];

describe('fuzz: every body shape × encoding × cap', () => {
  let tight: ServeProcess;
  let roomy: ServeProcess;
  const dirs: string[] = [];
  beforeAll(async () => {
    const [tightData, roomyData] = ['tight', 'roomy'].map((name) => mkdtempSync(join(tmpdir(), `leakwatch-fuzz-${name}-`))) as [string, string];
    dirs.push(tightData, roomyData);
    tight = await startServe(['--data-dir', tightData, '--rules', 'rules', ...TIGHT]);
    roomy = await startServe(['--data-dir', roomyData, '--rules', 'rules']);
  }, 120_000);
  afterAll(async () => {
    await tight?.stop();
    await roomy?.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('answers only 200, 4xx or 503 + Retry-After, each within 1 s, with bounded RSS', async () => {
    const statuses = new Map<number, number>();
    let requests = 0;
    let slowest = 0;
    let slowestWhat = '';
    const heavy = bombs();

    const send = async (base: string, body: Buffer, headers: Record<string, string>, what: string): Promise<void> => {
      const started = performance.now();
      const response = await request(`${base}/ingest`, { method: 'POST', body, headers, headersTimeout: 30_000, bodyTimeout: 30_000 });
      const text = await response.body.text();
      const took = performance.now() - started;
      if (took > slowest) [slowest, slowestWhat] = [took, what];
      if (process.env.FUZZ_TRACE && took > 250) console.log(`SLOW ${Math.round(took)} ms ${what} status ${response.statusCode}`);
      requests++;
      statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
      expect(ALLOWED.has(response.statusCode), `${what}: ${response.statusCode} ${text.slice(0, 300)}`).toBe(true);
      if (response.statusCode === 503) expect(response.headers['retry-after'], what).toBe('1');
      if (response.statusCode !== 200) expect(JSON.parse(text), what).toMatchObject({ statusCode: response.statusCode, code: expect.stringMatching(/^LW_ERR_/) });
      expect(took, `${what} answered in ${Math.round(took)} ms`).toBeLessThan(ANSWER_BOUND_MS);
    };

    const oneRequest = fc.record({
      shape: fc.constantFrom(...SHAPES),
      encoding: fc.constantFrom(...ENCODINGS),
      contentType: fc.constantFrom(...CONTENT_TYPES),
      target: fc.constantFrom('tight', 'roomy'),
      count: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 50 }) }, { weight: 1, arbitrary: fc.integer({ min: 50, max: 1000 }) }),
      size: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 64 }) }, { weight: 1, arbitrary: fc.integer({ min: 64, max: 4000 }) }),
      depth: fc.oneof(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 12, max: 6000 })),
      seedBytes: fc.uint8Array({ maxLength: 4096 }),
      fcJson: fc.json({ depthSize: 'medium' }),
      cut: fc.nat(),
      flip: fc.nat(),
      bomb: fc.oneof({ weight: 1, arbitrary: fc.nat({ max: heavy.length - 1 }) }, { weight: 15, arbitrary: fc.constant(null) }),
    });

    await fc.assert(
      fc.asyncProperty(fc.array(oneRequest, { minLength: 1, maxLength: 4 }), async (batch) => {
        await Promise.all(
          batch.map(async (one) => {
            const base = one.target === 'tight' ? tight.url : roomy.url;
            if (one.bomb !== null) {
              const bomb = heavy[one.bomb]!;
              return send(base, bomb.body, { 'content-type': bomb.contentType, 'content-encoding': bomb.label }, `${one.target} ${bomb.name}`);
            }
            const raw = makeBody(one.shape, one.count, one.size, one.depth, one.seedBytes, one.fcJson);
            const { body, label } = encodeBody(raw, one.encoding, one.cut, one.flip);
            const headers: Record<string, string> = {};
            if (one.contentType !== undefined) headers['content-type'] = one.contentType;
            if (label !== undefined) headers['content-encoding'] = label;
            return send(base, body, headers, `${one.target} ${one.shape}×${one.encoding} (${raw.length} bytes, ${one.contentType ?? 'no type'})`);
          }),
        );
      }),
      { seed: SEED, numRuns: 100_000, interruptAfterTimeLimit: FUZZ_SECONDS * 1000, markInterruptAsFailure: false, endOnFailure: true },
    );

    const maxRss = Math.max(peakRss(tight.child.pid!), peakRss(roomy.child.pid!));
    const stallMs = Math.max(await loopStallSeconds(tight.url), await loopStallSeconds(roomy.url)) * 1000;
    console.log(
      `fuzz: ${requests} requests (seed ${SEED}, ${FUZZ_SECONDS} s), statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}; ` +
        `largest RSS ${(maxRss / MiB).toFixed(0)} MiB, longest event-loop stall ${stallMs.toFixed(0)} ms, slowest answer ${slowest.toFixed(0)} ms (${slowestWhat})`,
    );
    expect(requests).toBeGreaterThan(100);
    expect(maxRss).toBeLessThan(RSS_BOUND);
    expect(stallMs).toBeLessThan(ANSWER_BOUND_MS);
  }, (FUZZ_SECONDS + 60) * 1000);
});
