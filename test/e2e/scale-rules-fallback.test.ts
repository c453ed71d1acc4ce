/**
 * Issue 13: PostgreSQL keeps the fleet's last good rule set. An engine node started with broken
 * rule files and a data folder of its own that never saw a good set (a new pod) runs on the
 * rules another node last loaded, where a single process would refuse to start. Real
 * nats-server and PostgreSQL on loopback, real `leakwatch serve --role engine` processes.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgresAndNats, type NatsServer, type PostgresServer } from '../helpers/scale-servers.js';
import { startServe, type ServeProcess } from '../helpers/serve-process.js';
import { tempDirs } from '../helpers/temp-dirs.js';

const RULE = `rules:
  - id: direct-memory
    version: 1
    title: Netty direct memory exhausted
    match:
      literals: [OutOfDirectMemoryError]
    classify: { category: direct-memory-exhausted, severity: critical }
`;
// A typo on line 7, col 62: the severity.
const BROKEN = RULE.replace('severity: critical', 'severity: crit');

interface RulesBody {
  hash: string;
  rules: Array<{ id: string }>;
  last_reload: { ok: boolean };
  fallback: { hash: string; dir: string } | null;
}

const tempDir = tempDirs();

async function rulesOf(url: string): Promise<RulesBody> {
  const answer = await request(`${url}/rules`);
  expect(answer.statusCode).toBe(200);
  return (await answer.body.json()) as RulesBody;
}

describe('scale-out: the last good rule set is shared through PostgreSQL', () => {
  let postgres: PostgresServer;
  let nats: NatsServer;
  const processes: ServeProcess[] = [];

  beforeAll(async () => {
    ({ postgres, nats } = await startPostgresAndNats());
  });
  afterAll(async () => {
    for (const child of processes) await child.stop('SIGKILL');
    await nats?.remove();
    postgres?.remove();
  });

  it('an engine node with a new data folder and broken rules runs on the rules another node loaded', async () => {
    const env = { LEAKWATCH_POSTGRES_URL: postgres.url, LEAKWATCH_NATS_URL: nats.url, LEAKWATCH_PARTITIONS: '2' };
    const goodRules = tempDir('rules-good');
    writeFileSync(join(goodRules, 'memory.yaml'), RULE);
    const first = await startServe(['--role', 'engine', '--engine-partitions', '0-1', '--rules', goodRules, '--data-dir', tempDir('engine-a')], env);
    processes.push(first);
    const good = await rulesOf(first.url);
    expect(good.fallback).toBeNull();
    expect(await first.stop()).toBe(0);

    const brokenRules = tempDir('rules-broken');
    writeFileSync(join(brokenRules, 'memory.yaml'), BROKEN);
    const newDataDir = tempDir('engine-b');
    const second = await startServe(['--role', 'engine', '--engine-partitions', '0-1', '--rules', brokenRules, '--data-dir', newDataDir], env);
    processes.push(second);
    expect(second.output()).toMatch(/RULES FALLBACK: the rules in .* do not load \(1 error above\); running on the last good rules \(hash [0-9a-f]{16}/);
    const status = await rulesOf(second.url);
    expect(status.hash).toBe(good.hash);
    expect(status.rules.map((rule) => rule.id)).toEqual(['direct-memory']);
    expect(status.last_reload.ok).toBe(false);
    expect(status.fallback).toMatchObject({ hash: good.hash });
    expect(status.fallback!.dir.startsWith(newDataDir)).toBe(true);
  }, 90_000);
});
