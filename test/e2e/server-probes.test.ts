import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Leakwatch } from '../../src/server.js';
import { startLeakwatch, type RunningLeakwatch } from '../helpers/in-process.js';

// Vector's healthcheck sends HEAD and needs exactly 200 (https://github.com/vectordotdev/vector/issues/7998).
describe('probes and metrics', () => {
  let running: RunningLeakwatch;
  let service: Leakwatch;
  let base: string;

  beforeAll(async () => {
    running = await startLeakwatch('probes');
    ({ service, base } = running);
  });

  afterAll(() => running.close());

  it('HEAD and GET /healthz answer exactly 200', async () => {
    for (const method of ['HEAD', 'GET'] as const) {
      const response = await request(`${base}/healthz`, { method });
      expect(response.statusCode).toBe(200);
      await response.body.dump();
    }
  });

  it('/readyz reports rules and store ready', async () => {
    const response = await request(`${base}/readyz`);
    expect(response.statusCode).toBe(200);
    expect(await response.body.json()).toEqual({ ready: true, checks: { rules: true, store: true } });
  });

  it('/metrics is Prometheus text that counts what was ingested', async () => {
    const body = 'Nov 01 11:59:32 web-1 linkerd[5699]: I 1101 11:59:32.000 UTC THREAD1: linkerd 1.3.1 started\n';
    await (await request(`${base}/ingest`, { method: 'POST', body, headers: { 'content-type': 'text/plain' } })).body.dump();
    await service.pipeline.whenIdle();
    const response = await request(`${base}/metrics`);
    expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.body.text();
    expect(text).toMatch(/^# TYPE leakwatch_ingest_records_total counter$/m);
    expect(text).toMatch(/^leakwatch_ingest_records_total 1$/m);
    // The line carries its source's time, so it waits out the reorder window before it is grouped.
    expect(text).toMatch(/^leakwatch_engine_held_records 1$/m);
    expect(text).toMatch(/^leakwatch_engine_lines_total 0$/m);
    service.pipeline.sweepNow(Date.now() + 60_000);
    const after = await (await request(`${base}/metrics`)).body.text();
    expect(after).toMatch(/^leakwatch_engine_held_records 0$/m);
    expect(after).toMatch(/^leakwatch_engine_lines_total 1$/m);
    expect(text).toContain(`\nleakwatch_rules_loaded ${service.rules.status().rules.length}\n`);
    expect(service.rules.status().rules.length).toBeGreaterThan(0);
  });
});
