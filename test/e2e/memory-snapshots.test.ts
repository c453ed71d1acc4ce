import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Leakwatch } from '../../src/server.js';
import { startLeakwatch, type RunningLeakwatch } from '../helpers/in-process.js';

// Issue 4: linkerd's /admin/metrics.json flat map posted as a record, three snapshots an hour apart
// with rising Netty pool usage, after an OutOfDirectMemoryError told the process's limit. Numbers
// chosen to check by hand: 100, 200, 300 MiB at 0, 1, 2 h with a 1000 MiB limit → 100 MiB/h, and the
// remaining 700 MiB last 7 h after the last snapshot.
const MiB = 1024 * 1024;
const T0 = Date.parse('2024-11-01T12:00:00.000Z');
const HOUR = 3_600_000;

// The OODM line is the seed's text with this process's numbers (linkerd 1.3.x prints it so).
const oodm = {
  timestamp: new Date(T0 - 60_000).toISOString(),
  host: 'edge-a',
  SYSLOG_IDENTIFIER: 'linkerd',
  _PID: '4101',
  message:
    'WARN 1101 11:59:00.000 UTC finagle/netty4-3: Failed to initialize a channel. Closing: [id: 0xda8ab2a4]\n' +
    `io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 1048576 byte(s) of direct memory (used: ${900 * MiB}, max: ${1000 * MiB})\n` +
    '\tat io.netty.util.internal.PlatformDependent.incrementMemoryCounter(PlatformDependent.java:618)',
};

// Keys as twitter-util's JvmStats (util-jvm JvmStats.scala) and finagle-netty4 export them.
function snapshot(hours: number, pooledMiB: number): Record<string, unknown> {
  return {
    timestamp: new Date(T0 + hours * HOUR).toISOString(),
    host: 'edge-a',
    SYSLOG_IDENTIFIER: 'linkerd',
    _PID: '4101',
    'finagle/netty4/pooling/used': pooledMiB * MiB,
    'jvm/mem/buffer/direct/used': 4 * MiB,
    'jvm/mem/buffer/direct/max': 4 * MiB,
    'jvm/heap/used': 200 * MiB,
  };
}

describe('direct-memory trend from metrics snapshots posted to /ingest', () => {
  let running: RunningLeakwatch;
  let service: Leakwatch;
  let base: string;

  beforeAll(async () => {
    running = await startLeakwatch('memory');
    ({ service, base } = running);
  });

  afterAll(() => running.close());

  it('gives 100 MiB/h and an exhaustion time 7 h after the last snapshot', async () => {
    const body = [oodm, snapshot(0, 100), snapshot(1, 200), snapshot(2, 300)].map((r) => JSON.stringify(r)).join('\n');
    const response = await request(`${base}/ingest`, { method: 'POST', body, headers: { 'content-type': 'application/x-ndjson' } });
    expect(response.statusCode).toBe(200);
    expect(await response.body.json()).toEqual({ accepted: 4, malformed: 0, without_text: 0 });
    await service.pipeline.whenIdle();
    service.pipeline.closeOpenGroups();

    const memory = (await (await request(`${base}/memory?host=edge-a`)).body.json()) as {
      processes: Array<{ pid: string; used_bytes: number; max_bytes: number; ratio: number; source: string; trend_bytes_per_hour: number; exhaustion_eta: string; samples: { source: string }[] }>;
    };
    expect(memory.processes).toHaveLength(1);
    const process = memory.processes[0]!;
    expect(process).toMatchObject({ pid: '4101', used_bytes: 300 * MiB, max_bytes: 1000 * MiB, source: 'finagle-netty4-pooling' });
    expect(process.ratio).toBeCloseTo(0.3, 9);
    expect(process.trend_bytes_per_hour).toBeCloseTo(100 * MiB, 3);
    expect(process.exhaustion_eta).toBe(new Date(T0 + 2 * HOUR + 7 * HOUR).toISOString());
    // What was measured is labelled: the JVM's buffer pool (blind to Netty's no-cleaner buffers) apart.
    expect(new Set(process.samples.map((s) => s.source))).toEqual(new Set(['netty-oodm', 'finagle-netty4-pooling', 'jvm-buffer-pool']));
  });
});
