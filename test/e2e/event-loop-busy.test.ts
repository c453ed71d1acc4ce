import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, metric, startServe, type ServeProcess } from '../helpers/serve-process.js';

// leakwatch_event_loop_busy_seconds_total: the main thread's running time, whose rate tells an
// operator whether the main thread is what sets the ingest rate.

/** `lines` journald-like records of one linkerd process, every fifth line a header. */
function body(lines: number): string {
  const records = Array.from({ length: lines }, (_, line) => ({
    host: 'busy-1',
    SYSLOG_IDENTIFIER: 'linkerd',
    _PID: '4242',
    message: line % 5 === 0 ? `W 1201 10:00:${String(line % 60).padStart(2, '0')}.000 UTC THREAD1: line ${line}` : `\tat io.netty.channel.AbstractChannelHandlerContext.invokeChannelRead(AbstractChannelHandlerContext.java:${line})`,
  }));
  return JSON.stringify(records);
}

describe('the main thread busy time in /metrics', () => {
  let dataDir: string;
  let server: ServeProcess;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'leakwatch-busy-'));
    server = await startServe(['--data-dir', dataDir]);
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('grows with the work the main thread does, in seconds, never faster than the clock', async () => {
    const before = await metric(server.url, 'leakwatch_event_loop_busy_seconds_total');
    const from = performance.now();
    // Starting the server (loading the rules, opening the store) kept it busy already.
    expect(before).toBeGreaterThan(0);
    for (let index = 0; index < 4; index++) {
      const response = await request(`${server.url}/ingest`, { method: 'POST', body: body(20_000), headers: { 'content-type': 'application/json' } });
      expect(response.statusCode).toBe(200);
      await response.body.dump();
    }
    await eventually(async () => ((await metric(server.url, 'leakwatch_engine_lines_total')) >= 80_000 ? true : undefined), 60_000);
    const after = await metric(server.url, 'leakwatch_event_loop_busy_seconds_total');
    const elapsed = (performance.now() - from) / 1000;
    // 80,000 lines grouped are tens of milliseconds of the main thread at least.
    expect(after - before).toBeGreaterThan(0.02);
    // One thread's running time cannot outgrow the wall clock (a figure in ms would).
    expect(after - before).toBeLessThanOrEqual(elapsed + 0.05);
  });
});
