import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { streamKeyOf, type LogRecord } from '../../src/ingest/record.js';
import { memoryRoutes } from '../../src/memory/routes.js';
import { MemoryTracker, type ProcessMemoryView } from '../../src/memory/tracker.js';
import { exhaustionTime, slopePerHour } from '../../src/memory/trend.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { makeEvent } from '../incidents/fixtures.js';

const MiB = 1024 * 1024;
const HOUR = 3_600_000;
const T0 = Date.parse('2017-11-01T16:59:32.962Z');

/**
 * A metrics snapshot as a record: the flat map of linkerd's /admin/metrics.json. Metric names are the
 * ones twitter/util JvmStats.scala and finagle-netty4 export;
 * the values are the seed thread's numbers (181 MB of DirectByteBuffers seen in the heap dump).
 */
function snapshot(time: number, fields: Record<string, unknown>, pid = '4416'): LogRecord {
  return { time, host: 'lb-1', service: 'linkerd', pid, stream: streamKeyOf('lb-1', 'linkerd', pid), message: '', fields };
}

let dir: string;
let store: SqliteStore;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'leakwatch-memory-'));
  store = new SqliteStore(dir);
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('trend arithmetic', () => {
  it('is the least-squares slope per hour and the time the limit is reached', () => {
    const points = [0, 1, 2].map((h) => ({ t: T0 + h * HOUR, value: (h + 1) * 100 * MiB }));
    expect(slopePerHour(points)).toBe(100 * MiB);
    // Not collinear: (0,0) (1,3) (2,3) → slope 1.5 by hand.
    expect(slopePerHour([{ t: 0, value: 0 }, { t: HOUR, value: 3 }, { t: 2 * HOUR, value: 3 }])).toBe(1.5);
    expect(slopePerHour([{ t: T0, value: 1 }])).toBeNull();
    expect(slopePerHour([{ t: T0, value: 1 }, { t: T0, value: 2 }])).toBeNull();
    expect(exhaustionTime(T0, 300 * MiB, 1000 * MiB, 100 * MiB)).toBe(T0 + 7 * HOUR);
    expect(exhaustionTime(T0, 300 * MiB, 1000 * MiB, -5)).toBeNull();
    expect(exhaustionTime(T0, 300 * MiB, null, 100 * MiB)).toBeNull();
  });
});

