/**
 * The verdicts shipped for the shipped rules' patterns (schema/shipped-regex-verdicts.json) are
 * complete and are recheck's own: a first start on the shipped rules checks nothing, and a changed
 * pattern or a new recheck fails here until `npm run shipped-verdicts` makes the file again.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { tempDirs } from '../helpers/temp-dirs.js';
import { resolveConfig } from '../../src/config.js';
import { loadRuleSet } from '../../src/rules/index.js';
import { SafetyVerdictCache, SHIPPED_VERDICTS_FILE } from '../../src/rules/regex-safety.js';
import { buildLeakwatch } from '../../src/server.js';

const tempDir = tempDirs();
type VerdictFile = { checker: string; verdicts: Record<string, { status: string; detail: string }> };

describe('shipped regex verdicts', () => {
  it('cover every pattern of the shipped rules', async () => {
    const { errors, regexChecks } = await loadRuleSet('rules', { checkRegexSafety: true });
    expect(errors).toEqual([]);
    expect(regexChecks?.total).toBeGreaterThan(20);
    expect(regexChecks?.fromShipped).toBe(regexChecks?.total);
  });

  it('are what recheck says about those patterns now', async () => {
    const file = join(tempDir('recheck-now'), 'verdicts.json');
    const cache = new SafetyVerdictCache(file);
    const { errors, warnings, regexChecks } = await loadRuleSet('rules', { checkRegexSafety: true, shippedVerdicts: false, safetyCache: cache });
    expect([...errors, ...warnings]).toEqual([]);
    expect(regexChecks?.fromShipped).toBe(0);
    const now = JSON.parse(readFileSync(file, 'utf8')) as VerdictFile;
    const shipped = JSON.parse(readFileSync(fileURLToPath(SHIPPED_VERDICTS_FILE), 'utf8')) as VerdictFile;
    expect(shipped.checker).toBe(now.checker);
    const statuses = (verdicts: VerdictFile['verdicts']) => Object.fromEntries(Object.entries(verdicts).map(([key, verdict]) => [key, verdict.status]));
    expect(statuses(shipped.verdicts)).toEqual(statuses(now.verdicts));
  }, 120_000);

  it('let a first start on the shipped rules be ready without asking recheck', async () => {
    const service = await buildLeakwatch(resolveConfig({ dataDir: tempDir('first-start'), rulesDir: 'rules' }, {}), pino({ level: 'silent' }));
    try {
      await service.ready;
      const checks = service.rules.status().last_reload.regex_checks!;
      expect(checks).toMatchObject({ from_cache_file: 0, from_shipped: checks.total });
    } finally {
      await service.close();
    }
  });
});
