import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import snappy from 'snappyjs';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Leakwatch } from '../../src/server.js';
import { startLeakwatch, type RunningLeakwatch } from '../helpers/in-process.js';

/*
 * Prometheus remote_write to POST /api/v1/write, bodies built with the Prometheus project's own
 * protobuf definitions (proto/prometheus, prompb) and sent as the Remote-Write 1.0 specification
 * says a sender must (https://prometheus.io/docs/specs/prw/remote_write_spec/): snappy block format,
 * Content-Encoding snappy, Content-Type application/x-protobuf, X-Prometheus-Remote-Write-Version
 * 0.1.0, labels sorted, stale markers as the NaN 0x7ff0000000000002.
 *
 * Series as the exporters name them:
 * - JMX exporter / client_java: `jvm_buffer_pool_used_bytes{pool="direct"}`
 *   (https://prometheus.github.io/client_java/api/io/prometheus/metrics/instrumentation/jvm/JvmBufferPoolMetrics.html);
 * - Micrometer: `jvm_buffer_memory_used_bytes{id="direct"}` (Spring Boot's example scrape,
 *   https://docs.spring.io/spring-boot/api/rest/actuator/prometheus.html) and Netty's
 *   `netty.allocator.memory.used` with tags id, allocator.type, memory.type (micrometer
 *   NettyAllocatorMetrics.java), in Prometheus `netty_allocator_memory_used_bytes`;
 * - linkerd's Prometheus telemeter: metrics.json keys with `/` turned into `:` (linkerd
 *   PrometheusTelemeter.scala), `finagle:netty4:pooling:used`.
 * `instance` and `job` are what Prometheus adds to every scraped series; `pod` and `container` what
 * the usual Kubernetes relabelling adds.
 */
const root = protobuf.loadSync(fileURLToPath(new URL('../../proto/prometheus/remote.proto', import.meta.url)));
const WriteRequest = root.lookupType('prometheus.WriteRequest');
const STALE_NAN = new Float64Array(new BigUint64Array([0x7ff0000000000002n]).buffer)[0]!;

const MiB = 1024 * 1024;
const MINUTE = 60_000;
const T0 = Date.parse('2024-11-01T12:00:00.000Z');

type Labels = Record<string, string>;
interface Series {
  labels: Labels;
  samples: Array<{ value: number; timestamp: number }>;
}

function writeRequest(series: Series[]): Uint8Array {
  const timeseries = series.map((s) => ({
    labels: Object.entries(s.labels)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, value]) => ({ name, value })),
    samples: s.samples,
  }));
  return snappy.compress(WriteRequest.encode(WriteRequest.fromObject({ timeseries })).finish());
}

const REMOTE_WRITE_HEADERS = {
  'content-type': 'application/x-protobuf',
  'content-encoding': 'snappy',
  'user-agent': 'Prometheus/3.0.0',
  'x-prometheus-remote-write-version': '0.1.0',
};

async function send(base: string, body: Uint8Array, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const response = await request(`${base}/api/v1/write`, { method: 'POST', body, headers: { ...REMOTE_WRITE_HEADERS, ...headers } });
  return { status: response.statusCode, body: await response.body.text() };
}

/** One sample a minute for `minutes`, from `value(minute)`. */
function samples(minutes: number, value: (minute: number) => number): Series['samples'] {
  return Array.from({ length: minutes + 1 }, (_, minute) => ({ value: value(minute), timestamp: T0 + minute * MINUTE }));
}

interface MemoryView {
  host: string;
  service: string;
  pid: string;
  used_bytes: number;
  max_bytes: number | null;
  max_source: string | null;
  source: string;
  samples: Array<{ t: string; used_bytes: number; source: string }>;
}

