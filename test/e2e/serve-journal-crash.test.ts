import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { readJournalDir } from '../../src/store/segment-journal.js';
import { JOURNAL_DIR_NAME } from '../../src/store/sqlite-store.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEED_OODM_NUMBERS, SEED_OODM_RECORD } from '../helpers/seed-lines.js';
import { shippedRulesWith } from '../helpers/rules-dir.js';
import { eventually, startServe, type ServeProcess } from '../helpers/serve-process.js';

// The README: a 200 means the batch is in the ingest journal. A record whose trace is still
// open (its stream has not received anything for long) when the process is killed must not be lost.

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
  return readJournalDir(join(dataDir, JOURNAL_DIR_NAME)).length;
}


describe('kill -9 while a record is still being grouped', () => {
  let dataDir: string;
  let slowRules: ReturnType<typeof shippedRulesWith>;
  let quickRules: ReturnType<typeof shippedRulesWith>;
  let server: ServeProcess;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'leakwatch-journal-'));
    // The first run waits 10 minutes before closing a quiet stream's record: however slow the
    // machine, the record cannot have been closed before the kill. The restart closes it after 2 s.
    slowRules = shippedRulesWith({ expire_after: '10m' });
    quickRules = shippedRulesWith({ expire_after: '2s' });
    server = await startServe(['--data-dir', dataDir, '--rules', slowRules.dir]);
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    slowRules.remove();
    quickRules.remove();
  });

  it('replays the acknowledged batch after a restart, and the journal empties once it is classified', async () => {
    const response = await request(`${server.url}/ingest`, { method: 'POST', body: SEED_OODM_RECORD, headers: { 'content-type': 'text/plain' } });
    expect(response.statusCode).toBe(200);
    await response.body.dump();
    // The group is still open (it waits for silence), so nothing has been classified yet.
    expect(await server.stop('SIGKILL')).toBeNull();
    expect(journalRows(dataDir)).toBe(1);

    server = await startServe(['--data-dir', dataDir, '--rules', quickRules.dir]);
    const metrics = await (await request(`${server.url}/metrics`)).body.text();
    expect(metrics).toMatch(/^leakwatch_journal_replayed_batches 1$/m);
    const found = await eventually(async () => (await incidents(server.url)).find((i) => i.category === 'direct-memory-exhausted'));
    expect(found.count).toBe(1);
    expect(found.fields).toMatchObject(SEED_OODM_NUMBERS);
    await eventually(async () => (journalRows(dataDir) === 0 ? true : undefined));

    // A second crash now replays nothing and changes nothing.
    expect(await server.stop('SIGKILL')).toBeNull();
    server = await startServe(['--data-dir', dataDir, '--rules', quickRules.dir]);
    expect((await incidents(server.url)).map((i) => [i.category, i.count])).toEqual([['direct-memory-exhausted', 1]]);
  });
});
