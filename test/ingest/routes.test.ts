import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { decompress as zstdDecompress } from 'zstd-napi';
import * as snappy from 'snappyjs';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FLUENT_BIT_BODIES,
  FLUENT_BIT_V2_EXACT,
  FLUENTD_BODIES,
  VECTOR_BODIES,
  type ShipperBody,
} from '../fixtures/shippers/bodies.js';
import { post, startIngestServer, type TestServer } from './server-harness.js';

const FIXTURES = new URL('../fixtures/shippers/', import.meta.url);

function zstdFixture(name: string): Buffer {
  return readFileSync(new URL(`${name}.zst`, FIXTURES));
}

type Encoding = 'identity' | 'gzip' | 'deflate' | 'zstd' | 'snappy';

function encodeBody(shape: ShipperBody, encoding: Encoding): Buffer {
  switch (encoding) {
    case 'identity':
      return shape.body;
    case 'gzip':
      return gzipSync(shape.body);
    case 'deflate':
      return deflateSync(shape.body);
    case 'snappy':
      return Buffer.from(snappy.compress(shape.body));
    case 'zstd':
      return zstdFixture(shape.name);
  }
}

function headersFor(shape: ShipperBody, encoding: Encoding): Record<string, string> {
  const headers: Record<string, string> = {};
  if (shape.contentType !== undefined) headers['content-type'] = shape.contentType;
  if (encoding !== 'identity') headers['content-encoding'] = encoding;
  return headers;
}

let server: TestServer;
beforeAll(async () => {
  server = await startIngestServer();
});
afterAll(async () => {
  await server.close();
});

describe('zstd fixtures', () => {
  it.each([...VECTOR_BODIES, ...FLUENT_BIT_BODIES].map((shape) => [shape.name, shape] as const))(
    '%s.zst decompresses to the body bodies.ts builds',
    (_name, shape) => {
      expect(Buffer.from(zstdDecompress(zstdFixture(shape.name))).equals(shape.body)).toBe(true);
    },
  );
});

const cases: Array<[string, ShipperBody, Encoding]> = [];
for (const shape of VECTOR_BODIES) for (const encoding of ['identity', 'gzip', 'deflate', 'zstd', 'snappy'] as const) cases.push([`${shape.name} ${encoding}`, shape, encoding]);
for (const shape of FLUENT_BIT_BODIES) for (const encoding of ['identity', 'gzip', 'zstd', 'snappy'] as const) cases.push([`${shape.name} ${encoding}`, shape, encoding]);
for (const shape of FLUENTD_BODIES) for (const encoding of ['identity', 'gzip'] as const) cases.push([`${shape.name} ${encoding}`, shape, encoding]);

describe('every shipper shape is accepted with its exact record count', () => {
  it.each(cases)('%s', async (_name, shape, encoding) => {
    const before = server.batches.length;
    const answer = await post(`${server.url}/ingest`, encodeBody(shape, encoding), headersFor(shape, encoding));
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ accepted: shape.records, malformed: 0, without_text: 0 });
    expect(server.batches.length).toBe(before + 1);
    expect(server.batches.at(-1)?.length).toBe(shape.records);
  });
});

describe('records are normalised', () => {
  it('Vector journald JSON: host, service, pid, RFC 3339 time, message', async () => {
    const shape = VECTOR_BODIES[0] as ShipperBody;
    await post(`${server.url}/ingest`, shape.body, { 'content-type': 'application/json' });
    const [ntpd, linkerd] = server.batches.at(-1) ?? [];
    expect(ntpd).toMatchObject({ host: 'web-1', service: 'ntpd', pid: '2156', time: Date.parse('2019-07-26T20:30:27.000Z') });
    expect(ntpd?.message).toBe('reply from 192.168.1.2: offset -0.001791 delay 0.000176, next query 1500s');
    expect(linkerd).toMatchObject({ host: 'web-1', service: 'linkerd', pid: '5699', time: Date.parse('2017-11-01T16:59:32.962Z') });
  });

  it('Vector text lines: the journald prefix gives service and pid (host missing in the seed paste)', async () => {
    const shape = VECTOR_BODIES[2] as ShipperBody;
    await post(`${server.url}/`, shape.body, { 'content-type': 'text/plain' });
    const records = server.batches.at(-1) ?? [];
    expect(records.map((record) => [record.host, record.service, record.pid])).toEqual([
      ['', 'linkerd', '5699'],
      ['', 'linkerd', '5699'],
      ['', 'linkerd', '5699'],
    ]);
    expect(records[0]?.message.startsWith('WARN 1101 11:59:32.962 CDT')).toBe(true);
    // journalctl printed local (CDT) time without a zone; the log4j header says 11:59:32.962 CDT.
    expect(records[0]?.time).toBe(Date.UTC(2017, 10, 1, 16, 59, 32, 962));
  });

  it('Fluent Bit msgpack v2: EventTime ext 0 becomes the time, group markers are skipped', async () => {
    const shape = FLUENT_BIT_BODIES[4] as ShipperBody;
    await post(`${server.url}/`, shape.body, { 'content-type': 'application/msgpack' });
    const [systemd, docker] = server.batches.at(-1) ?? [];
    expect(systemd).toMatchObject({ host: 'web-1', service: 'sshd', pid: '812', message: 'Accepted publickey for root' });
    expect(systemd?.time).toBe(1714564800123);
    // Docker's `log` keeps its LF; the record does not.
    expect(docker?.message).toBe('GET / 200');
  });

  it('Fluent Bit v2 chunk byte for byte (flb_log_event.h event format)', async () => {
    const answer = await post(`${server.url}/`, FLUENT_BIT_V2_EXACT, { 'content-type': 'application/msgpack' });
    expect(answer.json).toEqual({ accepted: 1, malformed: 0, without_text: 0 });
    expect(server.batches.at(-1)?.[0]).toMatchObject({ message: 'hi', time: 1714564800500 });
  });

  it('Fluentd systemd NDJSON without a time: receive time', async () => {
    const shape = FLUENTD_BODIES[3] as ShipperBody;
    await post(`${server.url}/ingest`, shape.body, { 'content-type': 'application/x-ndjson' });
    expect(server.batches.at(-1)?.[0]).toMatchObject({
      host: 'web-1',
      service: 'ssh.service',
      pid: '812',
      message: 'Accepted publickey',
      time: Date.UTC(2017, 10, 5, 12, 0, 0),
    });
  });
});

