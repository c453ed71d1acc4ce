import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEED_OODM_RECORD } from './helpers/seed-lines.js';
import { startLeakwatch, type RunningLeakwatch } from './helpers/in-process.js';
import { startServe } from './helpers/serve-process.js';
import { missingSemiSpaceFlag } from '../src/process-settings.js';

// Issue 8, defect 7: with a token set, every route but the probes needs it; the read-only token
// reads but changes nothing.
const ADMIN = 'adm1n-t0ken';
const READER = 'r3ad-only';

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

function basic(password: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`browser:${password}`).toString('base64')}` };
}

describe('auth on every route', () => {
  let running: RunningLeakwatch;
  let incidentId: string;

  async function call(method: 'GET' | 'HEAD' | 'POST', path: string, headers: Record<string, string> = {}, body?: string) {
    const response = await request(`${running.base}${path}`, { method, headers, body });
    const text = await response.body.text();
    return { status: response.statusCode, headers: response.headers, json: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : { text } };
  }

  beforeAll(async () => {
    running = await startLeakwatch('auth', { token: ADMIN, readToken: READER });
    const ingest = await call('POST', '/ingest', { ...bearer(ADMIN), 'content-type': 'text/plain' }, SEED_OODM_RECORD);
    expect(ingest.status).toBe(200);
    await running.service.pipeline.whenIdle();
    running.service.pipeline.stop();
    const list = await call('GET', '/incidents?status=all', bearer(READER));
    incidentId = (list.json['incidents'] as { id: string }[])[0]!.id;
  });
  afterAll(() => running.close());

  const READ_ROUTES = ['/incidents', '/memory', '/rules', '/metrics', '/nowhere'];
  const ADMIN_ROUTES = () => [`/incidents/${incidentId}/ack`, `/incidents/${incidentId}/resolve`, '/-/reload', '/ingest', '/'];

  it('the probes answer without a token', async () => {
    expect((await call('GET', '/healthz')).status).toBe(200);
    expect((await call('HEAD', '/healthz')).status).toBe(200);
    expect((await call('GET', '/readyz')).status).toBe(200);
  });

  it('every other route answers 401 with a Basic challenge, in the error shape, without a token', async () => {
    for (const [method, path] of [...READ_ROUTES.map((p) => ['GET', p] as const), ...ADMIN_ROUTES().map((p) => ['POST', p] as const)]) {
      const answer = await call(method, path);
      expect(answer.status, `${method} ${path}`).toBe(401);
      expect(answer.headers['www-authenticate']).toBe('Basic realm="leakwatch", charset="UTF-8"');
      expect(answer.json).toMatchObject({ statusCode: 401, code: 'LW_ERR_UNAUTHORIZED', error: 'Unauthorized' });
    }
  });

  it('a wrong token is refused too', async () => {
    expect((await call('GET', '/incidents', bearer('adm1n-t0keN'))).status).toBe(401);
    expect((await call('GET', '/incidents', basic('nope'))).status).toBe(401);
  });

  it('the read-only token reads (Bearer or browser Basic) but cannot ingest, ack, resolve or reload', async () => {
    for (const path of ['/incidents', '/memory', '/rules', '/metrics', `/incidents/${incidentId}`]) {
      expect((await call('GET', path, bearer(READER))).status, path).toBe(200);
      expect((await call('GET', path, basic(READER))).status, path).toBe(200);
    }
    for (const path of ADMIN_ROUTES()) {
      const answer = await call('POST', path, { ...bearer(READER), 'content-type': 'text/plain' }, 'a line');
      expect(answer.status, path).toBe(403);
      expect(answer.json).toMatchObject({ statusCode: 403, code: 'LW_ERR_FORBIDDEN' });
    }
    const incident = await call('GET', `/incidents/${incidentId}`, bearer(READER));
    expect(incident.json['status']).toBe('open');
    expect(incident.json['acked_at']).toBeNull();
  });

  it('the admin token does everything', async () => {
    expect((await call('GET', '/incidents', bearer(ADMIN))).status).toBe(200);
    expect((await call('POST', `/incidents/${incidentId}/ack`, basic(ADMIN))).status).toBe(200);
    expect((await call('POST', `/incidents/${incidentId}/resolve`, bearer(ADMIN))).json['status']).toBe('resolved');
    expect((await call('POST', '/-/reload', bearer(ADMIN))).status).toBe(200);
  });
});

/** What the real `leakwatch serve` logs while it starts with these flags and this environment, in a fresh data folder. */
async function startupLog(flags: readonly string[], env: NodeJS.ProcessEnv): Promise<string> {
  const dataDir = mkdtempSync(join(tmpdir(), 'leakwatch-start-'));
  const server = await startServe(['--data-dir', dataDir, '--rules', 'rules', ...flags], env);
  try {
    return server.output();
  } finally {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

describe('start-up advice', () => {
  it('on glibc without MALLOC_MMAP_THRESHOLD_ or MALLOC_ARENA_MAX, the log says which to set', async () => {
    const glibc = typeof (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime === 'string';
    const none = { MALLOC_MMAP_THRESHOLD_: undefined, MALLOC_ARENA_MAX: undefined, GLIBC_TUNABLES: undefined };
    for (const [env, advised] of [
      [none, glibc ? ['MALLOC_MMAP_THRESHOLD_=131072', 'MALLOC_ARENA_MAX=2'] : []],
      [{ ...none, MALLOC_MMAP_THRESHOLD_: '131072' }, glibc ? ['MALLOC_ARENA_MAX=2'] : []],
      [{ ...none, MALLOC_ARENA_MAX: '2' }, glibc ? ['MALLOC_MMAP_THRESHOLD_=131072'] : []],
      [{ ...none, MALLOC_MMAP_THRESHOLD_: '131072', MALLOC_ARENA_MAX: '2' }, []],
      [{ ...none, GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=131072:glibc.malloc.arena_max=2' }, []],
    ] as const) {
      const advice = (await startupLog([], env))
        .split('\n')
        .filter((line) => line.includes("glibc's malloc runs on its defaults"))
        .map((line) => JSON.parse(line) as { set: string[]; msg: string });
      expect(advice.map((line) => line.set), JSON.stringify(env)).toEqual(advised.length === 0 ? [] : [advised]);
      for (const line of advice) expect(line.msg).toContain(`set ${advised.join(' ')} in the environment`);
    }
  }, 120_000);
});

describe('start-up advice on the young generation', () => {
  it('without --max-semi-space-size on node\'s command line or in NODE_OPTIONS, the log names the flag', async () => {
    const advice = async (env: NodeJS.ProcessEnv): Promise<string[]> =>
      (await startupLog([], env))
        .split('\n')
        .filter((line) => line.includes("V8's young generation is at its default size"))
        .map((line) => (JSON.parse(line) as { nodeFlag: string }).nodeFlag);
    expect(await advice({ NODE_OPTIONS: undefined })).toEqual(['--max-semi-space-size=8']);
    expect(await advice({ NODE_OPTIONS: '--max-semi-space-size=8' })).toEqual([]);
    expect(await advice({ NODE_OPTIONS: '--no-warnings --max_semi_space_size=4' })).toEqual([]);
  }, 120_000);

  it('reads the flag from node\'s command line as well', () => {
    expect(missingSemiSpaceFlag(['--max-semi-space-size=8'], {})).toBeUndefined();
    expect(missingSemiSpaceFlag(['--max-semi-space-size', '8'], {})).toBeUndefined();
    expect(missingSemiSpaceFlag(['--max-old-space-size=512'], { NODE_OPTIONS: '--inspect' })).toBe('--max-semi-space-size=8');
  });
});

describe('start-up warning', () => {
  it('a non-loopback address without a token is warned about loudly, and so is a token in a flag', async () => {
    for (const [env, flags, warned] of [[{}, [], true], [{ LEAKWATCH_TOKEN: ADMIN }, [], false], [{}, ['--token', ADMIN], false]] as const) {
      // Listening on every interface; the test talks to it over loopback only.
      const log = await startupLog(['--host', '0.0.0.0', ...flags], env);
      expect(log.includes('WITHOUT A TOKEN'), JSON.stringify(env)).toBe(warned);
      // A token on the command line works, but is shown to every user by ps: said so.
      expect(log.includes('visible to every user in ps')).toBe(flags.length > 0);
    }
  }, 120_000);
});
