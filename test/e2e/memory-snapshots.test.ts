import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Leakwatch } from '../../src/server.js';
import { startLeakwatch, type RunningLeakwatch } from '../helpers/in-process.js';

/*
 * Vector's `http_client` source scraping linkerd's /admin/metrics.json into the same `http` sink
 * as the logs (examples/vector-metrics.yaml). The sink sends JSON arrays of events. An event of
 * the http_client source has the scrape's fields, `source_type: "http_client"` and `timestamp`
 * (the scrape time), https://github.com/vectordotdev/vector/blob/master/website/cue/reference/components/sources/http_client.cue;
 * with the default `decoding.codec: bytes` the whole body is one string in `message`, with
 * `decoding.codec: json` its keys are the event's. The remap in the example adds `host` and
 * `SYSLOG_IDENTIFIER`, the names Vector's journald source gives the same process's logs.
 * The metrics.json keys are linkerd's (https://linkerd.io/1/administration/telemetry/,
 * twitter/util JvmStats.scala, finagle-netty4's pooling gauges).
 *
 * The process before (pid 4100) crashed with the seed's OutOfDirectMemoryError, which told the
 * limit; pid 4101 leaks 60 MiB/h from 100 MiB. Known answer: (989.9 MiB - 100 MiB) / 60 MiB/h.
 */
const MiB = 1024 * 1024;
const MINUTE = 60_000;
const HOUR = 3_600_000;
const T0 = Date.parse('2024-11-01T12:00:00.000Z');
const MAX = 1037959168;

const oodm = {
  timestamp: new Date(T0 - 10 * MINUTE).toISOString(),
  host: 'edge-a',
  SYSLOG_IDENTIFIER: 'linkerd',
  _PID: '4100',
  message:
    'WARN 1101 11:50:00.000 UTC finagle/netty4-3: Failed to initialize a channel. Closing: [id: 0xda8ab2a4]\n' +
    `io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 1048576 byte(s) of direct memory (used: 1037041958, max: ${MAX})\n` +
    '\tat io.netty.util.internal.PlatformDependent.incrementMemoryCounter(PlatformDependent.java:618)',
};

function metricsJson(minutes: number): Record<string, number> {
  // twitter-server prints gauges as floats.
  return {
    'clnt/zipkin-tracer/available': 1.0,
    'finagle/netty4/pooling/used': 100 * MiB + (60 * MiB * minutes) / 60 + ((minutes * 7) % 5) * MiB,
    'jvm/mem/buffer/direct/used': 4 * MiB,
    'jvm/mem/buffer/direct/max': 4 * MiB,
    'jvm/start_time': T0 - HOUR,
    'jvm/uptime': HOUR + minutes * MINUTE,
  };
}

function scrapeEvent(minutes: number, shape: 'parsed' | 'raw', pid?: string): Record<string, unknown> {
  const common = { host: 'edge-a', SYSLOG_IDENTIFIER: 'linkerd', source_type: 'http_client', timestamp: new Date(T0 + minutes * MINUTE).toISOString(), ...(pid ? { _PID: pid } : {}) };
  return shape === 'parsed' ? { ...metricsJson(minutes), ...common } : { message: JSON.stringify(metricsJson(minutes)), ...common };
}

interface MemoryView {
  pid: string;
  used_bytes: number;
  max_bytes: number;
  max_source: string;
  source: string;
  trend: { rising: boolean; source: string } | null;
  exhaustion_eta: string | null;
  seconds_to_exhaustion: number | null;
}

describe('Vector http_client scraping linkerd /admin/metrics.json, both shapes, posted to /ingest', () => {
  for (const shape of ['parsed', 'raw'] as const) {
    describe(`decoding.codec ${shape === 'parsed' ? 'json' : 'bytes (the default)'}`, () => {
      let running: RunningLeakwatch;
      let service: Leakwatch;
      let base: string;

      beforeAll(async () => {
        running = await startLeakwatch(`memory-${shape}`);
        ({ service, base } = running);
        const post = async (events: unknown[]): Promise<void> => {
          const response = await request(`${base}/ingest`, { method: 'POST', body: JSON.stringify(events), headers: { 'content-type': 'application/json' } });
          expect(response.statusCode).toBe(200);
          await response.body.dump();
        };
        await post([oodm]);
        // Hours pass before the scrapes below in real life: the crash's group has long closed by then.
        await service.pipeline.whenIdle();
        service.pipeline.closeOpenGroups();
        // A scrape a minute for 4 h, sent ten at a time like the sink's batches.
        for (let start = 0; start <= 240; start += 10) {
          await post(Array.from({ length: Math.min(10, 241 - start) }, (_, i) => scrapeEvent(start + i, shape)));
        }
        await service.pipeline.whenIdle();
        service.pipeline.closeOpenGroups();
        await service.pipeline.whenIdle();
      });

      afterAll(() => running.close());

      it('shows the run of the JVM with its rising floor, the limit its predecessor reported and when it runs out', async () => {
        const memory = (await (await request(`${base}/memory?host=edge-a&samples=5`)).body.json()) as { processes: MemoryView[] };
        const run = memory.processes.find((p) => p.pid === `start:${new Date(T0 - HOUR).toISOString()}`)!;
        expect(run).toMatchObject({ max_bytes: MAX, max_source: 'learned', source: 'finagle-netty4-pooling', trend: { rising: true, source: 'finagle-netty4-pooling' } });
        const known = T0 + ((MAX - 100 * MiB) / (60 * MiB)) * HOUR;
        const now = T0 + 240 * MINUTE;
        expect(Math.abs(Date.parse(run.exhaustion_eta!) - known) / (known - now)).toBeLessThan(0.1);
        // The crash that taught the limit is its own process, and stays so.
        expect(memory.processes.find((p) => p.pid === '4100')).toMatchObject({ source: 'netty-oodm', max_source: 'reported' });
      });

      it('opened a direct-memory-trend incident with the numbers, long before the limit', async () => {
        const body = (await (await request(`${base}/incidents?category=direct-memory-trend`)).body.json()) as {
          incidents: Array<{ host: string; service: string; first_seen: string; severity: string; fields: Record<string, unknown>; evidence: Array<{ category: string }> }>;
        };
        expect(body.incidents).toHaveLength(1);
        const incident = body.incidents[0]!;
        expect(incident).toMatchObject({ host: 'edge-a', service: 'linkerd', severity: 'warning' });
        expect(Date.parse(incident.first_seen) - T0).toBeLessThan(HOUR);
        expect(incident.fields).toMatchObject({ max_bytes: MAX, max_source: 'learned', source: 'finagle-netty4-pooling' });
        expect(incident.evidence.map((e) => e.category)).toContain('direct-memory-exhausted');
      });

      it('exports the process on /metrics', async () => {
        const text = await (await request(`${base}/metrics`)).body.text();
        const labels = `{host="edge-a",service="linkerd",pid="start:${new Date(T0 - HOUR).toISOString()}",source="finagle-netty4-pooling"}`;
        expect(text).toContain(`leakwatch_direct_memory_max_bytes${labels} ${MAX}`);
        expect(text).toMatch(new RegExp(`leakwatch_direct_memory_seconds_to_exhaustion${labels.replace(/[{}().]/g, '\\$&')} \\d+`));
      });
    });
  }
});
