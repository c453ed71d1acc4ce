import Fastify from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LeakEvent } from '../../src/engine/event.js';
import { recordFromObject } from '../../src/ingest/normalize.js';
import { streamKeyOf, type LogRecord } from '../../src/ingest/record.js';
import { directMemoryMetrics } from '../../src/memory/metrics.js';
import { memoryRoutes } from '../../src/memory/routes.js';
import { MemoryTracker, type ProcessMemoryView } from '../../src/memory/tracker.js';
import { IncidentService } from '../../src/incidents/service.js';
import type { Store } from '../../src/store/store.js';
import { storeBackends } from '../helpers/store-backends.js';
import { makeEvent } from '../incidents/fixtures.js';

const MiB = 1024 * 1024;
const MINUTE = 60_000;
const HOUR = 3_600_000;
const T0 = Date.parse('2017-11-01T10:00:00.000Z');
const SCRAPE = 15_000;

/**
 * A metrics snapshot as a record: the flat map of linkerd's /admin/metrics.json. Metric names are the
 * ones twitter/util JvmStats.scala and finagle-netty4 export.
 */
function snapshot(time: number, fields: Record<string, unknown>, pid = '4416'): LogRecord {
  return { time, host: 'lb-1', service: 'linkerd', pid, stream: streamKeyOf('lb-1', 'linkerd', pid), message: '', fields };
}

/** Snapshots every 15 s for `hours`, finagle's pooling gauge following `used`. */
function pooling(hours: number, used: (elapsedMs: number) => number, pid = '4416', start = T0): LogRecord[] {
  const records: LogRecord[] = [];
  for (let elapsed = 0; elapsed <= hours * HOUR; elapsed += SCRAPE) {
    records.push(snapshot(start + elapsed, { 'finagle/netty4/pooling/used': used(elapsed) }, pid));
  }
  return records;
}

let store: Store;

