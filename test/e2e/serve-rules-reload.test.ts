import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEED_OODM_NUMBERS, SEED_OODM_RECORD } from '../helpers/seed-lines.js';
import { shippedRulesWith } from '../helpers/rules-dir.js';
import { eventually, startServe, type ServeProcess } from '../helpers/serve-process.js';

// Issue 3: "a broken edit during `serve` leaves the old rules working". A real child process
// serves a copy of the shipped rules; the test breaks one file the way an SRE might.

interface RulesStatus {
  hash: string;
  rules: { id: string }[];
  last_reload: { ok: boolean; errors: { file: string; line: number; col: number; text: string }[] };
}

describe('hot reload during serve', () => {
  let rules: ReturnType<typeof shippedRulesWith>;
  let rulesDir: string;
  let dataDir: string;
  let server: ServeProcess;

  beforeAll(async () => {
    // The shipped rules, but a quiet stream's record closes after 2 s instead of 30.
    rules = shippedRulesWith({ expire_after: '2s' });
    rulesDir = rules.dir;
    dataDir = mkdtempSync(join(tmpdir(), 'leakwatch-data-'));
    server = await startServe(['--rules', rulesDir, '--data-dir', dataDir]);
  });

  afterAll(async () => {
    await server?.stop();
    rules.remove();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('rejects a broken edit with file:line:col, keeps the old rules classifying, and recovers', async () => {
    const before = (await (await request(`${server.url}/rules`)).body.json()) as RulesStatus;
    expect(before.rules.length).toBeGreaterThan(5);

    const netty = join(rulesDir, 'netty.yaml');
    const good = readFileSync(netty, 'utf8');
    // A typo an SRE makes: a severity that does not exist.
    const broken = good.replace(/severity: (error|critical|warning)/, 'severity: fatal');
    expect(broken).not.toBe(good);
    writeFileSync(netty, broken);

    const reload = await request(`${server.url}/-/reload`, { method: 'POST' });
    expect(reload.statusCode).toBe(422);
    const failure = (await reload.body.json()) as { code: string; problems: { file: string; line: number; text: string }[] };
    expect(failure.code).toBe('LW_ERR_RULES_INVALID');
    const brokenLine = broken.split('\n').findIndex((line) => line.includes('severity: fatal')) + 1;
    expect(failure.problems.some((e) => e.file.endsWith('netty.yaml') && e.line === brokenLine)).toBe(true);

    const status = (await (await request(`${server.url}/rules`)).body.json()) as RulesStatus;
    expect(status.hash).toBe(before.hash);
    expect(status.last_reload.ok).toBe(false);
    expect(status.last_reload.errors[0]!.text).toMatch(/netty\.yaml:\d+:\d+: /);
    const metrics = await (await request(`${server.url}/metrics`)).body.text();
    expect(metrics).toMatch(/^leakwatch_rules_reload_failures_total [1-9]/m);

    // The old rules still classify: the seed's OODM record becomes a direct-memory incident.
    const ingest = await request(`${server.url}/ingest`, { method: 'POST', body: SEED_OODM_RECORD, headers: { 'content-type': 'text/plain' } });
    expect(ingest.statusCode).toBe(200);
    await ingest.body.dump();
    const incident = await eventually(async () => {
      const { incidents } = (await (await request(`${server.url}/incidents?status=all`)).body.json()) as {
        incidents: { category: string; fields: Record<string, number> }[];
      };
      return incidents.find((i) => i.category === 'direct-memory-exhausted');
    });
    expect(incident.fields).toMatchObject(SEED_OODM_NUMBERS);

    // Fixing the file is picked up by the file watcher, without a reload request.
    writeFileSync(netty, good);
    await eventually(async () => {
      const now = (await (await request(`${server.url}/rules`)).body.json()) as RulesStatus;
      return now.last_reload.ok ? now : undefined;
    }, 60_000);
  }, 180_000); // a reload runs the ReDoS check over every regex; generous for a loaded CI machine
});
