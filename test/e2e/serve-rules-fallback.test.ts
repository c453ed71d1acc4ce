import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { tempDirs } from '../helpers/temp-dirs.js';
import { SEED_OODM_RECORD } from '../helpers/seed-lines.js';
import { eventually, startServe } from '../helpers/serve-process.js';

// Issue 11: a rule file broken before a restart stopped the server from starting (a crash loop
// under systemd or Docker, the shippers' buffers filling up), while the log said it was "keeping
// the previous rules". Now the data folder keeps the last good rule set and a start falls back to
// it, loudly; only a data folder that never saw a good rule set refuses to start.
const BIN = fileURLToPath(new URL('../../bin/leakwatch.js', import.meta.url));

const RULE = (category: string) => `rules:
  - id: direct-memory
    version: 1
    title: Netty direct memory exhausted
    match:
      literals: [OutOfDirectMemoryError]
    classify: { category: ${category}, severity: critical }
`;
// A typo on line 7, col 62: the severity.
const BROKEN = RULE('direct-memory-exhausted').replace('severity: critical', 'severity: crit');

const tempDir = tempDirs();

interface RulesBody {
  hash: string;
  rules: Array<{ id: string }>;
  last_reload: { ok: boolean; errors: Array<{ text: string }> };
  fallback: { hash: string; dir: string; errors: Array<{ text: string }> } | null;
}

async function json<T>(url: string): Promise<{ status: number; body: T }> {
  const answer = await request(url);
  return { status: answer.statusCode, body: (await answer.body.json()) as T };
}

describe('a start with broken rule files', () => {
  it('with a data folder that never saw good rules: refuses to start, naming file:line:col', () => {
    const rulesDir = tempDir('rules-never-good');
    writeFileSync(join(rulesDir, 'memory.yaml'), BROKEN);
    const run = spawnSync(process.execPath, [BIN, 'serve', '--port', '0', '--rules', rulesDir, '--data-dir', tempDir('data-never-good')], { encoding: 'utf8', timeout: 20_000 });
    expect(run.status).toBe(1);
    expect(run.stdout + run.stderr).toContain('memory.yaml:7:62');
  });

  it('after a good start: runs on the last good rules, says so in the log, /rules, /readyz and /metrics, and leaves them once fixed', async () => {
    const rulesDir = tempDir('rules');
    const dataDir = tempDir('data');
    const file = join(rulesDir, 'memory.yaml');
    writeFileSync(file, RULE('direct-memory-exhausted'));
    const first = await startServe(['--rules', rulesDir, '--data-dir', dataDir]);
    const good = (await json<RulesBody>(`${first.url}/rules`)).body;
    expect(good.fallback).toBeNull();
    expect(await first.stop()).toBe(0);

    writeFileSync(file, BROKEN);
    const second = await startServe(['--rules', rulesDir, '--data-dir', dataDir]);
    try {
      expect(second.output()).toMatch(/"level":50,.*memory\.yaml:7:62: rules\[0\]\.classify\.severity/);
      expect(second.output()).toMatch(/"level":50,.*RULES FALLBACK: the rules in .* do not load \(1 error above\); running on the last good rules \(hash [0-9a-f]{16}/);

      const status = (await json<RulesBody>(`${second.url}/rules`)).body;
      expect(status.hash).toBe(good.hash);
      expect(status.rules.map((rule) => rule.id)).toEqual(['direct-memory']);
      expect(status.last_reload.ok).toBe(false);
      expect(status.fallback).toMatchObject({ hash: good.hash, errors: [{ text: expect.stringContaining('memory.yaml:7:62') }] });
      expect(status.fallback!.dir.startsWith(dataDir)).toBe(true);

      const readyz = await json<{ ready: boolean; rules_fallback?: string }>(`${second.url}/readyz`);
      expect(readyz.status).toBe(200);
      expect(readyz.body.rules_fallback).toMatch(/did not load at start-up \(1 error, GET \/rules\); running on the last good rules/);
      const metrics = await (await request(`${second.url}/metrics`)).body.text();
      expect(metrics).toMatch(/^leakwatch_rules_fallback_active 1$/m);

      // The rules in force classify (the next line of the stream closes the record).
      const body = `${SEED_OODM_RECORD}\nNov 01 11:59:33 web-1 linkerd[5699]: I 1101 11:59:33.000 CDT THREAD1: next\n`;
      const ingest = await request(`${second.url}/ingest`, { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
      expect(ingest.statusCode).toBe(200);
      await ingest.body.dump();
      const incidents = await eventually(async () => {
        const found = (await json<{ incidents: Array<{ category: string }> }>(`${second.url}/incidents?status=all`)).body.incidents;
        return found.length > 0 ? found : undefined;
      }, 10_000);
      expect(incidents.map((incident) => incident.category)).toEqual(['direct-memory-exhausted']);

      // Fixed in place: the watcher reloads, the fallback ends.
      writeFileSync(file, RULE('renamed-category'));
      await eventually(async () => ((await json<RulesBody>(`${second.url}/rules`)).body.fallback === null ? true : undefined), 10_000);
      expect((await json<{ rules_fallback?: string }>(`${second.url}/readyz`)).body.rules_fallback).toBeUndefined();
      expect(await (await request(`${second.url}/metrics`)).body.text()).toMatch(/^leakwatch_rules_fallback_active 0$/m);
    } finally {
      await second.stop();
    }
    const kept = JSON.parse(readFileSync(join(dataDir, 'rules-last-good', 'current.json'), 'utf8')) as { hash: string };
    expect(kept.hash).not.toBe(good.hash);
  });
});
