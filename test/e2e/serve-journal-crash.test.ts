import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEED_OODM_NUMBERS, SEED_OODM_RECORD } from '../helpers/seed-lines.js';
import { eventually, startServe, type ServeProcess } from '../helpers/serve-process.js';

// DESIGN: ingest answers 200 "once the batch is durably recorded". A record whose trace is still
// open (its stream has not been silent for 2 s yet) when the process is killed must not be lost.

interface Incident {
  category: string;
  count: number;
  fields: Record<string, number>;
}

async function incidents(base: string): Promise<Incident[]> {
  const response = await request(`${base}/incidents?status=all`);
  return ((await response.body.json()) as { incidents: Incident[] }).incidents;
}

function journalRows(dataDir: string): number {
  const db = new Database(join(dataDir, 'leakwatch.db'), { readonly: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM ingest_journal').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

const SHIPPED_RULES = fileURLToPath(new URL('../../rules/', import.meta.url));

describe('kill -9 while a record is still being grouped', () => {
  let dataDir: string;
  let slowRulesDir: string;
  let server: ServeProcess;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'leakwatch-journal-'));
    // The shipped rules with a 10-minute silence: however slow the machine, the record cannot have
    // been closed by silence before the kill. The restart uses the shipped rules (2 s).
    slowRulesDir = mkdtempSync(join(tmpdir(), 'leakwatch-journal-rules-'));
    cpSync(SHIPPED_RULES, slowRulesDir, { recursive: true });
    const groupers = join(slowRulesDir, 'groupers.yaml');
    const slow = readFileSync(groupers, 'utf8').replace(/^(\s+)silence: 2s$/m, '$1silence: 10m');
    expect(slow).toContain('silence: 10m');
    writeFileSync(groupers, slow);
    server = await startServe(['--data-dir', dataDir, '--rules', slowRulesDir]);
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(slowRulesDir, { recursive: true, force: true });
  });

  it('replays the acknowledged batch after a restart, and the journal empties once it is classified', async () => {
    const response = await request(`${server.url}/ingest`, { method: 'POST', body: SEED_OODM_RECORD, headers: { 'content-type': 'text/plain' } });
    expect(response.statusCode).toBe(200);
    await response.body.dump();
    // The group is still open (it waits for silence), so nothing has been classified yet.
    expect(await server.stop('SIGKILL')).toBeNull();
    expect(journalRows(dataDir)).toBe(1);

    server = await startServe(['--data-dir', dataDir, '--rules', SHIPPED_RULES]);
    const metrics = await (await request(`${server.url}/metrics`)).body.text();
    expect(metrics).toMatch(/^leakwatch_journal_replayed_batches 1$/m);
    const found = await eventually(async () => (await incidents(server.url)).find((i) => i.category === 'direct-memory-exhausted'));
    expect(found.count).toBe(1);
    expect(found.fields).toMatchObject(SEED_OODM_NUMBERS);
    await eventually(async () => (journalRows(dataDir) === 0 ? true : undefined));

    // A second crash now replays nothing and changes nothing.
    expect(await server.stop('SIGKILL')).toBeNull();
    server = await startServe(['--data-dir', dataDir, '--rules', SHIPPED_RULES]);
    expect((await incidents(server.url)).map((i) => [i.category, i.count])).toEqual([['direct-memory-exhausted', 1]]);
  });
});
