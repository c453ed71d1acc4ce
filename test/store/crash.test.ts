import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IncidentService } from '../../src/incidents/service.js';
import { DB_FILE_NAME, SqliteStore } from '../../src/store/sqlite-store.js';

/*
 * A real crash: a child node process ingests batches through the compiled store and incident
 * service, printing each committed batch number, and is killed with SIGKILL while it writes.
 * The store and service are compiled on their own (not the whole tree) into a temp dir so other
 * modules being edited cannot break this test; node_modules is linked in for better-sqlite3.
 */

const ROOT = resolve(import.meta.dirname, '../..');
const BATCH = 40;
const HOSTS = 7;

const CHILD = `
import { SqliteStore } from './dist/store/sqlite-store.js';
import { IncidentService } from './dist/incidents/service.js';
import { batch } from './batch.mjs';
const store = new SqliteStore(process.argv[2]);
const incidents = new IncidentService(store, { eventsPerIncident: 1000000 });
for (let b = 0; b < 100000; b++) {
  const result = incidents.ingest(batch(b));
  if (result.inserted !== ${BATCH}) throw new Error('batch ' + b + ' inserted ' + result.inserted);
  process.stdout.write('committed ' + b + '\\n');
}
`;

// Events in the engine's LeakEvent shape; the text is the seed thread's OODM line (linkerd#1690).
const BATCH_MODULE = `
const T0 = Date.parse('2017-11-01T16:59:32.962Z');
export function batch(b) {
  const events = [];
  for (let i = 0; i < ${BATCH}; i++) {
    const host = 'lb-' + ((b * ${BATCH} + i) % ${HOSTS});
    const rule = i % 2 ? 'netty-direct-memory-exhausted' : 'netty-buffer-leak';
    events.push({
      id: 'b' + b + '-e' + i, timestamp: new Date(T0 + b * 1000 + i).toISOString(),
      host, service: 'linkerd', pid: String(5000 + (i % 3)), rule, rule_version: 1,
      category: i % 2 ? 'direct-memory-exhausted' : 'buffer-leak', severity: i % 5 ? 'error' : 'critical', tags: [],
      message: 'io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 1048576 byte(s) of direct memory (used: 1037041958, max: 1037959168)',
      text: 'io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 1048576 byte(s) of direct memory (used: 1037041958, max: 1037959168)\\nat io.netty.util.internal.PlatformDependent.incrementMemoryCounter(',
      line_count: 2, truncated: false, exception: null, causes: [],
      fields: { used_bytes: 1037041958, max_bytes: 1037959168, requested_bytes: 1048576 },
      incident_key: rule + '|' + host + '|linkerd', incident_id: null, annotations: { summary: host + ' linkerd: direct memory' },
    });
  }
  return events;
}
`;

let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'leakwatch-crash-'));
  symlinkSync(join(ROOT, 'node_modules'), join(work, 'node_modules'), 'dir');
  writeFileSync(join(work, 'package.json'), '{"type":"module"}');
  writeFileSync(join(work, 'child.mjs'), CHILD);
  writeFileSync(join(work, 'batch.mjs'), BATCH_MODULE);
  execFileSync(
    process.execPath,
    [
      join(ROOT, 'node_modules/typescript/bin/tsc'),
      '--outDir', join(work, 'dist'), '--rootDir', join(ROOT, 'src'),
      '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2023', '--lib', 'ES2023,ES2024.String', '--types', 'node',
      '--strict', '--skipLibCheck', '--esModuleInterop', '--ignoreConfig',
      join(ROOT, 'src/store/sqlite-store.ts'), join(ROOT, 'src/incidents/service.ts'),
    ],
    { cwd: ROOT, stdio: 'pipe' },
  );
  expect(existsSync(join(work, 'dist/store/sqlite-store.js'))).toBe(true);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function runAndKill(dataDir: string, killAfterBatch: number): Promise<{ lastReported: number; signal: NodeJS.Signals | null }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [join(work, 'child.mjs'), dataDir], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    let lastReported = -1;
    let stderr = '';
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        const match = /^committed (\d+)$/.exec(line);
        if (match) lastReported = Number(match[1]);
      }
      if (lastReported >= killAfterBatch && child.exitCode === null && !child.killed) child.kill('SIGKILL');
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`child exited with ${code}: ${stderr}`));
      else resolvePromise({ lastReported, signal });
    });
  });
}

describe('store after kill -9', () => {
  it('keeps every committed batch whole and the incident counts consistent', async () => {
    const dataDir = join(work, 'data');
    const { lastReported, signal } = await runAndKill(dataDir, 60);
    expect(signal).toBe('SIGKILL');
    expect(lastReported).toBeGreaterThanOrEqual(60);

    const raw = new Database(join(dataDir, DB_FILE_NAME));
    try {
      expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
      const perBatch = raw
        .prepare("SELECT CAST(substr(id, 2, instr(id, '-') - 2) AS INTEGER) AS batch, COUNT(*) AS n FROM events GROUP BY batch ORDER BY batch")
        .all() as { batch: number; n: number }[];
      // Batches form a prefix 0..K-1, each complete: none half-written, none missing that was reported.
      expect(perBatch.every((row, index) => row.batch === index && row.n === BATCH)).toBe(true);
      expect(perBatch.length).toBeGreaterThanOrEqual(lastReported + 1);
      const events = raw.prepare('SELECT COUNT(*) FROM events').pluck().get() as number;
      const counted = raw.prepare('SELECT SUM(count) FROM incidents').pluck().get() as number;
      expect(counted).toBe(events);
      expect(raw.prepare('SELECT COUNT(*) FROM incidents').pluck().get()).toBe(2 * HOSTS);
    } finally {
      raw.close();
    }

    // Restarted, the service sees the stored batches as duplicates and accepts the rest once.
    const store = new SqliteStore(dataDir);
    try {
      const incidents = new IncidentService(store, { eventsPerIncident: 1_000_000 });
      const { batch } = (await import(join(work, 'batch.mjs'))) as { batch: (b: number) => Parameters<IncidentService['ingest']>[0] };
      let duplicates = 0;
      let inserted = 0;
      for (let b = 0; b <= lastReported + 5; b++) {
        const result = incidents.ingest(batch(b));
        duplicates += result.duplicates;
        inserted += result.inserted;
      }
      expect(duplicates % BATCH).toBe(0);
      expect(duplicates).toBeGreaterThanOrEqual((lastReported + 1) * BATCH);
      expect(duplicates + inserted).toBe((lastReported + 6) * BATCH);
      const total = incidents.list({ status: 'all', limit: 500 }).incidents.reduce((sum, i) => sum + i.count, 0);
      expect(total).toBe((lastReported + 6) * BATCH);
    } finally {
      store.close();
    }
  });
});
