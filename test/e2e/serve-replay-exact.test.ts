/**
 * kill -9 after a trace was stored but while its batch is still journaled (another record in that
 * batch is still open): the replay must not feed the trace's tail again without its head, which
 * would make a new headless group, an extra OODM event and a memory sample of the wrong time.
 * Real `leakwatch serve` child processes on one SQLite file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { journalCheckpointOf } from '../../src/store/rows.js';
import { readJournalDir } from '../../src/store/segment-journal.js';
import { DB_FILE_NAME, JOURNAL_DIR_NAME } from '../../src/store/sqlite-store.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEED_OODM_RECORD } from '../helpers/seed-lines.js';
import { shippedRulesWith } from '../helpers/rules-dir.js';
import { eventually, startServe, type ServeProcess } from '../helpers/serve-process.js';

interface Incident {
  category: string;
  count: number;
}

async function state(base: string): Promise<{ incidents: Array<[string, number]>; samples: number }> {
  const { incidents } = (await (await request(`${base}/incidents?status=all`)).body.json()) as { incidents: Incident[] };
  const { processes } = (await (await request(`${base}/memory`)).body.json()) as { processes: Array<{ samples: unknown[] }> };
  return {
    incidents: incidents.map((incident): [string, number] => [incident.category, incident.count]).sort(),
    samples: processes.reduce((sum, process) => sum + process.samples.length, 0),
  };
}

/** The last journal checkpoint: how far the engine had been fed, and how many records were still open. */
function checkpoint(dataDir: string): { pushedThrough: number; pending: number } | undefined {
  const db = new Database(join(dataDir, DB_FILE_NAME), { readonly: true });
  try {
    const text = db.prepare("SELECT value FROM meta WHERE key = 'journal_checkpoint'").pluck().get() as string | undefined;
    if (text === undefined) return undefined;
    const stored = journalCheckpointOf(text);
    return { pushedThrough: stored.pushedThrough, pending: stored.pending.length };
  } finally {
    db.close();
  }
}

function journalSeqs(dataDir: string): number[] {
  return readJournalDir(join(dataDir, JOURNAL_DIR_NAME)).map((batch) => batch.seq);
}

async function post(base: string, body: string): Promise<void> {
  const response = await request(`${base}/ingest`, { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
  expect(response.statusCode).toBe(200);
  await response.body.dump();
}

describe('kill -9 replay is exact', () => {
  let dataDir: string;
  let rules: ReturnType<typeof shippedRulesWith>;
  let server: ServeProcess;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'leakwatch-replay-'));
    // Records wait for nothing but a next record: no reordering delay, and no expiry during the test.
    rules = shippedRulesWith({ reorder_window: '0s', expire_after: '10m' });
    server = await startServe(['--data-dir', dataDir, '--rules', rules.dir]);
  });

  afterAll(async () => {
    await server?.stop('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    rules.remove();
  });

  it('a stored trace whose tail shares a journaled batch with an open record is not counted twice', async () => {
    const [header, ...rest] = SEED_OODM_RECORD.split('\n');
    // Batch 1: the trace's header alone. Batch 2: the rest of the trace, then an INFO line that
    // closes it (the trace is stored) and stays open itself (so batch 2 stays journaled).
    await post(server.url, `${header}\n`);
    await post(server.url, `${rest.join('\n')}\nNov 01 11:59:40 web-1 linkerd[5699]: I 1101 11:59:40.000 CDT THREAD1: still serving\n`);
    const before = await eventually(async () => {
      const now = await state(server.url);
      // Stored, and checkpointed: both batches fed, only the INFO line still open.
      const at = checkpoint(dataDir);
      return now.incidents.length === 1 && at?.pushedThrough === 2 && at.pending === 1 ? { now, seqs: journalSeqs(dataDir) } : undefined;
    });
    expect(before.now).toEqual({ incidents: [['direct-memory-exhausted', 1]], samples: 1 });
    // Batch 2 is kept; batch 1 may be kept too (its segment file holds batch 2), all of it done.
    expect(before.seqs).toContain(2);

    expect(await server.stop('SIGKILL')).toBeNull();
    server = await startServe(['--data-dir', dataDir, '--rules', rules.dir]);
    const metrics = await (await request(`${server.url}/metrics`)).body.text();
    expect(metrics).toMatch(/^leakwatch_journal_replayed_batches 1$/m);
    // The trace's three lines in batch 2 (and its header, when batch 1 is still there) were done;
    // only the open INFO line is fed again.
    const done = before.seqs.includes(1) ? 4 : 3;
    expect(metrics).toMatch(new RegExp(`^leakwatch_journal_replay_skipped_records ${done}$`, 'm'));
    // Give a headless fragment every chance to show up: close everything the replay opened.
    await server.stop('SIGTERM');
    server = await startServe(['--data-dir', dataDir, '--rules', rules.dir]);
    expect(await state(server.url)).toEqual(before.now);
    expect(journalSeqs(dataDir)).toEqual([]);
  });
});
