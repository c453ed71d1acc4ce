import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { parse } from 'yaml';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startLeakwatch, type RunningLeakwatch } from '../helpers/in-process.js';
import { JOURNAL_JSON } from '../helpers/netty-fixtures.js';
import { eventually } from '../helpers/serve-process.js';
import { childOf, parseFluentBitClassic, parseFluentdConf, type FluentdDirective } from '../helpers/shipper-configs.js';
import { fluentBitRecord, journalDataFields, vectorRecord, type JournalEntry } from '../helpers/shipper-records.js';

// Issue 11: every example in examples/ is read as its shipper reads it, checked for a journal
// cursor kept across restarts and a disk buffer that holds the logs while leakwatch answers 503,
// and what that shipper sends with those settings is posted to a real server: the real Netty
// export, which must come out as its six incidents.
const EXAMPLES = new URL('../../examples/', import.meta.url);
const example = (name: string): string => readFileSync(new URL(name, EXAMPLES), 'utf8');

const entries: JournalEntry[] = readFileSync(JOURNAL_JSON, 'utf8')
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line) as JournalEntry);

/** Shippers send in batches; these are small enough to make several requests of the export. */
function batches<T>(items: readonly T[], size = 60): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

let server: RunningLeakwatch | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** The config's URL, on the test server: same path, the server's host and port. */
function onServer(configured: string, base: string): string {
  const url = new URL(configured);
  return `${base}${url.pathname}${url.search}`;
}

async function send(url: string, body: Buffer, headers: Record<string, string>): Promise<void> {
  const answer = await request(url, { method: 'POST', body, headers });
  expect(answer.statusCode, await answer.body.text()).toBe(200);
}

/** The export's six incidents, three per host, with the direct-memory numbers of each process. */
async function expectNettyIncidents(base: string): Promise<void> {
  const incidents = await eventually(async () => {
    const body = (await (await request(`${base}/incidents?status=all`)).body.json()) as { incidents: Array<{ host: string; category: string; fields: Record<string, unknown> }> };
    return body.incidents.length === 6 ? body.incidents : undefined;
  }, 15_000, 100);
  expect(incidents.map((incident) => `${incident.host} ${incident.category}`).sort()).toEqual([
    'edge-a buffer-leak',
    'edge-a direct-memory-exhausted',
    'edge-a exception-caught-at-tail',
    'edge-b buffer-leak',
    'edge-b direct-memory-exhausted',
    'edge-b exception-caught-at-tail',
  ]);
  const memory = incidents.filter((incident) => incident.category === 'direct-memory-exhausted').map((incident) => [incident.host, incident.fields['used_bytes'], incident.fields['max_bytes']]);
  expect(memory.sort()).toEqual([
    ['edge-a', 23409497, 24000000],
    ['edge-b', 32902793, 33554432],
  ]);
}

