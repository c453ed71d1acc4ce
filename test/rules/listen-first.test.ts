import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { tempDirs } from '../helpers/temp-dirs.js';
import { resolveConfig } from '../../src/config.js';
import { loadRuleSet } from '../../src/rules/index.js';
import { buildLeakwatch } from '../../src/server.js';

// Issue 8, defect 9: start-up listened only after every regex had been checked one at a time
// (28.8 s for 300 patterns), and a YAML alias bomb crashed `rules check` with a stack trace.
const BIN = fileURLToPath(new URL('../../bin/leakwatch.js', import.meta.url));
const tempDir = tempDirs();

/**
 * Rules of a user's own, 30 patterns leakwatch ships no verdicts for (the shipped rules' come
 * with theirs: shipped-verdicts.test.ts), so the first start has to ask recheck about each.
 */
function ownRulesDir(): string {
  const dir = tempDir('own-rules');
  const rules = Array.from({ length: 30 }, (_, index) =>
    [
      `  - id: own-rule-${index}`,
      '    version: 1',
      `    title: Own rule ${index}`,
      `    priority: ${index + 1}`,
      '    match:',
      `      literals: ['OwnFailure${index}Exception']`,
      '      all:',
      `        - text|regex: 'OwnFailure${index}Exception: (?:code|status) \\d{${(index % 5) + 1}}'`,
      '    classify:',
      `      category: own-${index}`,
      '      severity: warning',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'own.yaml'), `rules:\n${rules.join('\n')}\n`);
  return dir;
}

describe('the server listens before the regex safety check, and keeps its verdicts', () => {
  const dataDir = tempDir('listen-first');
  const rulesDir = ownRulesDir();

  it('first start: /readyz and ingest say "not yet" (503, Retry-After) until the check is done', async () => {
    const service = await buildLeakwatch(resolveConfig({ dataDir, rulesDir }, {}), pino({ level: 'silent' }));
    try {
      const base = await service.app.listen({ port: 0, host: '127.0.0.1' });
      const readyz = await request(`${base}/readyz`);
      expect(readyz.statusCode).toBe(503);
      expect(await readyz.body.json()).toMatchObject({ ready: false, checks: { rules: false, store: true }, waiting_for: expect.stringMatching(/^rules: /) });
      const early = await request(`${base}/ingest`, { method: 'POST', body: 'a line', headers: { 'content-type': 'text/plain' } });
      expect(early.statusCode).toBe(503);
      expect(early.headers['retry-after']).toBe('1');
      expect(await early.body.json()).toMatchObject({ code: 'LW_ERR_NOT_READY' });

      await service.ready;
      expect((await request(`${base}/readyz`)).statusCode).toBe(200);
      const late = await request(`${base}/ingest`, { method: 'POST', body: 'a line', headers: { 'content-type': 'text/plain' } });
      expect(late.statusCode).toBe(200);
      await late.body.dump();
      const checks = service.rules.status().last_reload.regex_checks!;
      expect(checks.total).toBe(30);
      expect(checks.from_cache_file).toBe(0);
      expect(checks.from_shipped).toBe(0);
    } finally {
      await service.close();
    }
  }, 120_000);

  it('a restart on the same data folder takes every verdict from the cache file', async () => {
    const service = await buildLeakwatch(resolveConfig({ dataDir, rulesDir }, {}), pino({ level: 'silent' }));
    try {
      await service.ready;
      const checks = service.rules.status().last_reload.regex_checks!;
      expect(checks.total).toBe(30);
      expect(checks.from_cache_file).toBe(30);
    } finally {
      await service.close();
    }
  });
});

describe('a YAML alias bomb', () => {
  const rulesDir = tempDir('alias-bomb');
  const levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
  for (let level = 1; level < 9; level++) {
    const previous = String.fromCharCode(96 + level);
    const name = String.fromCharCode(97 + level);
    levels.push(`${name}: &${name} [${Array(9).fill(`*${previous}`).join(',')}]`);
  }
  writeFileSync(join(rulesDir, 'bomb.yaml'), `${levels.join('\n')}\nrules: []\n`);

  it('is a file:line:col error from the loader', async () => {
    const { ruleSet, errors } = await loadRuleSet(rulesDir, { checkRegexSafety: false });
    expect(ruleSet).toBeNull();
    expect(errors).toMatchObject([{ file: expect.stringMatching(/bomb\.yaml$/), line: 2, col: 8, message: expect.stringContaining('alias') }]);
  });

  it('`rules check` prints it and exits 1, without a stack trace', () => {
    const run = spawnSync(process.execPath, [BIN, 'rules', 'check', rulesDir], { encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stdout).toMatch(/bomb\.yaml:2:8: .*alias/);
    expect(run.stdout + run.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('start-up errors name their path (defect 10)', () => {
  it('a data folder that cannot be made', async () => {
    const file = join(tempDir('not-a-folder'), 'plain-file');
    writeFileSync(file, 'x');
    const dataDir = join(file, 'data');
    await expect(buildLeakwatch(resolveConfig({ dataDir, rulesDir: 'rules' }, {}), pino({ level: 'silent' }))).rejects.toThrow(`cannot open the store in ${dataDir}`);
  });
});
