import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, DEFAULTS, renderConfigTable, resolveConfig, SETTINGS } from '../src/config.js';
import { parseBytes as rulesParseBytes, parseDuration as rulesParseDuration } from '../src/rules/units.js';

const BIN = fileURLToPath(new URL('../bin/leakwatch.js', import.meta.url));
const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

function readmeConfigTable(): string {
  const start = README.indexOf('<!-- config-table:');
  const end = README.indexOf('<!-- config-table end -->');
  expect(start, 'README has the config-table markers').toBeGreaterThan(0);
  return README.slice(README.indexOf('\n', start) + 1, end).trim();
}

describe('the settings table', () => {
  it('is what the README shows (regenerate the README table from renderConfigTable() when this fails)', () => {
    expect(readmeConfigTable()).toBe(renderConfigTable());
  });

  it('gives every setting its own flag and variable, named alike', () => {
    const flags = new Set(SETTINGS.map((setting) => setting.flag));
    const envs = new Set(SETTINGS.map((setting) => setting.env));
    expect(flags.size).toBe(SETTINGS.length);
    expect(envs.size).toBe(SETTINGS.length);
    for (const setting of SETTINGS) expect(setting.env).toMatch(/^LEAKWATCH_[A-Z_]+$/);
  });

  it('--help lists every flag with its variable', () => {
    const run = spawnSync(process.execPath, [BIN, 'serve', '--help'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    const flat = run.stdout.replace(/\s+/g, ' ');
    for (const setting of SETTINGS) {
      expect(flat).toContain(`${setting.flag} <${setting.placeholder}>`);
      expect(flat).toContain(setting.env);
    }
  });
});

describe('resolveConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'leakwatch-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('defaults come from the table', () => {
    expect(resolveConfig({}, {})).toEqual(DEFAULTS);
    expect(DEFAULTS.maxBodyBytes).toBe(32 * 1024 * 1024);
    expect(DEFAULTS.bodyTimeoutMs).toBe(10_000);
  });

  it('flags win over the environment, which wins over the defaults', () => {
    expect(resolveConfig({ maxRecords: '10' }, { LEAKWATCH_MAX_RECORDS: '20' }).maxRecords).toBe(10);
    expect(resolveConfig({}, { LEAKWATCH_MAX_RECORDS: '20', LEAKWATCH_QUEUE_BYTES: '1 GiB' })).toMatchObject({ maxRecords: 20, queueBytes: 1024 ** 3 });
  });

  it('names the flag or variable of a bad value', () => {
    expect(() => resolveConfig({ maxBodyBytes: 'lots' }, {})).toThrow(/--max-body-bytes: expected a size/);
    expect(() => resolveConfig({}, { LEAKWATCH_BODY_TIMEOUT: '10' })).toThrow(/LEAKWATCH_BODY_TIMEOUT: expected a duration/);
    expect(() => resolveConfig({ maxDepth: '100000' }, {})).toThrow(/--max-depth: must be between 2 and 1000/);
  });

  it('reads tokens from files, so that they stay out of ps', () => {
    const admin = join(dir, 'admin');
    const reader = join(dir, 'reader');
    writeFileSync(admin, 's3cret\n');
    writeFileSync(reader, 'r3ader');
    expect(resolveConfig({ tokenFile: admin }, { LEAKWATCH_READ_TOKEN_FILE: reader })).toMatchObject({ token: 's3cret', readToken: 'r3ader' });
    expect(resolveConfig({}, { LEAKWATCH_TOKEN: 'from-env' }).token).toBe('from-env');
  });

  it('refuses a token given twice, an unreadable file, and a read token equal to the admin one', () => {
    const admin = join(dir, 'admin2');
    writeFileSync(admin, 'x');
    expect(() => resolveConfig({ token: 'a', tokenFile: admin }, {})).toThrow(ConfigError);
    expect(() => resolveConfig({ tokenFile: join(dir, 'missing') }, {})).toThrow(/--token-file: cannot read .*missing: ENOENT/);
    expect(() => resolveConfig({ token: 'same', readToken: 'same' }, {})).toThrow(/must differ/);
    expect(() => resolveConfig({ readToken: 'only' }, {})).toThrow(/needs an admin token/);
  });

  it('direct-memory limits per service or host/service, repeatable or comma-separated; the warning ratio as a percentage or a share', () => {
    expect(DEFAULTS).toMatchObject({ directMemoryMax: [], directMemoryHorizonMs: 24 * 3_600_000, directMemoryRatio: 0.9, directMemoryWindowMs: 6 * 3_600_000 });
    expect(resolveConfig({ directMemoryMax: ['linkerd=1GiB,namerd=512MiB', 'edge-7/linkerd=2g', '*=768MiB'] }, {}).directMemoryMax).toEqual([
      { service: 'linkerd', bytes: 1024 ** 3 },
      { service: 'namerd', bytes: 512 * 1024 ** 2 },
      { host: 'edge-7', service: 'linkerd', bytes: 2 * 1024 ** 3 },
      { service: '*', bytes: 768 * 1024 ** 2 },
    ]);
    expect(resolveConfig({}, { LEAKWATCH_DIRECT_MEMORY_MAX: 'linkerd=1GiB namerd=512MiB', LEAKWATCH_DIRECT_MEMORY_RATIO: '0.8' })).toMatchObject({
      directMemoryMax: [{ service: 'linkerd', bytes: 1024 ** 3 }, { service: 'namerd', bytes: 512 * 1024 ** 2 }],
      directMemoryRatio: 0.8,
    });
    expect(() => resolveConfig({ directMemoryMax: 'linkerd' }, {})).toThrow(/--direct-memory-max: "linkerd" is not SERVICE=SIZE/);
    expect(() => resolveConfig({ directMemoryMax: 'linkerd=lots' }, {})).toThrow(/--direct-memory-max: .*not a size/);
    expect(() => resolveConfig({ directMemoryRatio: '120%' }, {})).toThrow(/--direct-memory-ratio: expected a share/);
  });

  it('scale-out roles need NATS and PostgreSQL, and engine partitions that exist', () => {
    const shared = { LEAKWATCH_NATS_URL: 'nats://nats:4222', LEAKWATCH_POSTGRES_URL: 'postgresql://db/leakwatch' };
    expect(resolveConfig({}, {}).role).toBe('single');
    expect(() => resolveConfig({ role: 'ingest' }, {})).toThrow(/--role ingest needs --nats-url/);
    expect(() => resolveConfig({ role: 'engine' }, { LEAKWATCH_NATS_URL: 'nats://nats:4222' })).toThrow(/--role engine needs --postgres-url/);
    expect(() => resolveConfig({ role: 'leader' }, shared)).toThrow(/--role: expected one of single, ingest, engine/);
    expect(resolveConfig({ role: 'engine', enginePartitions: '0-2,7,5-5' }, { ...shared, LEAKWATCH_PARTITIONS: '8' }).enginePartitions).toEqual([0, 1, 2, 5, 7]);
    expect(() => resolveConfig({ role: 'engine', enginePartitions: '0-16' }, shared)).toThrow(/partition 16 does not exist \(--partitions 16 numbers them 0-15\)/);
    expect(() => resolveConfig({ role: 'engine', enginePartitions: '3-1' }, shared)).toThrow(/3-1 ends before it starts/);
    expect(() => resolveConfig({ role: 'ingest', enginePartitions: '0-3' }, shared)).toThrow(/--engine-partitions is for --role engine/);
  });
});

describe('one grammar for sizes and durations (config and rules)', () => {
  it.each([
    ['32MiB', 32 * 1024 ** 2],
    ['1.5 MB', 1.5 * 1024 ** 2],
    ['4g', 4 * 1024 ** 3],
    ['512k', 512 * 1024],
    ['1048576', 1048576],
  ])('%s', (text, bytes) => {
    expect(rulesParseBytes(text)).toBe(bytes);
    expect(resolveConfig({ maxInflightBytes: text }, {}).maxInflightBytes).toBe(bytes);
  });

  it('durations', () => {
    expect(rulesParseDuration('30m')).toBe(1_800_000);
    expect(resolveConfig({ resolveAfterMs: '30m' }, {}).resolveAfterMs).toBe(1_800_000);
    expect(rulesParseDuration('2 s')).toBe(2000);
    expect(rulesParseDuration('soon')).toBeNull();
  });
});
