/**
 * A count threshold holds across restarts of a real `leakwatch serve`: the shipped
 * netty-buffer-leak rule raises the third leak report of a process within an hour to `error`,
 * whether the server was stopped (SIGTERM) or killed (-9) between the reports. The windows live in
 * memory; at start-up they are filled from the stored events, and the journal replay after a kill
 * does not count a report twice.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DB_FILE_NAME } from '../../src/store/sqlite-store.js';
import { JOURNAL_TEXT } from '../helpers/netty-fixtures.js';
import { shippedRulesWith } from '../helpers/rules-dir.js';
import { eventually, startServe, type ServeProcess } from '../helpers/serve-process.js';

// edge-b's leak report in the real Netty export (test/fixtures/netty, genuine Netty 4.1.48 output).
const LEAK_LINE = readFileSync(JOURNAL_TEXT, 'utf8')
  .split('\n')
  .find((line) => line.startsWith('Nov 01 11:59:32 edge-b linkerd[4202]: ERROR') && line.includes('LEAK: ByteBuf.release()')) as string;

/** The leak report `minute` minutes after 12:00, and a line of the same process that closes it. */
function leakReportAt(minute: number): string {
  const clock = `12:${String(minute).padStart(2, '0')}`;
  const report = LEAK_LINE.replace('Nov 01 11:59:32', `Nov 01 ${clock}:32`).replace('1101 11:59:32.094', `1101 ${clock}:32.094`);
  return `${report}\nNov 01 ${clock}:40 edge-b linkerd[4202]: I 1101 ${clock}:40.000 UTC THREAD1: still serving\n`;
}

async function post(base: string, body: string): Promise<void> {
  const response = await request(`${base}/ingest`, { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
  expect(response.statusCode).toBe(200);
  await response.body.dump();
}

async function leakReportsStored(base: string, count: number): Promise<void> {
  await eventually(async () => {
    const { incidents } = (await (await request(`${base}/incidents?status=all&rule=netty-buffer-leak`)).body.json()) as { incidents: Array<{ count: number }> };
    return incidents.reduce((sum, incident) => sum + incident.count, 0) >= count ? true : undefined;
  });
}

function severities(dataDir: string): string[] {
  const db = new Database(join(dataDir, DB_FILE_NAME), { readonly: true });
  try {
    const bodies = db.prepare("SELECT body FROM events WHERE json_extract(body, '$.rule') = 'netty-buffer-leak' ORDER BY time").pluck().all() as string[];
    return bodies.map((body) => (JSON.parse(body) as { severity: string }).severity);
  } finally {
    db.close();
  }
}

describe('count thresholds across restarts of serve', () => {
  let dataDir: string;
  let rules: ReturnType<typeof shippedRulesWith>;
  let server: ServeProcess | undefined;

  beforeAll(() => {
    expect(LEAK_LINE).toBeDefined();
    dataDir = mkdtempSync(join(tmpdir(), 'leakwatch-count-restart-'));
    // Records wait for nothing but the next record of their process: each report is stored when its closing line comes.
    rules = shippedRulesWith({ reorder_window: '0s', expire_after: '10m' });
  });

  afterAll(async () => {
    await server?.stop('SIGKILL');
    rules.remove();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('the third leak report within the hour is an error after a stop, and so is the fourth after a kill -9', async () => {
    const args = ['--data-dir', dataDir, '--rules', rules.dir];
    server = await startServe(args);
    await post(server.url, leakReportAt(0));
    await post(server.url, leakReportAt(10));
    await leakReportsStored(server.url, 2);
    expect(await server.stop('SIGTERM')).toBe(0);

    server = await startServe(args);
    expect(server.output()).toContain('count thresholds: stored events counted again');
    await post(server.url, leakReportAt(20));
    await leakReportsStored(server.url, 3);
    expect(await server.stop('SIGKILL')).toBeNull();

    server = await startServe(args);
    await post(server.url, leakReportAt(30));
    await leakReportsStored(server.url, 4);
    expect(await server.stop('SIGTERM')).toBe(0);
    server = undefined;

    // The reports at 12:00 and 12:10 are warnings, 12:20 and 12:30 each the third within the hour.
    expect(severities(dataDir)).toEqual(['warning', 'warning', 'error', 'error']);
  }, 60_000);
});