describe('content types that must not get fastify’s own 415', () => {
  it.each([
    ['application/msgpack', FLUENT_BIT_BODIES[3] as ShipperBody],
    ['application/x-msgpack', FLUENTD_BODIES[2] as ShipperBody],
    ['application/octet-stream', VECTOR_BODIES[3] as ShipperBody],
    ['*/*', VECTOR_BODIES[0] as ShipperBody],
    ['application/x-www-form-urlencoded', VECTOR_BODIES[2] as ShipperBody],
  ])('%s is sniffed and accepted', async (contentType, shape) => {
    const answer = await post(`${server.url}/ingest`, shape.body, { 'content-type': contentType });
    expect(answer.status).toBe(200);
    expect(answer.json['accepted']).toBe(shape.records);
  });

  it('raw deflate (no zlib header) under Content-Encoding: deflate', async () => {
    const shape = VECTOR_BODIES[1] as ShipperBody;
    const answer = await post(`${server.url}/ingest`, deflateRawSync(shape.body), { 'content-type': 'application/x-ndjson', 'content-encoding': 'deflate' });
    expect(answer.json).toEqual({ accepted: 2, malformed: 0, without_text: 0 });
  });

  it('an encoding list is undone right to left', async () => {
    const shape = VECTOR_BODIES[0] as ShipperBody;
    const twice = gzipSync(Buffer.from(snappy.compress(shape.body)));
    const answer = await post(`${server.url}/ingest`, twice, { 'content-type': 'application/json', 'content-encoding': 'snappy, identity, gzip' });
    expect(answer.json).toEqual({ accepted: 2, malformed: 0, without_text: 0 });
  });
});

describe('malformed parts of a batch are kept and counted', () => {
  it('a bad NDJSON line', async () => {
    const body = '{"message":"a"}\n{"message": nope}\n{"message":"c"}\n';
    const answer = await post(`${server.url}/ingest`, body, { 'content-type': 'application/x-ndjson' });
    expect(answer.json).toEqual({ accepted: 3, malformed: 1, without_text: 0 });
    const records = server.batches.at(-1) ?? [];
    expect(records.map((record) => [record.message, record.malformed === true])).toEqual([
      ['a', false],
      ['{"message": nope}', true],
      ['c', false],
    ]);
  });

  it('a broken object inside a json_stream', async () => {
    const body = '{"log":"a"}{"log":"b",}{"log":"c"}';
    const answer = await post(`${server.url}/ingest`, body, { 'content-type': 'application/json' });
    expect(answer.json).toEqual({ accepted: 3, malformed: 1, without_text: 0 });
  });

  it('array elements that are no record; bare strings are messages (Vector log namespace)', async () => {
    const body = '["plain message", 42, {"message":"obj"}, [1]]';
    const answer = await post(`${server.url}/ingest`, body, { 'content-type': 'application/json' });
    expect(answer.json).toEqual({ accepted: 4, malformed: 2, without_text: 0 });
    expect((server.batches.at(-1) ?? []).map((record) => record.message)).toEqual(['plain message', '42', 'obj', '[1]']);
  });
});

