import { deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import * as snappy from 'snappyjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeContentEncoding } from '../../src/ingest/content-encoding.js';
import { decodeBody } from '../../src/ingest/decode-body.js';
import { recordFromObject } from '../../src/ingest/normalize.js';
import { isLeakwatchError } from '../../src/errors.js';
import { FLUENT_BIT_BODIES, FLUENTD_BODIES, VECTOR_BODIES } from '../fixtures/shippers/bodies.js';
import { post, startIngestServer, type TestServer } from './server-harness.js';

const CONTENT_TYPES = [
  undefined,
  'application/json',
  'application/x-ndjson',
  'application/msgpack',
  'application/x-msgpack',
  'text/plain; charset=utf-8',
  'application/octet-stream',
  '*/*',
  'application/weird',
];
const ENCODINGS = [undefined, 'identity', 'gzip', 'deflate', 'zstd', 'snappy', 'gzip, snappy', 'br', ''];
const REAL_BODIES = [...VECTOR_BODIES, ...FLUENT_BIT_BODIES, ...FLUENTD_BODIES].map((shape) => shape.body);

/** Bodies worth throwing at a decoder: random bytes, JSON-ish text, and real bodies cut or bit-flipped. */
const body = fc.oneof(
  fc.uint8Array({ maxLength: 512 }).map((bytes) => Buffer.from(bytes)),
  fc.json().map((text) => Buffer.from(text)),
  fc.tuple(fc.array(fc.json(), { maxLength: 8 }), fc.constantFrom('', '\n', ',', '\0')).map(([values, separator]) => Buffer.from(values.join(separator))),
  fc.string({ unit: fc.constantFrom('{', '}', '[', ']', '"', '\\', ',', ':', 'a', '1', '\n', ' ') , maxLength: 200 }).map((text) => Buffer.from(text)),
  fc
    .tuple(fc.constantFrom(...REAL_BODIES), fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 }))
    .map(([real, cut, flipAt, flip]) => {
      const copy = Buffer.from(real.subarray(0, cut % (real.length + 1)));
      if (copy.length > 0) copy[flipAt % copy.length] = flip;
      return copy;
    }),
);

/** Sometimes compress the body as the encoding says, sometimes send it raw under that label. */
function encodeAs(raw: Buffer, encoding: string | undefined, honest: boolean): Buffer {
  if (!honest) return raw;
  switch (encoding) {
    case 'gzip':
      return gzipSync(raw);
    case 'deflate':
      return deflateSync(raw);
    case 'snappy':
      return Buffer.from(snappy.compress(raw));
    case 'gzip, snappy':
      return Buffer.from(snappy.compress(gzipSync(raw)));
    default:
      return raw;
  }
}

describe('decoder: only typed 4xx errors, whatever comes in', () => {
  it('decodeContentEncoding + decodeBody', async () => {
    await fc.assert(
      fc.asyncProperty(body, fc.constantFrom(...CONTENT_TYPES), fc.constantFrom(...ENCODINGS), fc.boolean(), async (raw, contentType, encoding, honest) => {
        try {
          const decoded = await decodeContentEncoding(encodeAs(raw, encoding, honest), encoding, 64 * 1024);
          const batch = await decodeBody(decoded, contentType, 1_700_000_000_000);
          expect(batch.malformed).toBeLessThanOrEqual(batch.records.length);
          for (const record of batch.records) {
            expect(typeof record.message).toBe('string');
            expect(Number.isFinite(record.time)).toBe(true);
          }
        } catch (error) {
          if (!isLeakwatchError(error)) throw error;
          expect([400, 413, 415]).toContain(error.statusCode);
          expect(error.toJSON().code).toMatch(/^LW_ERR_/);
        }
      }),
      { numRuns: 1500 },
    );
  });

  it('a well-formed NDJSON batch with bad lines mixed in keeps every good record', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.record({ message: fc.string() }).map((record) => ({ good: true, line: JSON.stringify(record) })), fc.constantFrom('{"message":', 'nope', '{]').map((line) => ({ good: false, line }))), { minLength: 1, maxLength: 30 }),
        async (lines) => {
          const batch = await decodeBody(Buffer.from(lines.map((entry) => entry.line).join('\n')), 'application/x-ndjson', 1);
          expect(batch.records.length).toBe(lines.length);
          expect(batch.malformed).toBe(lines.filter((entry) => !entry.good).length);
        },
      ),
    );
  });
});

describe('server: never a 5xx for any body × content type × encoding', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startIngestServer({ maxBodyBytes: 64 * 1024 });
  });
  afterAll(async () => {
    await server.close();
  });

  it('answers 200/400/413/415 with a JSON body', async () => {
    await fc.assert(
      fc.asyncProperty(body, fc.constantFrom(...CONTENT_TYPES), fc.constantFrom(...ENCODINGS), fc.boolean(), async (raw, contentType, encoding, honest) => {
        const headers: Record<string, string> = {};
        if (contentType !== undefined) headers['content-type'] = contentType;
        if (encoding !== undefined) headers['content-encoding'] = encoding;
        const answer = await post(`${server.url}/ingest`, encodeAs(raw, encoding, honest), headers);
        expect([200, 400, 413, 415]).toContain(answer.status);
        if (answer.status === 200) expect(typeof answer.json['accepted']).toBe('number');
        else expect(String(answer.json['code'])).toMatch(/^LW_ERR_/);
      }),
      { numRuns: 300 },
    );
  });
});

describe('normaliser: an empty object', () => {
  it('makes the record the general path makes of an object with no field it reads', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 42 }), fc.option(fc.integer({ min: 0, max: 2 ** 52 }), { nil: undefined }), (receivedAt, transportUs) => {
        const empty = recordFromObject({}, receivedAt, transportUs);
        const general = recordFromObject({ unrelated: null }, receivedAt, transportUs);
        expect({ ...empty, fields: undefined }).toStrictEqual({ ...general, fields: undefined });
        expect(empty.withoutText).toBe(true);
        // Nothing in it for the log to show: 90,000 of them from a 90 KB body cost ~1 s to carry.
        expect(empty.fields).toBeUndefined();
      }),
      { numRuns: 200 },
    );
  });
});
