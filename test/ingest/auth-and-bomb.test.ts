import { createGzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLUENTD_BODIES, type ShipperBody } from '../fixtures/shippers/bodies.js';
import { post, startIngestServer, type TestServer } from './server-harness.js';

const NDJSON = FLUENTD_BODIES[0] as ShipperBody;
const HEADERS = { 'content-type': 'application/x-ndjson' };

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

describe('auth', () => {
  let open: TestServer;
  let guarded: TestServer;
  beforeAll(async () => {
    open = await startIngestServer();
    guarded = await startIngestServer({ token: 's3cret-token' });
  });
  afterAll(async () => {
    await open.close();
    await guarded.close();
  });

  it('no token configured: no auth needed', async () => {
    expect((await post(`${open.url}/ingest`, NDJSON.body, HEADERS)).status).toBe(200);
  });

  it('bearer token (Vector auth.strategy bearer)', async () => {
    const answer = await post(`${guarded.url}/ingest`, NDJSON.body, { ...HEADERS, authorization: 'Bearer s3cret-token' });
    expect(answer.json).toEqual({ accepted: 2, malformed: 0, without_text: 0 });
  });

  it('basic with the token as password (Fluent Bit http_user/http_passwd, Fluentd <auth>)', async () => {
    const answer = await post(`${guarded.url}/`, NDJSON.body, { ...HEADERS, authorization: basic('fluentd', 's3cret-token') });
    expect(answer.json).toEqual({ accepted: 2, malformed: 0, without_text: 0 });
  });

  it.each([
    ['none', undefined],
    ['wrong bearer', 'Bearer s3cret-tokeN'],
    ['wrong basic password', basic('s3cret-token', 'nope')],
    ['unknown scheme', 'Token s3cret-token'],
    ['garbage', 'Bearer'],
  ])('401 with WWW-Authenticate: %s', async (_name, authorization) => {
    const before = guarded.batches.length;
    const answer = await post(`${guarded.url}/ingest`, NDJSON.body, authorization === undefined ? HEADERS : { ...HEADERS, authorization });
    expect(answer.status).toBe(401);
    expect(answer.json).toMatchObject({ statusCode: 401, code: 'LW_ERR_UNAUTHORIZED' });
    expect(answer.headers['www-authenticate']).toBe('Basic realm="leakwatch", charset="UTF-8"');
    expect(guarded.batches.length).toBe(before);
  });
});

describe('gzip bomb', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startIngestServer({ maxBodyBytes: 32 * 1024 * 1024 });
  });
  afterAll(async () => {
    await server.close();
  });

  /** 1 GiB of zeros through a streaming gzip: under 5 MiB on the wire (level 1: quick to make). */
  async function gzipOfZeros(totalBytes: number): Promise<Buffer> {
    const gzip = createGzip({ level: 1 });
    const parts: Buffer[] = [];
    gzip.on('data', (chunk: Buffer) => parts.push(chunk));
    const done = new Promise<void>((resolve, reject) => {
      gzip.once('end', resolve);
      gzip.once('error', reject);
    });
    const zeros = Buffer.alloc(1024 * 1024);
    for (let written = 0; written < totalBytes; written += zeros.length) {
      if (!gzip.write(zeros)) await new Promise((resolve) => gzip.once('drain', resolve));
    }
    gzip.end();
    await done;
    return Buffer.concat(parts);
  }

  it('1 GiB compressed to under 5 MiB answers 413 without inflating it all', async () => {
    const bomb = await gzipOfZeros(1024 * 1024 * 1024);
    expect(bomb.length).toBeLessThan(5 * 1024 * 1024);
    const heapBefore = process.memoryUsage().rss;
    const answer = await post(`${server.url}/ingest`, bomb, { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
    expect(answer.status).toBe(413);
    expect(answer.json).toMatchObject({ code: 'LW_ERR_BODY_TOO_LARGE', where: { stage: 'after content-encoding gzip' } });
    // Inflating all of it would take a gigabyte; stopping at the cap takes tens of megabytes at most.
    expect(process.memoryUsage().rss - heapBefore).toBeLessThan(512 * 1024 * 1024);
    expect(server.batches.length).toBe(0);
  });
});