describe('examples/vector.yaml', () => {
  interface VectorConfig {
    data_dir: string;
    sources: Record<string, { type: string; include_units?: string[] }>;
    sinks: Record<string, { type: string; inputs: string[]; uri: string; encoding: { codec: string }; compression: string; healthcheck: { enabled: boolean; uri: string }; buffer: { type: string; max_size: number; when_full: string } }>;
  }
  const config = parse(example('vector.yaml')) as VectorConfig;
  const sink = config.sinks['leakwatch']!;

  it('keeps the journald cursor and a disk buffer that blocks rather than drops', () => {
    expect(config.data_dir).toMatch(/^\/var\/lib\//);
    expect(config.sources[sink.inputs[0]!]).toMatchObject({ type: 'journald', include_units: ['linkerd.service'] });
    // Vector refuses a disk buffer under 268435488 bytes.
    expect(sink.buffer).toMatchObject({ type: 'disk', when_full: 'block' });
    expect(sink.buffer.max_size).toBeGreaterThanOrEqual(268435488);
  });

  it('what its http sink sends (JSON array, gzip) becomes the six incidents; its healthcheck gets 200', async () => {
    server = await startLeakwatch('example-vector');
    expect(sink).toMatchObject({ type: 'http', encoding: { codec: 'json' }, compression: 'gzip', healthcheck: { enabled: true } });
    const health = await request(onServer(sink.healthcheck.uri, server.base), { method: 'HEAD' });
    expect(health.statusCode).toBe(200);
    await health.body.dump();
    for (const batch of batches(entries.map(vectorRecord))) {
      await send(onServer(sink.uri, server.base), gzipSync(JSON.stringify(batch)), { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    }
    await expectNettyIncidents(server.base);
  });
});

describe('examples/fluent-bit.conf', () => {
  const sections = parseFluentBitClassic(example('fluent-bit.conf'));
  const only = (name: string) => {
    const found = sections.filter((section) => section.name === name);
    expect(found, name).toHaveLength(1);
    return found[0]!.entries;
  };

  it('keeps the journald cursor (DB), buffers on disk and retries without a limit', () => {
    const service = only('SERVICE');
    const input = only('INPUT');
    const output = only('OUTPUT');
    expect(service.get('storage.path')).toMatch(/^\/var\/lib\//);
    expect(input.get('name')).toBe('systemd');
    expect(input.get('db')).toMatch(/\.db$/);
    expect(input.get('storage.type')).toBe('filesystem');
    expect(output.get('storage.total_limit_size')).toMatch(/^\d+[KMG]$/);
    expect(['False', 'no_limits']).toContain(output.get('retry_limit'));
  });

  it('what out_http sends (Format json: a JSON array with date, gzip) becomes the six incidents', async () => {
    server = await startLeakwatch('example-fluent-bit');
    const output = only('OUTPUT');
    expect(output.get('format')).toBe('json');
    expect(output.get('compress')).toBe('gzip');
    const url = onServer(`http://${output.get('host')}:${output.get('port')}${output.get('uri')}`, server.base);
    for (const batch of batches(entries.map(fluentBitRecord))) {
      await send(url, gzipSync(JSON.stringify(batch)), { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    }
    await expectNettyIncidents(server.base);
  });
});

describe('examples/fluentd.conf', () => {
  const text = example('fluentd.conf');
  const directives = parseFluentdConf(text);
  const source = directives.find((directive) => directive.name === 'source')!;
  const match = directives.find((directive) => directive.name === 'match')!;
  const param = (directive: FluentdDirective | undefined, name: string) => directive?.params.get(name);

  it('keeps the journald cursor (<storage>), buffers in files and retries 503', () => {
    expect(param(source, '@type')).toBe('systemd');
    expect(childOf(source, 'storage')?.params).toEqual(new Map([['@type', 'local'], ['path', expect.stringMatching(/^\/var\/lib\//)]]));
    expect(param(match, '@type')).toBe('http');
    expect(param(match, 'retryable_response_codes')).toMatch(/\b503\b/);
    const buffer = childOf(match, 'buffer');
    expect(param(buffer, '@type')).toBe('file');
    expect(param(buffer, 'path')).toMatch(/^\/var\/lib\//);
    expect(param(buffer, 'flush_thread_count')).toBe('1');
    expect(param(buffer, 'overflow_action')).toBe('block');
  });

  it('states the Fluentd version its options need (out_http compress: 1.17.1)', () => {
    // https://github.com/fluent/fluentd/pull/4528 added `compress` to out_http, documented for
    // v1.17.1 (https://github.com/fluent/fluentd-docs-gitbook/pull/514).
    expect(param(match, 'compress')).toBe('gzip');
    expect(text.split('\n')[0]).toMatch(/Fluentd \(≥ 1\.17\.1 for out_http's `compress gzip`/);
  });

  it('what out_http sends (NDJSON, gzip, <inject> time) becomes the six incidents', async () => {
    server = await startLeakwatch('example-fluentd');
    const inject = childOf(match, 'inject');
    expect(inject?.params.get('time_format')).toBe('%Y-%m-%dT%H:%M:%S.%6NZ');
    const timeKey = inject!.params.get('time_key')!;
    const record = (entry: JournalEntry): Record<string, unknown> => {
      const us = Number(entry['__REALTIME_TIMESTAMP']);
      const time = `${new Date(Math.floor(us / 1000)).toISOString().slice(0, -1)}${String(us % 1000).padStart(3, '0')}Z`;
      return { ...journalDataFields(entry), [timeKey]: time };
    };
    for (const batch of batches(entries.map(record))) {
      const ndjson = batch.map((item) => `${JSON.stringify(item)}\n`).join('');
      await send(onServer(param(match, 'endpoint')!, server.base), gzipSync(ndjson), { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' });
    }
    await expectNettyIncidents(server.base);
  });
});

describe('examples/curl-walkthrough.sh', () => {
  it('goes from ingest to the incidents, one with its evidence, an ack, memory and rules, with a token', async () => {
    server = await startLeakwatch('example-curl', { token: 'walkthrough-token' });
    // Not spawnSync: the server runs in this process and must answer while the script runs.
    const run = await promisify(execFile)('bash', [new URL('curl-walkthrough.sh', EXAMPLES).pathname], {
      encoding: 'utf8',
      env: { ...process.env, LEAKWATCH_URL: server.base, LEAKWATCH_TOKEN: 'walkthrough-token' },
      timeout: 60_000,
    });
    expect(run.stdout).toContain('{"accepted":275,"malformed":0,"without_text":0}');
    expect(run.stdout.match(/^category:[a-z-]+,severity:[a-z]+,status:open,host:edge-[ab]$/gm)).toHaveLength(6);
    expect(run.stdout).toContain('"summary":"edge-b/linkerd: Netty direct memory 98.1% used (31.4 MiB of 32.0 MiB); failed to allocate 1.1 MiB"');
    expect(run.stdout).toMatch(/"evidence":\[\{"category":"buffer-leak","count":1,/);
    expect(run.stdout).toMatch(/^"acked_at":"\d{4}-/m);
    expect(run.stdout).toMatch(/^"host":"edge-a","service":"linkerd","pid":"4101","used_bytes":23409497,"max_bytes":24000000,"ratio":0\.97/m);
    expect(run.stdout).toContain(`Now open ${server.base}/ in a browser.`);
  }, 60_000);
});
