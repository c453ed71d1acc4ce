import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE } from '../src/errors.js';
import { startLeakwatch, type RunningLeakwatch } from './helpers/in-process.js';

// Issue 8: one error shape for every route, from one catalogue of codes.
describe('every route answers failures in one shape', () => {
  let running: RunningLeakwatch;
  beforeAll(async () => {
    running = await startLeakwatch('errors', { maxBodyBytes: '4KiB' });
  });
  afterAll(() => running.close());

  it.each([
    ['GET', '/nowhere', undefined, {}, 404, 'LW_ERR_NOT_FOUND'],
    ['DELETE', '/incidents', undefined, {}, 404, 'LW_ERR_NOT_FOUND'],
    ['GET', '/incidents?limit=0', undefined, {}, 400, 'LW_ERR_BAD_PARAMETER'],
    ['GET', '/memory?samples=many', undefined, {}, 400, 'LW_ERR_BAD_PARAMETER'],
    ['GET', '/memory?colour=red', undefined, {}, 400, 'LW_ERR_BAD_PARAMETER'],
    ['GET', '/incidents/nope', undefined, {}, 404, 'LW_ERR_NOT_FOUND'],
    ['POST', '/ingest', 'x'.repeat(8192), { 'content-type': 'text/plain' }, 413, 'LW_ERR_BODY_TOO_LARGE'],
    ['POST', '/ingest', 'abc', { 'content-encoding': 'br' }, 415, 'LW_ERR_UNSUPPORTED_ENCODING'],
    ['POST', '/ingest', 'not gzip', { 'content-encoding': 'gzip' }, 400, 'LW_ERR_BAD_BODY'],
    ['POST', '/incidents/nope/ack', '{"a":', { 'content-type': 'application/json' }, 400, 'LW_ERR_BAD_REQUEST'],
  ] as const)('$0 $1 → $4', async (method, path, body, headers, status, code) => {
    const response = await request(`${running.base}${path}`, { method, body, headers });
    expect(response.statusCode).toBe(status);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    const json = (await response.body.json()) as Record<string, unknown>;
    expect(json).toMatchObject({ statusCode: status, code, error: expect.any(String), message: expect.any(String) });
    expect(ERROR_CATALOGUE[code].statusCode).toBe(status);
  });

  it('names the memory parameter that is wrong', async () => {
    const response = await request(`${running.base}/memory?colour=red`);
    expect(await response.body.json()).toMatchObject({ where: { parameter: 'colour' } });
  });
});

describe('the README', () => {
  it("lists the catalogue's codes as the catalogue says (regenerate from renderErrorTable() when this fails)", async () => {
    const { readFileSync } = await import('node:fs');
    const { renderErrorTable } = await import('../src/errors.js');
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const start = readme.indexOf('<!-- error-table:');
    const end = readme.indexOf('<!-- error-table end -->');
    expect(start).toBeGreaterThan(0);
    expect(readme.slice(readme.indexOf('\n', start) + 1, end).trim()).toBe(renderErrorTable());
  });
});
