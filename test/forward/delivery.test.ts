/**
 * The forwarder against real loopback receivers and a real SQLite outbox: every event arrives
 * however the target misbehaves for a while, a refusing target's events become dead letters that
 * a retry re-delivers, each stream's order is kept across lanes, one dead target stops nobody
 * else, and a stop leaves nothing behind that the next start does not send.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import type { LeakEvent } from '../../src/engine/event.js';
import { Forwarder, type ForwarderOptions } from '../../src/forward/forwarder.js';
import { LeakwatchMetrics } from '../../src/metrics.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { makeEvent } from '../incidents/fixtures.js';
import { deliveredLines, startReceiver, type Receiver } from '../helpers/receiver.js';
import { eventually } from '../helpers/serve-process.js';

const QUICK = 'backoff=20ms&max-backoff=200ms&max-wait=20ms';

/** `count` events over `hosts` streams, in time order per stream. */
function events(count: number, hosts = 4, offset = 0): LeakEvent[] {
  return Array.from({ length: count }, (_, index) =>
    makeEvent(index % 3 === 0 ? 'oodm' : index % 3 === 1 ? 'tail' : 'leak', { time: Date.UTC(2024, 10, 1, 12, 0, 0) + (offset + index) * 1000, host: `edge-${index % hosts}`, seq: offset + index }),
  );
}

