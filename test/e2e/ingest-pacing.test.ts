import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServe, type ServeProcess } from '../helpers/serve-process.js';

// A shipper faster than the engine is slowed down by the answers to its bodies once the engine
// queue is past a quarter of a capacity, rather than filling the queue and meeting 503s.

/** A Vector-like JSON array body of `lines` records of one process. */
function body(index: number, lines: number): string {
  const records = Array.from({ length: lines }, (_, line) => ({
    host: `pace-${index}`,
    SYSLOG_IDENTIFIER: 'linkerd',
    _PID: '4242',
    message: `I 1201 10:00:${String(line % 60).padStart(2, '0')}.000 UTC THREAD1: body ${index} line ${line}`,
  }));
  return JSON.stringify(records);
}

function counter(metrics: string, name: string): number {
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics);
  if (match === null) throw new Error(`${name} is not in /metrics`);
  return Number(match[1]);
}

describe('ingest paces its answers to the engine', () => {
  let dataDir: string;
  let server: ServeProcess;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'leakwatch-pace-'));
    // Crowded past 500 records: every body of 600 is, until the engine takes it.
    server = await startServe(['--data-dir', dataDir, '--queue-records', '2000']);
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers 200 to every body once the engine has taken enough, never 503 below the caps, and counts the waits', async () => {
    const post = async (index: number): Promise<{ status: number; answer: unknown }> => {
      const response = await request(`${server.url}/ingest`, { method: 'POST', body: body(index, 600), headers: { 'content-type': 'application/json' } });
      return { status: response.statusCode, answer: await response.body.json() };
    };
    const answers = await Promise.all([0, 1, 2].map(post));
    answers.push(...(await Promise.all([3, 4, 5].map(post))));
    for (const { status, answer } of answers) {
      expect(status).toBe(200);
      expect(answer).toEqual({ accepted: 600, malformed: 0, without_text: 0 });
    }
    const metrics = await (await request(`${server.url}/metrics`)).body.text();
    expect(counter(metrics, 'leakwatch_ingest_records_total')).toBe(3600);
    expect(counter(metrics, 'leakwatch_ingest_refused_batches_total')).toBe(0);
    const paced = counter(metrics, 'leakwatch_ingest_paced_answers_total');
    expect(paced).toBeGreaterThanOrEqual(1);
    expect(paced).toBeLessThanOrEqual(6);
    // Each wait is bounded (2 s), and these end as soon as the engine takes a batch.
    expect(counter(metrics, 'leakwatch_ingest_paced_seconds_total')).toBeLessThan(2 * paced);
    expect(counter(metrics, 'leakwatch_queue_records')).toBe(0);
  });
});