describe('MemoryTracker', () => {
  it('computes 100 MiB/h and an ETA 7 h after the last of 100/200/300 MiB samples with max 1000 MiB', () => {
    const tracker = new MemoryTracker(store, { trendWindowMs: 3 * HOUR });
    tracker.observeEvents([0, 1, 2].map((h) => makeEvent('oodm', { time: T0 + h * HOUR, used_bytes: (h + 1) * 100 * MiB, max_bytes: 1000 * MiB, seq: h })));
    const [process] = tracker.processes();
    expect(process).toMatchObject({
      host: 'lb-1', service: 'linkerd', pid: '5699',
      used_bytes: 300 * MiB, max_bytes: 1000 * MiB, ratio: 0.3, source: 'netty-oodm',
      trend_bytes_per_hour: 100 * MiB,
      exhaustion_eta: new Date(T0 + 2 * HOUR + 7 * HOUR).toISOString(),
    });
    expect(process!.samples.map((s) => s.used_bytes)).toEqual([100 * MiB, 200 * MiB, 300 * MiB]);
  });

  it('takes metrics snapshots, labels each gauge with its source and uses the OODM limit as max', () => {
    const tracker = new MemoryTracker(store);
    tracker.observeEvents([makeEvent('oodm', { time: T0, pid: '4416' })]);
    tracker.observeRecords([
      snapshot(T0 + 60_000, { 'jvm/mem/buffer/direct/used': 181_000_000, 'jvm/mem/buffer/direct/max': 181_000_000, 'finagle/netty4/pooling/used': 900_000_000 }),
      snapshot(T0 + 120_000, { 'jvm/mem/buffer/direct/used': 181_000_000, 'finagle/netty4/pooling/used': '960000000' }),
      { time: T0, host: 'lb-1', service: 'linkerd', pid: '4416', stream: 's', message: 'I 1101 11:59:32.000 CDT THREAD1: hello', fields: { message: 'x' } },
    ]);
    const [process] = tracker.processes();
    expect(process!.source).toBe('finagle-netty4-pooling');
    expect(process!.used_bytes).toBe(960_000_000);
    // The max comes from the OODM (1037959168), never from jvm/mem/buffer/direct/max (a capacity).
    expect(process!.max_bytes).toBe(1037959168);
    expect(process!.ratio).toBeCloseTo(960_000_000 / 1037959168, 12);
    // 60 MB in one minute from the pooling gauge alone = 3.6 GB/h.
    expect(process!.trend_bytes_per_hour).toBe(3_600_000_000);
    expect(process!.samples.map((s) => s.source)).toEqual(['netty-oodm', 'jvm-buffer-pool', 'finagle-netty4-pooling', 'jvm-buffer-pool', 'finagle-netty4-pooling']);
  });

  it('ignores ordinary records and events without direct-memory fields', () => {
    const tracker = new MemoryTracker(store);
    tracker.observeRecord({ time: T0, host: 'lb-1', service: 'linkerd', pid: '1', stream: 's', message: 'plain line' });
    tracker.observeRecord(snapshot(T0, { 'jvm/heap/used': 1, 'jvm/mem/buffer/direct/used': 'lots' }));
    tracker.observeEvents([makeEvent('leak', { time: T0 })]);
    expect(tracker.processes()).toEqual([]);
  });

  it('keeps at most samplesPerProcess samples and survives a restart', () => {
    const tracker = new MemoryTracker(store, { samplesPerProcess: 20 });
    for (let i = 0; i < 55; i++) tracker.observeRecord(snapshot(T0 + i * 1000, { 'finagle/netty4/pooling/used': i * MiB }));
    const countRows = (): number => store.samplesOf({ host: 'lb-1', service: 'linkerd', pid: '4416' }, 10_000).length;
    expect(countRows()).toBeLessThanOrEqual(20 + 2);
    store.close();
    store = new SqliteStore(dir);
    const reopened = new MemoryTracker(store, { samplesPerProcess: 20 });
    const [process] = reopened.processes({}, 1000);
    expect(process!.used_bytes).toBe(54 * MiB);
    expect(process!.samples.length).toBeLessThanOrEqual(20);
    expect(process!.samples.at(-1)!.used_bytes).toBe(54 * MiB);
    // No known limit: no ratio, no ETA, but still a trend (1 MiB/s).
    expect(process).toMatchObject({ max_bytes: null, ratio: null, exhaustion_eta: null, trend_bytes_per_hour: 3600 * MiB });
  });

  it('forgets processes silent for longer than the retention (event time)', () => {
    const tracker = new MemoryTracker(store, { processRetentionMs: 24 * HOUR });
    tracker.observeRecord(snapshot(T0, { 'finagle/netty4/pooling/used': MiB }, '100'));
    tracker.observeRecord(snapshot(T0 + 2 * HOUR, { 'finagle/netty4/pooling/used': MiB }, '200'));
    expect(tracker.processes().map((p) => p.pid)).toEqual(['100', '200']);
    // Retention is checked on the first save and then every 1000 saves.
    for (let i = 0; i < 999; i++) tracker.observeRecord(snapshot(T0 + 25 * HOUR + i, { 'finagle/netty4/pooling/used': MiB }, '300'));
    expect(tracker.processes().map((p) => p.pid)).toEqual(['200', '300']);
  });

  it('serves GET /memory on a real loopback server', async () => {
    const tracker = new MemoryTracker(store, { trendWindowMs: 3 * HOUR });
    tracker.observeEvents([0, 1, 2].map((h) => makeEvent('oodm', { time: T0 + h * HOUR, used_bytes: (h + 1) * 100 * MiB, max_bytes: 1000 * MiB, seq: h })));
    tracker.observeRecords([snapshot(T0, { 'jvm/mem/buffer/direct/used': 5 * MiB }, '77')]);
    const app = Fastify();
    await app.register(memoryRoutes, { memory: tracker });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const response = await fetch(`${base}/memory`);
      expect(response.status).toBe(200);
      const body = (await response.json()) as { processes: ProcessMemoryView[] };
      expect(body.processes.map((p) => [p.pid, p.source])).toEqual([['5699', 'netty-oodm'], ['77', 'jvm-buffer-pool']]);
      expect(body.processes[0]!.exhaustion_eta).toBe(new Date(T0 + 9 * HOUR).toISOString());
      const limited = (await (await fetch(`${base}/memory?samples=1`)).json()) as { processes: ProcessMemoryView[] };
      expect(limited.processes[0]!.samples).toHaveLength(1);
      expect((await fetch(`${base}/memory?samples=0`)).status).toBe(400);
    } finally {
      await app.close();
    }
  });
});