describe('POST /api/v1/write (Prometheus remote_write)', () => {
  let running: RunningLeakwatch;
  let service: Leakwatch;
  let base: string;

  beforeAll(async () => {
    running = await startLeakwatch('remote-write');
    ({ service, base } = running);
  });
  afterAll(() => running.close());

  async function memory(): Promise<MemoryView[]> {
    await service.pipeline.whenIdle();
    return ((await (await request(`${base}/memory?samples=1000`)).body.json()) as { processes: MemoryView[] }).processes;
  }

  it('accepts the exporters’ direct-memory series, maps their labels to host/service/pid and skips the rest', async () => {
    const kafka = { instance: '10.0.0.7:9404', job: 'kafka' };
    const gateway = { instance: '10.0.0.8:8080', job: 'gateway', pod: 'gateway-7d9f-x2x', container: 'gateway' };
    const linkerd = { instance: 'edge-b:9990', job: 'linkerd', host: 'edge-b', service: 'linkerd', pid: '4202' };
    const body = writeRequest([
      { labels: { __name__: 'jvm_buffer_pool_used_bytes', pool: 'direct', ...kafka }, samples: samples(2, (m) => 8192 * (m + 1)) },
      { labels: { __name__: 'jvm_buffer_pool_used_bytes', pool: 'mapped', ...kafka }, samples: samples(2, () => 0) },
      { labels: { __name__: 'jvm_buffer_memory_used_bytes', id: 'direct', ...gateway }, samples: samples(2, () => 36864) },
      { labels: { __name__: 'netty_allocator_memory_used_bytes', id: '1195617397', allocator_type: 'PooledByteBufAllocator', memory_type: 'direct', ...gateway }, samples: samples(2, (m) => (16 + m) * MiB) },
      { labels: { __name__: 'netty_allocator_memory_used_bytes', id: '1532213540', allocator_type: 'UnpooledByteBufAllocator', memory_type: 'direct', ...gateway }, samples: samples(2, () => MiB) },
      { labels: { __name__: 'netty_allocator_memory_used_bytes', id: '1195617397', allocator_type: 'PooledByteBufAllocator', memory_type: 'heap', ...gateway }, samples: samples(2, () => 99 * MiB) },
      { labels: { __name__: 'finagle:netty4:pooling:used', ...linkerd }, samples: [...samples(1, (m) => (200 + m) * MiB), { value: STALE_NAN, timestamp: T0 + 2 * MINUTE }] },
      { labels: { __name__: 'netty_direct_memory_max_bytes', ...linkerd }, samples: samples(0, () => 512 * MiB) },
      { labels: { __name__: 'up', ...kafka }, samples: samples(2, () => 1) },
    ]);
    const answer = await send(base, body);
    expect(answer).toEqual({ status: 204, body: '' });

    const processes = await memory();
    expect(processes.map((p) => [p.host, p.service, p.pid, p.source, p.used_bytes])).toEqual([
      ['10.0.0.7', 'kafka', '', 'jvm-buffer-pool', 3 * 8192],
      ['edge-b', 'linkerd', '4202', 'finagle-netty4-pooling', 201 * MiB],
      ['gateway-7d9f-x2x', 'gateway', '', 'netty-allocator', 19 * MiB],
    ]);
    const [kafkaView, linkerdView, gatewayView] = processes;
    // The stale marker is no sample; the limit series is the process's own report.
    expect(linkerdView!.samples).toHaveLength(2);
    expect(linkerdView).toMatchObject({ max_bytes: 512 * MiB, max_source: 'reported' });
    expect(kafkaView!.max_bytes).toBeNull();
    // Pooled and unpooled direct allocators of one process are added up; heap is not direct memory.
    expect(gatewayView!.samples.filter((s) => s.source === 'netty-allocator').map((s) => s.used_bytes)).toEqual([17 * MiB, 18 * MiB, 19 * MiB]);
    expect(gatewayView!.samples.filter((s) => s.source === 'jvm-buffer-pool').map((s) => s.used_bytes)).toEqual([36864, 36864, 36864]);
  });

  it('a retried request adds nothing', async () => {
    const body = writeRequest([{ labels: { __name__: 'jvm_buffer_pool_used_bytes', pool: 'direct', instance: 'retry:9404', job: 'kafka' }, samples: samples(3, () => 4096) }]);
    expect((await send(base, body)).status).toBe(204);
    expect((await send(base, body)).status).toBe(204);
    expect((await memory()).find((p) => p.host === 'retry')!.samples).toHaveLength(4);
  });

  it('answers 400 for a body that is not a WriteRequest, 415 for Remote-Write 2.0, 413 past --max-body-bytes', async () => {
    const garbage = await send(base, snappy.compress(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01])));
    expect(garbage.status).toBe(400);
    expect(JSON.parse(garbage.body)).toMatchObject({ code: 'LW_ERR_BAD_BODY', where: { stage: 'protobuf:prometheus.WriteRequest' } });
    const notSnappy = await send(base, Buffer.from('hello'));
    expect(JSON.parse(notSnappy.body)).toMatchObject({ statusCode: 400, code: 'LW_ERR_BAD_BODY', where: { stage: 'content-encoding:snappy' } });
    const v2 = await send(base, writeRequest([]), { 'content-type': 'application/x-protobuf;proto=io.prometheus.write.v2.Request', 'x-prometheus-remote-write-version': '2.0.0' });
    expect(v2.status).toBe(415);
    expect(JSON.parse(v2.body)).toMatchObject({ code: 'LW_ERR_UNSUPPORTED_MEDIA_TYPE' });
    const huge = await send(base, Buffer.alloc(33 * MiB));
    expect(JSON.parse(huge.body)).toMatchObject({ statusCode: 413, code: 'LW_ERR_BODY_TOO_LARGE' });
  });
});

describe('POST /api/v1/write caps and tokens', () => {
  let running: RunningLeakwatch;
  let base: string;

  beforeAll(async () => {
    running = await startLeakwatch('remote-write-caps', { token: 'admin-secret', readToken: 'reader-secret', maxRecords: '10' });
    ({ base } = running);
  });
  afterAll(() => running.close());

  it('needs the admin token (Prometheus sends it as bearer_token or basic_auth password)', async () => {
    const body = writeRequest([{ labels: { __name__: 'jvm_buffer_pool_used_bytes', pool: 'direct', instance: 'a:1' }, samples: samples(1, () => 1) }]);
    expect((await send(base, body)).status).toBe(401);
    expect((await send(base, body, { authorization: 'Bearer reader-secret' })).status).toBe(403);
    expect((await send(base, body, { authorization: 'Bearer admin-secret' })).status).toBe(204);
    expect((await send(base, body, { authorization: `Basic ${Buffer.from('prometheus:admin-secret').toString('base64')}` })).status).toBe(204);
  });

  it('counts samples against --max-records (413, a final answer)', async () => {
    const body = writeRequest([{ labels: { __name__: 'up', instance: 'a:1' }, samples: samples(10, () => 1) }]);
    const answer = await send(base, body, { authorization: 'Bearer admin-secret' });
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toMatchObject({ code: 'LW_ERR_TOO_MANY_RECORDS', limit: { setting: '--max-records', value: 10 } });
  });
});