function metricValue(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

describe('forwarding', () => {
  let dir: string;
  let store: SqliteStore;
  let metrics: LeakwatchMetrics;
  const started: Forwarder[] = [];
  const receivers: Receiver[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'leakwatch-forward-'));
    store = new SqliteStore(dir);
    metrics = new LeakwatchMetrics();
  });

  afterEach(async () => {
    for (const forwarder of started.splice(0)) await forwarder.stop(100);
    for (const receiver of receivers.splice(0)) await receiver.close();
    metrics.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function forwarder(urls: string[], settings: { forwardOutboxBytes?: string } = {}, options: Partial<ForwarderOptions> = {}): Forwarder {
    const config = resolveConfig({ dataDir: dir, forwardTargets: urls, ...settings }, {});
    const made = new Forwarder(config.forwardTargets, store, { outboxBytes: config.forwardOutboxBytes, outboxAgeMs: config.forwardOutboxAgeMs, log: pino({ level: 'silent' }), metrics, ...options });
    made.start();
    started.push(made);
    return made;
  }

  async function receiver(...args: Parameters<typeof startReceiver>): Promise<Receiver> {
    const made = await startReceiver(...args);
    receivers.push(made);
    return made;
  }

  function enqueue(target: Forwarder, batch: LeakEvent[]): void {
    store.transaction(() => target.enqueue(batch));
  }

  it('a target that answers 503 for a while, then 200, receives every event, in each stream\'s order', async () => {
    const downstream = await receiver((_request, index) => (index < 5 ? { status: 503, body: 'warming up' } : { status: 200 }));
    const sent = events(40);
    const target = forwarder([`${downstream.url}/events#${QUICK}&batch=7&concurrency=3`]);
    enqueue(target, sent.slice(0, 20));
    enqueue(target, sent.slice(20));
    await eventually(async () => (store.outboxTotals().every((t) => t.pendingEntries === 0) && deliveredLines(downstream).length >= 40 ? true : undefined));
    const got = deliveredLines<LeakEvent>(downstream);
    expect(new Set(got.map((event) => event.id))).toEqual(new Set(sent.map((event) => event.id)));
    expect(got).toHaveLength(40);
    for (let host = 0; host < 4; host++) {
      const order = got.filter((event) => event.host === `edge-${host}`).map((event) => event.timestamp);
      expect(order).toEqual([...order].sort());
    }
    expect(downstream.requests.slice(0, 5).map((request) => request.answered)).toEqual([503, 503, 503, 503, 503]);
    expect(downstream.requests.every((request) => request.body.split('\n').filter(Boolean).length <= 7)).toBe(true);
    const text = await metrics.render();
    expect(metricValue(text, 'leakwatch_forward_delivered_total', `target="${downstream.url}/events"`)).toBe(40);
    expect(metricValue(text, 'leakwatch_forward_retries_total', `target="${downstream.url}/events",status="503"`)).toBeGreaterThanOrEqual(5);
    expect(metricValue(text, 'leakwatch_forward_requests_total', `target="${downstream.url}/events",status="503"`)).toBe(5);
  });

  it('waits as long as Retry-After asks', async () => {
    const downstream = await receiver((_request, index) => (index === 0 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 }));
    const target = forwarder([`${downstream.url}/#${QUICK}`]);
    const started = Date.now();
    enqueue(target, events(1));
    await eventually(async () => (deliveredLines(downstream).length === 1 ? true : undefined));
    expect(downstream.requests).toHaveLength(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  });

  it('a target that answers 400 gets dead letters, and a retry re-delivers them once it takes them', async () => {
    const downstream = await receiver(() => ({ status: 400, body: '{"error":"mapping conflict on field fields.ratio"}' }));
    const target = forwarder([`${downstream.url}/ingest#${QUICK}&batch=5`]);
    const sent = events(12);
    enqueue(target, sent);
    await eventually(async () => (store.deadLetters({ limit: 100 }).length === 12 ? true : undefined));
    // Not retried: each event was sent once.
    expect(downstream.requests.flatMap((request) => request.body.split('\n').filter(Boolean))).toHaveLength(12);
    const dead = store.deadLetters({ limit: 100 });
    expect(new Set(dead.map((row) => row.recordId))).toEqual(new Set(sent.map((event) => event.id)));
    expect(dead[0]).toMatchObject({ target: `${downstream.url}/ingest`, lastStatus: 400, attempts: 1, lastError: 'HTTP 400: {"error":"mapping conflict on field fields.ratio"}' });
    expect(metricValue(await metrics.render(), 'leakwatch_forward_dead_lettered_total', `target="${downstream.url}/ingest",status="400"`)).toBe(12);

    downstream.answerWith(() => ({ status: 200 }));
    expect(target.retryDeadLetters(undefined)).toBe(12);
    await eventually(async () => (deliveredLines(downstream).length === 12 ? true : undefined));
    expect(new Set(deliveredLines<LeakEvent>(downstream).map((event) => event.id))).toEqual(new Set(sent.map((event) => event.id)));
    expect(store.deadLetters({ limit: 100 })).toEqual([]);
  });

  it('one dead target does not stop delivery to another; its backlog fills the outbox and says which target', async () => {
    const healthy = await receiver();
    const gone = await receiver();
    await gone.close();
    const target = forwarder([`${gone.url}/#${QUICK}`, `${healthy.url}/#${QUICK}`], { forwardOutboxBytes: '16KiB' });
    const sent = events(30);
    enqueue(target, sent);
    await eventually(async () => (deliveredLines(healthy).length === 30 ? true : undefined));
    const backlog = target.backlog();
    expect(backlog).toMatchObject({ target: `${gone.url}/`, outboxBytes: 16 * 1024 });
    expect(backlog!.pendingBytes).toBeGreaterThanOrEqual(16 * 1024);
    expect(backlog!.lastError).toMatch(/^no answer: ECONNREFUSED/);
    const [down, up] = target.status();
    expect(down).toMatchObject({ target: `${gone.url}/`, pending: 30, dead_letters: 0, last_error: expect.stringMatching(/ECONNREFUSED/) });
    expect(up).toMatchObject({ target: `${healthy.url}/`, pending: 0, failing_since: null, last_error: null });
  });

  it('a target back on its port after network errors receives everything', async () => {
    const first = await receiver();
    const port = Number(new URL(first.url).port);
    await first.close();
    const target = forwarder([`${first.url}/#${QUICK}`]);
    enqueue(target, events(9));
    await eventually(async () => (target.status()[0]!.last_error !== null ? true : undefined));
    const back = await receiver(undefined, port);
    await eventually(async () => (deliveredLines(back).length === 9 ? true : undefined));
    expect(target.status()[0]).toMatchObject({ pending: 0, last_error: null });
  });

  it('gives up after the give-up age: the events become dead letters, and say why', async () => {
    const downstream = await receiver(() => ({ status: 503, body: 'down for maintenance' }));
    const target = forwarder([`${downstream.url}/#${QUICK}&give-up=1s`]);
    enqueue(target, events(3));
    await eventually(async () => (store.deadLetters({ limit: 10 }).length === 3 ? true : undefined));
    expect(store.deadLetters({ limit: 10 })[0]).toMatchObject({ lastStatus: 503, lastError: 'gave up after 1s; last attempt: HTTP 503: down for maintenance' });
    expect(metricValue(await metrics.render(), 'leakwatch_forward_dead_lettered_total', `target="${downstream.url}/",status="give-up"`)).toBe(3);
  });

  it('drops dead letters past the outbox age, never silently: a log line and a counter say how many and why', async () => {
    const downstream = await receiver(() => ({ status: 400, body: 'no' }));
    let offset = 0;
    const clock = () => Date.now() + offset;
    const url = `${downstream.url}/#${QUICK}`;
    const first = forwarder([url], {}, { now: clock });
    enqueue(first, events(3));
    await eventually(async () => (store.deadLetters({ limit: 10 }).length === 3 ? true : undefined));
    await first.stop(100);
    offset = 7 * 86_400_000 + 1000;
    const lines: string[] = [];
    forwarder([url], {}, { now: clock, log: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }) });
    expect(store.deadLetters({ limit: 10 })).toEqual([]);
    const dropped = lines.map((line) => JSON.parse(line) as { msg: string; entries?: number; reason?: string }).find((line) => line.reason === 'age');
    expect(dropped).toMatchObject({ entries: 3, msg: `forward: dropped 3 dead letters of ${downstream.url}/, older than --forward-outbox-age (7d)` });
    expect(metricValue(await metrics.render(), 'leakwatch_forward_dead_letters_dropped_total', `target="${downstream.url}/",reason="age"`)).toBe(3);
  });

  it('batches by events, by bytes and by waiting, and sends gzip with the URL\'s credentials as Basic auth', async () => {
    const downstream = await receiver();
    const target = forwarder([`http://shipper:s%3Ccret@${new URL(downstream.url).host}/in?tenant=a#max-wait=300ms&batch=4&max-bytes=5KiB`]);
    expect(target.targets[0]!.name).toBe(`${downstream.url}/in`);
    const sent = events(10);
    for (const event of sent) enqueue(target, [event]);
    await eventually(async () => (deliveredLines(downstream).length === 10 ? true : undefined));
    const sizes = downstream.requests.map((request) => request.body.split('\n').filter(Boolean).length);
    // Each event is about 1.4 KB: max-bytes (5 KiB) cuts before max events (4) does; max-wait gathers singles.
    expect(Math.max(...sizes)).toBeLessThanOrEqual(3);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(10);
    expect(downstream.requests.length).toBeLessThan(10);
    const request = downstream.requests[0]!;
    expect(request.url).toBe('/in?tenant=a');
    expect(request.headers['content-encoding']).toBe('gzip');
    expect(request.headers['content-type']).toBe('application/x-ndjson');
    expect(request.headers['authorization']).toBe(`Basic ${Buffer.from('shipper:s<cret').toString('base64')}`);
    expect(request.headers['user-agent']).toMatch(/^leakwatch\//);
  });

  it('a stop sends what waits for its batch; what a down target has not taken is sent after the next start', async () => {
    const downstream = await receiver();
    const waiting = forwarder([`${downstream.url}/#max-wait=1h&gzip=false`]);
    enqueue(waiting, events(3));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(downstream.requests).toHaveLength(0);
    await waiting.stop(2000);
    expect(deliveredLines(downstream)).toHaveLength(3);
    expect(downstream.requests[0]!.headers['content-encoding']).toBeUndefined();

    const gone = await receiver();
    const port = Number(new URL(gone.url).port);
    await gone.close();
    const failing = forwarder([`${gone.url}/#${QUICK}`]);
    enqueue(failing, events(4, 2, 100));
    await eventually(async () => (failing.status()[0]!.last_error !== null ? true : undefined));
    await failing.stop(200);
    expect(store.outboxTotals()[0]).toMatchObject({ pendingEntries: 4, deadEntries: 0 });

    const back = await receiver(undefined, port);
    forwarder([`${gone.url}/#${QUICK}`]);
    await eventually(async () => (deliveredLines(back).length === 4 ? true : undefined));
  });
});