describe('error answers', () => {
  it('400 names what and where for an array that never closes', async () => {
    const answer = await post(`${server.url}/ingest`, '[{"message":"a"},\n{"message":"b"}', { 'content-type': 'application/json' });
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ statusCode: 400, code: 'LW_ERR_BAD_BODY', error: 'Bad Request', where: { stage: 'json', byteOffset: 0, line: 1 } });
  });

  it('400 for msgpack truncated at the first value', async () => {
    const shape = FLUENT_BIT_BODIES[3] as ShipperBody;
    const answer = await post(`${server.url}/ingest`, shape.body.subarray(0, 10), { 'content-type': 'application/msgpack' });
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ code: 'LW_ERR_BAD_BODY', where: { stage: 'msgpack', byteOffset: 0 } });
  });

  it('msgpack truncated later keeps the first records and counts the rest', async () => {
    const shape = FLUENTD_BODIES[2] as ShipperBody;
    const answer = await post(`${server.url}/ingest`, shape.body.subarray(0, shape.body.length - 3), { 'content-type': 'application/x-msgpack' });
    expect(answer.json).toEqual({ accepted: 2, malformed: 1, without_text: 0 });
  });

  it('400 for corrupt gzip', async () => {
    const answer = await post(`${server.url}/ingest`, Buffer.from('not gzip at all'), { 'content-encoding': 'gzip' });
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ code: 'LW_ERR_BAD_BODY', where: { stage: 'content-encoding:gzip' } });
  });

  it('415 for an unknown Content-Encoding', async () => {
    const answer = await post(`${server.url}/ingest`, '{}', { 'content-type': 'application/json', 'content-encoding': 'br' });
    expect(answer.status).toBe(415);
    expect(answer.json).toMatchObject({ statusCode: 415, code: 'LW_ERR_UNSUPPORTED_ENCODING' });
  });

  it('503 with Retry-After when submit refuses', async () => {
    server.accepting.value = false;
    try {
      const answer = await post(`${server.url}/ingest`, '{"message":"x"}', { 'content-type': 'application/json' });
      expect(answer.status).toBe(503);
      expect(answer.headers['retry-after']).toBe('1');
      expect(answer.json).toMatchObject({ code: 'LW_ERR_OVERLOADED' });
    } finally {
      server.accepting.value = true;
    }
  });

  it('an empty body is an empty batch', async () => {
    const answer = await post(`${server.url}/ingest`, '', { 'content-type': 'application/json' });
    expect(answer.json).toEqual({ accepted: 0, malformed: 0, without_text: 0 });
  });
});

describe('limits', () => {
  let small: TestServer;
  beforeAll(async () => {
    small = await startIngestServer({ maxBodyBytes: 64 * 1024 });
  });
  afterAll(async () => {
    await small.close();
  });

  it('413 for a body over the limit as sent', async () => {
    const answer = await post(`${small.url}/ingest`, Buffer.alloc(64 * 1024 + 1, 0x61), { 'content-type': 'text/plain' });
    expect(answer.status).toBe(413);
    expect(answer.json).toMatchObject({ code: 'LW_ERR_BODY_TOO_LARGE' });
  });

  it('413 for a chunked body (no Content-Length) that grows past the limit', async () => {
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let sent = 0; sent < 256 * 1024; sent += 16 * 1024) yield Buffer.alloc(16 * 1024, 0x61);
    }
    const response = await request(`${small.url}/ingest`, { method: 'POST', body: Readable.from(chunks()), headers: { 'content-type': 'text/plain' } });
    const answer = (await response.body.json()) as Record<string, unknown>;
    expect(response.statusCode).toBe(413);
    expect(answer).toMatchObject({ code: 'LW_ERR_BODY_TOO_LARGE', where: { stage: 'request body' } });
  });

  it.each(['gzip', 'deflate', 'snappy'] as const)('413 when %s decompresses past the limit', async (encoding) => {
    const plain = Buffer.alloc(64 * 1024 + 1, 0x61);
    const body = encoding === 'gzip' ? gzipSync(plain) : encoding === 'deflate' ? deflateSync(plain) : Buffer.from(snappy.compress(plain));
    expect(body.length).toBeLessThan(64 * 1024);
    const answer = await post(`${small.url}/ingest`, body, { 'content-type': 'text/plain', 'content-encoding': encoding });
    expect(answer.status).toBe(413);
    expect(answer.json).toMatchObject({ code: 'LW_ERR_BODY_TOO_LARGE' });
  });

  it('zstd: a small body passes, 1 MiB of zeros (made by the zstd CLI, see README) is 413', async () => {
    const shape = VECTOR_BODIES[2] as ShipperBody;
    const fine = await post(`${small.url}/ingest`, zstdFixture(shape.name), { 'content-type': 'text/plain', 'content-encoding': 'zstd' });
    expect(fine.status).toBe(200);
    const bomb = zstdFixture('zeros-1MiB');
    expect(bomb.length).toBeLessThan(1024);
    const answer = await post(`${small.url}/ingest`, bomb, { 'content-type': 'text/plain', 'content-encoding': 'zstd' });
    expect(answer.status).toBe(413);
    expect(answer.json).toMatchObject({ code: 'LW_ERR_BODY_TOO_LARGE' });
  });
});