// The tracker is written once over the Store interface: every case runs on both backends.
describe.each(storeBackends('memory'))('on $name', (backend) => {
  beforeEach(() => {
    store = backend.fresh();
  });
  afterEach(() => {
    store.close();
    backend.cleanUp();
  });

  describe('MemoryTracker', () => {
    it('a steady leak: the floor rises 50 MiB/h and the limit a predecessor reported (1000 MiB) is reached 12 h after the last sample', () => {
      const tracker = new MemoryTracker(store);
      // The process before (pid 4400) crashed and said its limit; this one runs with the same flags.
      tracker.observeEvents([makeEvent('oodm', { time: T0 - HOUR, pid: '4400', used_bytes: 999 * MiB, max_bytes: 1000 * MiB })]);
      tracker.observeRecords(pooling(6, (elapsed) => 100 * MiB + (50 * MiB * elapsed) / HOUR));
      const view = tracker.viewOf({ host: 'lb-1', service: 'linkerd', pid: '4416' })!;
      expect(view).toMatchObject({ used_bytes: 400 * MiB, max_bytes: 1000 * MiB, max_source: 'learned', source: 'finagle-netty4-pooling' });
      expect(view.ratio).toBeCloseTo(0.4, 9);
      expect(view.trend).toMatchObject({ source: 'finagle-netty4-pooling', rising: true, windows: 12 });
      expect(view.trend_bytes_per_hour).toBeCloseTo(50 * MiB, -3);
      // 600 MiB left at 50 MiB/h.
      expect(view.seconds_to_exhaustion).toBeCloseTo(12 * 3600, -2);
      expect(Date.parse(view.exhaustion_eta!)).toBeCloseTo(T0 + 18 * HOUR, -5);
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
      expect(process).toMatchObject({ max_bytes: 1037959168, max_source: 'reported' });
      expect(process!.ratio).toBeCloseTo(960_000_000 / 1037959168, 12);
      // Two snapshots say nothing about a trend.
      expect(process).toMatchObject({ trend: null, trend_bytes_per_hour: null, exhaustion_eta: null, seconds_to_exhaustion: null });
      expect(process!.samples.map((s) => s.source)).toEqual(['netty-oodm', 'jvm-buffer-pool', 'finagle-netty4-pooling', 'jvm-buffer-pool', 'finagle-netty4-pooling']);
    });

    it('reads a scrape that Vector passed on as raw text in message, even cut short, and keeps it away from the log grouping', () => {
      const body = JSON.stringify({ 'clnt/zipkin-tracer/available': 1.0, 'finagle/netty4/pooling/used': 1.6777216e7, 'jvm/mem/buffer/direct/used': 4194304.0, 'jvm/uptime': 1234.0 });
      const record = recordFromObject({ message: body.slice(0, -20), source_type: 'http_client', timestamp: new Date(T0).toISOString(), host: 'lb-1', SYSLOG_IDENTIFIER: 'linkerd', _PID: '4416' }, T0);
      expect(record.message).toBe('');
      expect(record.withoutText).toBeUndefined();
      const tracker = new MemoryTracker(store);
      tracker.observeRecords([record]);
      // The cut fell inside the last gauge's number (4194304 → 419430): that one is not taken.
      expect(tracker.processes()[0]!.samples).toEqual([{ t: new Date(T0).toISOString(), used_bytes: 16777216, max_bytes: null, source: 'finagle-netty4-pooling' }]);
      const whole = recordFromObject({ message: body, timestamp: new Date(T0 + SCRAPE).toISOString(), host: 'lb-1', SYSLOG_IDENTIFIER: 'linkerd', _PID: '4416' }, T0);
      tracker.observeRecords([whole]);
      expect(tracker.processes()[0]!.samples.slice(1).map((s) => [s.source, s.used_bytes])).toEqual([['jvm-buffer-pool', 4194304], ['finagle-netty4-pooling', 16777216]]);
      // A structured JSON log line stays a log line.
      expect(recordFromObject({ message: '{"level":"info","msg":"started"}' }, T0).message).toBe('{"level":"info","msg":"started"}');
    });

    it('ignores ordinary records and events without direct-memory fields', () => {
      const tracker = new MemoryTracker(store);
      tracker.observeRecords([
        { time: T0, host: 'lb-1', service: 'linkerd', pid: '1', stream: 's', message: 'plain line' },
        snapshot(T0, { 'jvm/heap/used': 1, 'jvm/mem/buffer/direct/used': 'lots' }),
      ]);
      tracker.observeEvents([makeEvent('leak', { time: T0 })]);
      expect(tracker.processes()).toEqual([]);
    });

    it('a restart starts a new series: the new pid has no trend of its own yet, the old one keeps its own, and the limit carries over', () => {
      const tracker = new MemoryTracker(store);
      tracker.observeRecords(pooling(6, (elapsed) => 100 * MiB + (80 * MiB * elapsed) / HOUR, '4416'));
      tracker.observeEvents([makeEvent('oodm', { time: T0 + 6 * HOUR + MINUTE, pid: '4416', used_bytes: 590 * MiB, max_bytes: 600 * MiB })]);
      tracker.observeRecords(pooling(0.25, () => 50 * MiB, '5120', T0 + 6 * HOUR + 2 * MINUTE));
      const old = tracker.viewOf({ host: 'lb-1', service: 'linkerd', pid: '4416' })!;
      const fresh = tracker.viewOf({ host: 'lb-1', service: 'linkerd', pid: '5120' })!;
      expect(old.trend!.rising).toBe(true);
      expect(fresh).toMatchObject({ used_bytes: 50 * MiB, max_bytes: 600 * MiB, max_source: 'learned', exhaustion_eta: null });
      expect(fresh.trend?.rising ?? false).toBe(false);
      expect(fresh.samples.every((s) => Date.parse(s.t) > T0 + 6 * HOUR)).toBe(true);
    });

    it('of the limits one batch reports, a host and service learn the newest (the later one on a tie), whatever their order', () => {
      const tracker = new MemoryTracker(store);
      const oodm = (minutes: number, host: string, pid: string, maxMiB: number, seq = 0): LeakEvent =>
        makeEvent('oodm', { time: T0 + minutes * MINUTE, host, pid, used_bytes: (maxMiB - 1) * MiB, max_bytes: maxMiB * MiB, seq });
      tracker.observeEvents([oodm(5, 'lb-1', '4400', 700), oodm(9, 'lb-1', '4401', 800), oodm(2, 'lb-1', '4402', 600), oodm(9, 'lb-1', '4403', 900), oodm(1, 'lb-2', '4500', 500)]);
      // A later batch with an older report does not move what was learned.
      tracker.observeEvents([oodm(3, 'lb-1', '4404', 400)]);
      tracker.observeRecords([snapshot(T0 + 10 * MINUTE, { 'finagle/netty4/pooling/used': 90 * MiB }, '5000')]);
      tracker.observeRecords([{ ...snapshot(T0 + 10 * MINUTE, { 'finagle/netty4/pooling/used': 90 * MiB }, '5001'), host: 'lb-2', stream: streamKeyOf('lb-2', 'linkerd', '5001') }]);
      expect(tracker.viewOf({ host: 'lb-1', service: 'linkerd', pid: '5000' })).toMatchObject({ max_bytes: 900 * MiB, max_source: 'learned' });
      expect(tracker.viewOf({ host: 'lb-2', service: 'linkerd', pid: '5001' })).toMatchObject({ max_bytes: 500 * MiB, max_source: 'learned' });
    });

    it('without a pid, the JVM start time of linkerd snapshots tells one run from the next', () => {
      const tracker = new MemoryTracker(store);
      const scrape = (t: number, started: number, used: number): LogRecord => snapshot(t, { 'jvm/start_time': started, 'finagle/netty4/pooling/used': used }, '');
      tracker.observeRecords([scrape(T0, T0 - HOUR, 10 * MiB), scrape(T0 + SCRAPE, T0 - HOUR, 11 * MiB), scrape(T0 + 2 * SCRAPE, T0 + 20_000, 2 * MiB)]);
      expect(tracker.processes().map((p) => [p.pid, p.used_bytes])).toEqual([
        [`start:${new Date(T0 - HOUR).toISOString()}`, 11 * MiB],
        [`start:${new Date(T0 + 20_000).toISOString()}`, 2 * MiB],
      ]);
    });

    it('keeps at most samplesPerProcess samples and survives a restart', () => {
      const tracker = new MemoryTracker(store, { samplesPerProcess: 20 });
      for (let i = 0; i < 55; i++) tracker.observeRecords([snapshot(T0 + i * 1000, { 'finagle/netty4/pooling/used': i * MiB })]);
      const countRows = (): number => store.samplesOf({ host: 'lb-1', service: 'linkerd', pid: '4416' }, 10_000).length;
      expect(countRows()).toBeLessThanOrEqual(20 + 2);
      store.close();
      store = backend.reopen();
      const reopened = new MemoryTracker(store, { samplesPerProcess: 20 });
      const [process] = reopened.processes({}, 1000);
      expect(process!.used_bytes).toBe(54 * MiB);
      expect(process!.samples.length).toBeLessThanOrEqual(20);
      expect(process!.samples.at(-1)!.used_bytes).toBe(54 * MiB);
      // No known limit: no ratio, no ETA; a slope (1 MiB/s) but 20 s of data are no rising floor.
      expect(process).toMatchObject({ max_bytes: null, ratio: null, exhaustion_eta: null });
      expect(process!.trend_bytes_per_hour).toBeCloseTo(3600 * MiB, -3);
      expect(process!.trend!.rising).toBe(false);
    });

    it('lists the processes with samples in host, service, pid order, of a host, a host and service, or a service', () => {
      const sample = (host: string, service: string, pid: string, t: number) => ({ host, service, pid, t, used_bytes: MiB, max_bytes: null, source: 'finagle-netty4-pooling' });
      // Several samples per process, hosts and pids that sort as text, and empty names (a record without a pid).
      const processes = [
        ['lb-2', 'linkerd', '10'],
        ['lb-1', 'namerd', '7'],
        ['lb-1', 'linkerd', '9'],
        ['lb-1', 'linkerd', '10'],
        ['', 'linkerd', ''],
        ['lb-10', 'linkerd', '1'],
        ['lb-1', 'linkerd', ''],
      ] as const;
      store.insertSamples(processes.flatMap(([host, service, pid]) => [sample(host, service, pid, T0), sample(host, service, pid, T0 + MINUTE)]));
      const names = (filter?: { host?: string; service?: string }) => store.processes(filter).map(({ host, service, pid }) => `${host}/${service}/${pid}`);
      expect(names()).toEqual(['/linkerd/', 'lb-1/linkerd/', 'lb-1/linkerd/10', 'lb-1/linkerd/9', 'lb-1/namerd/7', 'lb-10/linkerd/1', 'lb-2/linkerd/10']);
      expect(names({ host: 'lb-1' })).toEqual(['lb-1/linkerd/', 'lb-1/linkerd/10', 'lb-1/linkerd/9', 'lb-1/namerd/7']);
      expect(names({ host: 'lb-1', service: 'namerd' })).toEqual(['lb-1/namerd/7']);
      expect(names({ service: 'namerd' })).toEqual(['lb-1/namerd/7']);
      expect(names({ host: '' })).toEqual(['/linkerd/']);
      expect(names({ host: 'lb-3' })).toEqual([]);
      expect(names({ host: 'lb-1', service: 'linkerd-x' })).toEqual([]);
    });

    it("knows a process's newest reported limit as of a time, past the samples that carry none, and no other process's", () => {
      const sample = (pid: string, t: number, max: number | null) => ({ host: 'lb-1', service: 'linkerd', pid, t, used_bytes: MiB, max_bytes: max, source: max === null ? 'finagle-netty4-pooling' : 'oodm' });
      store.insertSamples([
        sample('4416', T0, 900 * MiB),
        sample('4416', T0 + MINUTE, 1000 * MiB),
        // A snapshot at the same time as a limit, and a later one: metrics snapshots carry no limit.
        ...Array.from({ length: 50 }, (_, index) => sample('4416', T0 + MINUTE + index * SCRAPE, null)),
        sample('4416', T0 + 2 * HOUR, 1100 * MiB),
        sample('77', T0 + 3 * HOUR, 2000 * MiB),
        sample('5', T0, null),
      ]);
      const process = { host: 'lb-1', service: 'linkerd', pid: '4416' };
      expect(store.knownMaxOf(process)).toBe(1100 * MiB);
      expect(store.knownMaxOf(process, T0 + 2 * HOUR - 1)).toBe(1000 * MiB);
      expect(store.knownMaxOf(process, T0 + MINUTE)).toBe(1000 * MiB);
      expect(store.knownMaxOf(process, T0 + MINUTE - 1)).toBe(900 * MiB);
      expect(store.knownMaxOf(process, T0 - 1)).toBeNull();
      expect(store.knownMaxOf({ ...process, pid: '5' })).toBeNull();
      expect(store.knownMaxOf({ ...process, pid: '7' })).toBeNull();
    });

    it('shows a trend that takes in samples arriving late, older than the newest, as a fresh tracker computes it', () => {
      const tracker = new MemoryTracker(store, {});
      tracker.observeRecords(pooling(6, (elapsed) => 100 * MiB + (50 * MiB * elapsed) / HOUR));
      const before = tracker.processes()[0]!.trend!;
      expect(tracker.processes()[0]!.trend).toEqual(before);
      // A shipper's late batch: the first three hours' snapshots, 7 s after the others, far lower.
      tracker.observeRecords(pooling(3, () => 10 * MiB, '4416', T0 + 7000));
      const after = tracker.processes()[0]!.trend!;
      expect(after.floor_bytes).not.toBe(before.floor_bytes);
      expect(new MemoryTracker(store, {}).processes()[0]!.trend).toEqual(after);
    });

    it('forgets processes silent for longer than the retention (event time)', () => {
      const tracker = new MemoryTracker(store, { processRetentionMs: 24 * HOUR });
      tracker.observeRecords([snapshot(T0, { 'finagle/netty4/pooling/used': MiB }, '100')]);
      tracker.observeRecords([snapshot(T0 + 2 * HOUR, { 'finagle/netty4/pooling/used': MiB }, '200')]);
      expect(tracker.processes().map((p) => p.pid)).toEqual(['100', '200']);
      // Retention is checked on the first save and then every 1000 saves.
      for (let i = 0; i < 999; i++) tracker.observeRecords([snapshot(T0 + 25 * HOUR + i, { 'finagle/netty4/pooling/used': MiB }, '300')]);
      expect(tracker.processes().map((p) => p.pid)).toEqual(['200', '300']);
    });

    it('serves GET /memory on a real loopback server', async () => {
      const tracker = new MemoryTracker(store, { configuredMax: [{ service: 'linkerd', bytes: 1000 * MiB }] });
      tracker.observeRecords(pooling(6, (elapsed) => 100 * MiB + (50 * MiB * elapsed) / HOUR));
      tracker.observeRecords([snapshot(T0, { 'jvm/mem/buffer/direct/used': 5 * MiB }, '77')]);
      const app = Fastify();
      await app.register(memoryRoutes, { memory: tracker });
      const base = await app.listen({ port: 0, host: '127.0.0.1' });
      try {
        const response = await fetch(`${base}/memory`);
        expect(response.status).toBe(200);
        const body = (await response.json()) as { processes: ProcessMemoryView[] };
        expect(body.processes.map((p) => [p.pid, p.source, p.max_source])).toEqual([['4416', 'finagle-netty4-pooling', 'setting'], ['77', 'jvm-buffer-pool', 'setting']]);
        expect(Date.parse(body.processes[0]!.exhaustion_eta!)).toBeCloseTo(T0 + 18 * HOUR, -5);
        const limited = (await (await fetch(`${base}/memory?samples=1`)).json()) as { processes: ProcessMemoryView[] };
        expect(limited.processes[0]!.samples).toHaveLength(1);
        expect((await fetch(`${base}/memory?samples=0`)).status).toBe(400);
      } finally {
        await app.close();
      }
    });
  });

  describe('direct-memory-trend warnings', () => {
    const leak = (elapsed: number): number => 100 * MiB + (50 * MiB * elapsed) / HOUR;

    it('a leak predicted to exhaust within the horizon is warned about once the floor is surely rising, then at most every 10 min', () => {
      const tracker = new MemoryTracker(store, { configuredMax: [{ service: 'linkerd', bytes: 1000 * MiB }] });
      const incidents = new IncidentService(store);
      const warnings: LeakEvent[] = [];
      // One scrape per batch, as a shipper sends them; the warnings go to the incident service, as in the server.
      for (const record of pooling(3, leak)) {
        const raised = tracker.observeRecords([record]);
        incidents.ingest(raised);
        warnings.push(...raised);
      }
      expect(warnings.length).toBeGreaterThan(0);
      const first = warnings[0]!;
      expect(first).toMatchObject({ rule: 'direct-memory-trend', category: 'direct-memory-trend', severity: 'warning', host: 'lb-1', service: 'linkerd', pid: '4416', incident_key: 'direct-memory-trend|lb-1|linkerd' });
      expect(first.fields).toMatchObject({ source: 'finagle-netty4-pooling', max_bytes: 1000 * MiB, max_source: 'setting', reasons: 'horizon' });
      const at = Date.parse(first.timestamp);
      // Not before half an hour of samples (the shortest span), then promptly.
      expect(at - T0).toBeGreaterThanOrEqual(30 * MINUTE);
      expect(at - T0).toBeLessThan(45 * MINUTE);
      const predicted = Date.parse(String(first.fields['exhaustion_at']));
      const known = T0 + 18 * HOUR;
      expect(Math.abs(predicted - known) / (known - at)).toBeLessThan(0.1);
      // While the incident is open, every 10 min of event time at most.
      for (let i = 1; i < warnings.length; i++) expect(Date.parse(warnings[i]!.timestamp) - Date.parse(warnings[i - 1]!.timestamp)).toBeGreaterThanOrEqual(10 * MINUTE);
      expect(new Set(warnings.map((w) => w.id)).size).toBe(warnings.length);
      const [incident] = incidents.list({ status: 'open', category: 'direct-memory-trend', limit: 10 }).incidents;
      expect(incident).toMatchObject({ count: warnings.length, first_seen: first.timestamp, pids: ['4416'] });
    });

    it('a whole backlog in one batch is judged as if it had come scrape by scrape', () => {
      const tracker = new MemoryTracker(store, { configuredMax: [{ service: 'linkerd', bytes: 1000 * MiB }] });
      const warnings = tracker.observeRecords(pooling(3, leak));
      expect(warnings.length).toBeGreaterThan(5);
      expect(Date.parse(warnings[0]!.timestamp) - T0).toBeLessThan(45 * MINUTE);
    });

    it('passing the ratio threshold is critical even without a trend; a flat sawtooth below it says nothing', () => {
      const tracker = new MemoryTracker(store, { configuredMax: [{ service: 'linkerd', bytes: 1000 * MiB }] });
      const sawtooth = pooling(6, (elapsed) => 400 * MiB + ((elapsed % (10 * MINUTE)) / (10 * MINUTE)) * 300 * MiB);
      expect(sawtooth.flatMap((record) => tracker.observeRecords([record]))).toEqual([]);
      const [warning] = tracker.observeRecords([snapshot(T0 + 6 * HOUR + SCRAPE, { 'finagle/netty4/pooling/used': 950 * MiB })]);
      expect(warning).toMatchObject({ severity: 'critical', fields: { reasons: 'ratio', ratio: 0.95 } });
      expect(warning!.fields['exhaustion_at']).toBeUndefined();
    });

    it('without any limit there is nothing to warn against', () => {
      const tracker = new MemoryTracker(store);
      expect(tracker.observeRecords(pooling(3, leak))).toEqual([]);
    });

    it('exports used, max, ratio and seconds to exhaustion per process for /metrics', () => {
      const tracker = new MemoryTracker(store, { configuredMax: [{ service: 'linkerd', bytes: 1000 * MiB }] });
      tracker.observeRecords(pooling(6, leak));
      const samples = directMemoryMetrics(tracker.processes({}, 1));
      const labels = { host: 'lb-1', service: 'linkerd', pid: '4416', source: 'finagle-netty4-pooling' };
      expect(samples.map((s) => [s.name, s.labels])).toEqual([
        ['leakwatch_direct_memory_used_bytes', labels],
        ['leakwatch_direct_memory_max_bytes', labels],
        ['leakwatch_direct_memory_ratio', labels],
        ['leakwatch_direct_memory_seconds_to_exhaustion', labels],
      ]);
      expect(samples[3]!.value).toBeCloseTo(12 * 3600, -2);
    });
  });
});
