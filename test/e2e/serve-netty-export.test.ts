import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOURNAL_TEXT, loadManifest } from '../helpers/netty-fixtures.js';
import { shippedRulesWith } from '../helpers/rules-dir.js';
import { eventually, metric, startServe, type ServeProcess } from '../helpers/serve-process.js';

// Issue 4's acceptance: the real two-host Netty export (examples/netty-repro) posted to a real
// `leakwatch serve` child process with its SQLite file in a temp dir.

interface IncidentJson {
  id: string;
  host: string;
  service: string;
  category: string;
  count: number;
  pids: string[];
  fields: Record<string, unknown>;
  evidence: { category: string; count: number }[];
}

async function getJson<T>(url: string): Promise<T> {
  const response = await request(url);
  expect(response.statusCode, url).toBe(200);
  return (await response.body.json()) as T;
}

/** Everything accepted has been grouped (past the reorder window) and every open record has closed (2 s without new lines here). */
async function settled(base: string): Promise<void> {
  await eventually(async () =>
    (await metric(base, 'leakwatch_queue_records')) === 0 &&
    (await metric(base, 'leakwatch_engine_held_records')) === 0 &&
    (await metric(base, 'leakwatch_engine_open_streams')) === 0
      ? true
      : undefined,
  );
}

async function snapshot(base: string): Promise<{ incidents: IncidentJson[]; memory: unknown }> {
  const { incidents } = await getJson<{ incidents: IncidentJson[] }>(`${base}/incidents?status=all&limit=500`);
  const memory = await getJson<unknown>(`${base}/memory`);
  return { incidents, memory };
}

describe('leakwatch serve: incidents and memory from the real two-host Netty export', () => {
  let dataDir: string;
  let server: ServeProcess;
  let rules: ReturnType<typeof shippedRulesWith>;
  const body = readFileSync(JOURNAL_TEXT);
  const manifest = loadManifest();

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'leakwatch-e2e-'));
    rules = shippedRulesWith({ expire_after: '2s' });
    server = await startServe(['--data-dir', dataDir, '--rules', rules.dir, '--log-level', 'info']);
  });

  afterAll(async () => {
    await server?.stop('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    rules.remove();
  });

  let first: Awaited<ReturnType<typeof snapshot>>;

  it('accepts the export as text and shows per host exactly the three incidents, with evidence', async () => {
    const response = await request(`${server.url}/ingest`, { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
    expect(response.statusCode).toBe(200);
    expect(await response.body.json()).toEqual({ accepted: manifest.journal_line_count, malformed: 0, without_text: 0 });
    await settled(server.url);
    first = await snapshot(server.url);

    for (const host of Object.values(manifest.hosts)) {
      const mine = first.incidents.filter((incident) => incident.host === host.host);
      expect(mine.map((incident) => incident.category).sort()).toEqual(Object.keys(host.expected_incidents).sort());
      for (const incident of mine) {
        expect(incident.count).toBe(host.expected_incidents[incident.category]);
        expect(incident.pids).toEqual([host.pid]);
        expect(incident.service).toBe(host.service);
      }
      const oodm = host.records.find((record) => record.category === 'direct-memory-exhausted')!;
      const direct = mine.find((incident) => incident.category === 'direct-memory-exhausted')!;
      expect(direct.fields).toMatchObject({ used_bytes: oodm.used_bytes, max_bytes: oodm.max_bytes, requested_bytes: oodm.requested_bytes });
      // The seed thread's question: were there leak reports and unhandled resets before it ran out?
      const evidence = Object.fromEntries(direct.evidence.map((entry) => [entry.category, entry.count]));
      expect(evidence).toEqual({ 'buffer-leak': 1, 'exception-caught-at-tail': 1 });
      // Evidence looks back only: the leak came first, the reset second (the linkerd headers' ms
      // order them although journald's short times share one second).
      const evidenceOf = (category: string): Record<string, number> =>
        Object.fromEntries(mine.find((i) => i.category === category)!.evidence.map((entry) => [entry.category, entry.count]));
      expect(evidenceOf('buffer-leak')).toEqual({});
      expect(evidenceOf('exception-caught-at-tail')).toEqual({ 'buffer-leak': 1 });
    }
    expect(first.incidents).toHaveLength(6);
  });

  it('/memory shows each process used, max and ratio as logged', async () => {
    const memory = first.memory as { processes: { host: string; pid: string; used_bytes: number; max_bytes: number; ratio: number }[] };
    for (const host of Object.values(manifest.hosts)) {
      const oodm = host.records.find((record) => record.category === 'direct-memory-exhausted')!;
      const process = memory.processes.find((p) => p.host === host.host && p.pid === host.pid);
      expect(process).toMatchObject({ used_bytes: oodm.used_bytes, max_bytes: oodm.max_bytes });
      expect(process!.ratio).toBeCloseTo(oodm.used_bytes! / oodm.max_bytes!, 6);
    }
  });

  it('posting the same body again changes nothing', async () => {
    const response = await request(`${server.url}/ingest`, { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
    expect(response.statusCode).toBe(200);
    await response.body.dump();
    await settled(server.url);
    expect(await snapshot(server.url)).toEqual(first);
  });

  it('after kill -9 and a restart everything is the same', async () => {
    expect(await server.stop('SIGKILL')).toBeNull();
    server = await startServe(['--data-dir', dataDir, '--rules', rules.dir]);
    expect(await snapshot(server.url)).toEqual(first);
  });
});
