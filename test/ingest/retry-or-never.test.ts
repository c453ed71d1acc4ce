import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { SEED_OODM_RECORD } from '../helpers/seed-lines.js';
import { startLeakwatch, type RunningLeakwatch } from '../helpers/in-process.js';
import { post, startIngestServer, type TestServer } from './server-harness.js';

// Issue 8, defect 4: 503 + Retry-After only for conditions that pass; a batch that can never be
// recorded gets a final 4xx, or is accepted with the bad record counted - never a retry loop.
const NDJSON = { 'content-type': 'application/x-ndjson' };

describe('what submit throws decides between retry and never', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startIngestServer();
  });
  afterAll(() => server.close());

  it('a store that is busy or full: 503 + Retry-After', async () => {
    for (const code of ['SQLITE_BUSY', 'SQLITE_FULL', 'SQLITE_IOERR_WRITE']) {
      server.failure.error = Object.assign(new Error(`database says ${code}`), { code });
      const answer = await post(`${server.url}/ingest`, '{"message":"m"}\n', NDJSON);
      expect(answer.status, code).toBe(503);
      expect(answer.headers['retry-after']).toBe('1');
      expect(answer.json).toMatchObject({ code: 'LW_ERR_STORAGE' });
    }
    server.failure.error = undefined;
  });

  it('anything else (a batch the journal cannot serialise): a final 422 naming why, no Retry-After', async () => {
    server.failure.error = new RangeError('Maximum call stack size exceeded');
    const answer = await post(`${server.url}/ingest`, '{"message":"m"}\n', NDJSON);
    server.failure.error = undefined;
    expect(answer.status).toBe(422);
    expect(answer.headers['retry-after']).toBeUndefined();
    expect(answer.json).toMatchObject({ code: 'LW_ERR_UNRECORDABLE' });
    expect(String(answer.json['message'])).toContain('Maximum call stack size exceeded');
  });

  it('a full queue: 503 + Retry-After', async () => {
    server.accepting.value = false;
    const answer = await post(`${server.url}/ingest`, '{"message":"m"}\n', NDJSON);
    server.accepting.value = true;
    expect(answer.status).toBe(503);
    expect(answer.headers['retry-after']).toBe('1');
    expect(answer.json).toMatchObject({ code: 'LW_ERR_OVERLOADED' });
  });
});

describe('a record nested 4,500 levels deep, on the real service', () => {
  let running: RunningLeakwatch;
  beforeAll(async () => {
    running = await startLeakwatch('deep');
  });
  afterAll(() => running.close());

  it('is accepted as one malformed record; the good records of its batch are journaled and classified', async () => {
    const deep = `${'['.repeat(4500)}${']'.repeat(4500)}`;
    const body = [JSON.stringify({ message: 'before' }), deep, ...SEED_OODM_RECORD.split('\n').map((line) => JSON.stringify({ message: line }))].join('\n');
    expect(body.length).toBeLessThan(12 * 1024);
    const response = await request(`${running.base}/ingest`, { method: 'POST', body, headers: NDJSON });
    expect(response.statusCode).toBe(200);
    expect(await response.body.json()).toEqual({ accepted: 6, malformed: 1, without_text: 0 });
    await running.service.pipeline.whenIdle();
    running.service.pipeline.stop();
    const { incidents } = running.service.incidents.list({ status: 'all', limit: 10 });
    expect(incidents.map((incident) => incident.category)).toContain('direct-memory-exhausted');
  });
});
