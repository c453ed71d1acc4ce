/**
 * Forwarding in the whole service (real SQLite, real HTTP on loopback): a down target whose
 * backlog fills the outbox makes ingest answer 503 — /readyz and /metrics say why — and once it
 * is back nothing is lost; dead letters through the HTTP routes and their tokens; every grouped
 * record forwarded with #records=all, exactly as `leakwatch analyze --all` lists them; and
 * /metrics with what the issue asks for.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GroupedRecord } from '../../src/engine/grouped-record.js';
import { analyzeOffline, chunk, fluentBitRecord, type JournalEntry } from '../helpers/journal-corpus.js';
import { startLeakwatch, type RunningLeakwatch } from '../helpers/in-process.js';
import { JOURNAL_JSON } from '../helpers/netty-fixtures.js';
import { deliveredLines, startReceiver, type Receiver } from '../helpers/receiver.js';
import { shippedRulesWith } from '../helpers/rules-dir.js';
import { eventually } from '../helpers/serve-process.js';

const QUICK = 'max-wait=20ms&backoff=50ms&max-backoff=300ms';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: Record<string, unknown>;
}

async function call(url: string, options: { method?: 'GET' | 'POST'; body?: string | Buffer; headers?: Record<string, string> } = {}): Promise<Answer> {
  const response = await request(url, { method: options.method ?? 'GET', body: options.body, headers: options.headers });
  const text = await response.body.text();
  return { status: response.statusCode, headers: response.headers, json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

function metricLine(text: string, name: string): number | undefined {
  const match = new RegExp(`^${name.replace(/[{}"=.]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : undefined;
}

describe('forwarding in the service', () => {
  let work: string;
  let rules: ReturnType<typeof shippedRulesWith>;
  let entries: JournalEntry[];
  let expected: GroupedRecord[];
  const receivers: Receiver[] = [];
  const services: RunningLeakwatch[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'leakwatch-forward-service-'));
    // A record is grouped as soon as it arrives (no reorder window): events are stored while the shipper still sends.
    rules = shippedRulesWith({ expire_after: '2s', reorder_window: '0s' });
    entries = readFileSync(JOURNAL_JSON, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as JournalEntry);
    expected = await analyzeOffline(entries, rules.dir, work);
  });

  afterAll(async () => {
    for (const service of services) await service.close();
    for (const receiver of receivers) await receiver.close();
    rules.remove();
    rmSync(work, { recursive: true, force: true });
  });

  async function receiver(...args: Parameters<typeof startReceiver>): Promise<Receiver> {
    const made = await startReceiver(...args);
    receivers.push(made);
    return made;
  }

  async function service(name: string, settings: Parameters<typeof startLeakwatch>[1]): Promise<RunningLeakwatch> {
    const made = await startLeakwatch(name, { rulesDir: rules.dir, ...settings });
    services.push(made);
    return made;
  }

  it('a down target fills the outbox: ingest answers 503 LW_ERR_FORWARD_BACKLOG, /readyz names it; once it is back, nothing is lost', async () => {
    const gone = await startReceiver();
    const port = Number(new URL(gone.url).port);
    await gone.close();
    const target = `${gone.url}/events`;
    const running = await service('backlog', { forwardTargets: [`${target}#${QUICK}`], forwardOutboxBytes: '8KiB' });
    let downstream: Receiver | undefined;
    let refused = 0;
    for (const batch of chunk(entries, 20)) {
      // A shipper flushing every 100 ms; on 503 it waits Retry-After and sends the same batch again.
      await new Promise((resolve) => setTimeout(resolve, 100));
      for (;;) {
        const answer = await call(`${running.base}/ingest`, { method: 'POST', body: JSON.stringify(batch.map(fluentBitRecord)), headers: { 'content-type': 'application/json' } });
        if (answer.status === 200) break;
        expect(answer.status).toBe(503);
        expect(answer.json).toMatchObject({ code: 'LW_ERR_FORWARD_BACKLOG', limit: { setting: '--forward-outbox-bytes', value: 8192 } });
        expect(answer.json['message']).toContain(`${target} is not taking events (no answer: ECONNREFUSED`);
        expect(answer.headers['retry-after']).toBe('1');
        refused++;
        if (downstream === undefined) {
          const ready = await call(`${running.base}/readyz`);
          expect(ready.status).toBe(503);
          expect(ready.json).toMatchObject({ ready: false, checks: { rules: true, store: true, forward: false } });
          expect(ready.json['waiting_for']).toMatch(new RegExp(`^forward: the outbox is full \\(.+ of 8\\.0 KiB\\); ${target.replace(/[/.]/g, '\\$&')} is not taking events`));
          const metrics = await (await request(`${running.base}/metrics`)).body.text();
          expect(metricLine(metrics, 'leakwatch_forward_backlog')).toBe(1);
          expect(metricLine(metrics, `leakwatch_forward_target_up{target="${target}"}`)).toBe(0);
          expect(metricLine(metrics, `leakwatch_forward_outbox_bytes{target="${target}"}`)).toBeGreaterThanOrEqual(8192);
          expect(metricLine(metrics, `leakwatch_forward_outbox_oldest_seconds{target="${target}"}`)).toBeGreaterThan(0);
          downstream = await receiver(undefined, port);
        }
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
    expect(refused).toBeGreaterThan(0);
    await eventually(async () => (deliveredLines(downstream!).length >= expected.length ? true : undefined), 20_000);
    expect(deliveredLines<GroupedRecord>(downstream!).map((event) => event.id).sort()).toEqual(expected.map((event) => event.id).sort());
    expect((await call(`${running.base}/readyz`)).status).toBe(200);
    expect(metricLine(await (await request(`${running.base}/metrics`)).body.text(), 'leakwatch_forward_backlog')).toBe(0);
  });

  it('dead letters: listed and paged with the read token, re-queued with the admin token only, delivered once the target takes them', async () => {
    const downstream = await receiver(() => ({ status: 422, body: 'schema mismatch' }));
    const target = `${downstream.url}/`;
    const admin = { authorization: 'Bearer admin-secret' };
    const reader = { authorization: 'Bearer read-secret' };
    const running = await service('dead-letters', { forwardTargets: [`${target}#${QUICK}&batch=2`], token: 'admin-secret', readToken: 'read-secret' });
    const body = JSON.stringify(entries.map(fluentBitRecord));
    expect((await call(`${running.base}/ingest`, { method: 'POST', body, headers: { ...admin, 'content-type': 'application/json' } })).status).toBe(200);
    await eventually(async () => (running.service.store.deadLetters({ limit: 10 }).length === expected.length ? true : undefined), 20_000);

    expect((await call(`${running.base}/forward/dead-letters`)).status).toBe(401);
    const first = await call(`${running.base}/forward/dead-letters?limit=4`, { headers: reader });
    expect(first.status).toBe(200);
    const page = first.json['dead_letters'] as Array<Record<string, unknown>>;
    expect(page).toHaveLength(4);
    expect(page[0]).toEqual({ target, record_id: expect.any(String), status: 422, last_error: 'HTTP 422: schema mismatch', attempts: 1, created_at: expect.any(String), dead_at: expect.any(String), bytes: expect.any(Number) });
    const second = await call(`${running.base}/forward/dead-letters?limit=4&cursor=${String(first.json['next_cursor'])}&target=${encodeURIComponent(target)}`, { headers: reader });
    const rest = second.json['dead_letters'] as Array<Record<string, unknown>>;
    expect(second.json['next_cursor']).toBeNull();
    expect([...page, ...rest].map((row) => row['record_id']).sort()).toEqual(expected.map((event) => event.id).sort());
    expect((await call(`${running.base}/forward/dead-letters?cursor=bm9wZQ`, { headers: reader })).json).toMatchObject({ code: 'LW_ERR_BAD_PARAMETER', where: { parameter: 'cursor' } });
    expect((await call(`${running.base}/forward/dead-letters?colour=red`, { headers: reader })).status).toBe(400);

    expect((await call(`${running.base}/forward/dead-letters/retry`, { method: 'POST', headers: reader })).json).toMatchObject({ statusCode: 403, code: 'LW_ERR_FORBIDDEN' });
    expect((await call(`${running.base}/forward/dead-letters/retry?target=http%3A%2F%2Fnowhere%2F`, { method: 'POST', headers: admin })).json).toMatchObject({
      statusCode: 400,
      code: 'LW_ERR_BAD_PARAMETER',
      message: `target: not a configured target; configured: ${target}`,
    });
    downstream.answerWith(() => ({ status: 200 }));
    const retried = await call(`${running.base}/forward/dead-letters/retry?target=${encodeURIComponent(target)}`, { method: 'POST', headers: admin });
    expect(retried).toMatchObject({ status: 200, json: { requeued: expected.length } });
    await eventually(async () => (deliveredLines(downstream).length === expected.length ? true : undefined));
    expect((await call(`${running.base}/forward/dead-letters`, { headers: reader })).json).toEqual({ dead_letters: [], next_cursor: null });
  });

  it('#records=all forwards every grouped record as `analyze --all` lists it, in each stream\'s order; the events-only target beside it gets the events', async () => {
    const everything = await receiver();
    const eventsOnly = await receiver();
    const running = await service('records-all', { forwardTargets: [`${everything.url}/all#${QUICK}&records=all`, `${eventsOnly.url}/events#${QUICK}`] });
    const body = gzipSync(JSON.stringify(entries.map(fluentBitRecord)));
    expect((await call(`${running.base}/ingest`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } })).status).toBe(200);
    const all = await analyzeOffline(entries, rules.dir, work, { all: true });
    expect(all.length).toBeGreaterThan(expected.length);
    await eventually(async () => (deliveredLines(everything).length >= all.length && deliveredLines(eventsOnly).length >= expected.length ? true : undefined), 20_000);
    const got = deliveredLines<GroupedRecord>(everything);
    const strip = (record: GroupedRecord) => ({ ...record, incident_id: null });
    expect(got.map(strip).sort((a, b) => a.id.localeCompare(b.id))).toEqual(all.map(strip).sort((a, b) => a.id.localeCompare(b.id)));
    expect(got.filter((record) => record.category === null).length).toBe(all.length - expected.length);
    for (const host of ['edge-a', 'edge-b']) {
      const times = got.filter((record) => record.host === host).map((record) => record.timestamp);
      expect(times).toEqual([...times].sort());
    }
    expect(deliveredLines<GroupedRecord>(eventsOnly).map((event) => event.id).sort()).toEqual(expected.map((event) => event.id).sort());

    const metrics = await (await request(`${running.base}/metrics`)).body.text();
    // Node's own figures, which a tool about memory leaks exports about itself.
    for (const name of ['process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds', 'leakwatch_event_loop_delay_max_seconds', 'leakwatch_engine_open_streams', 'leakwatch_engine_evictions_total', 'leakwatch_queue_records']) {
      expect(metricLine(metrics, name), name).toBeGreaterThanOrEqual(0);
    }
    expect(metricLine(metrics, 'leakwatch_ingest_bodies_total{format="json",encoding="gzip"}')).toBe(1);
    expect(metricLine(metrics, 'leakwatch_ingest_body_records_total{format="json",encoding="gzip"}')).toBe(entries.length);
    expect(metricLine(metrics, 'leakwatch_ingest_body_bytes_total{format="json",encoding="gzip"}')).toBe(body.length);
    expect(metricLine(metrics, 'leakwatch_ingest_malformed_records_total')).toBe(0);
    for (const category of ['direct-memory-exhausted', 'exception-caught-at-tail', 'buffer-leak']) expect(metricLine(metrics, `leakwatch_events_total{category="${category}"}`)).toBe(2);
    expect(metricLine(metrics, `leakwatch_forward_delivered_total{target="${everything.url}/all"}`)).toBe(all.length);
    expect(metricLine(metrics, `leakwatch_forward_requests_total{target="${eventsOnly.url}/events",status="200"}`)).toBeGreaterThan(0);
    expect(metricLine(metrics, `leakwatch_forward_outbox_events{target="${eventsOnly.url}/events"}`)).toBe(0);
    expect(metricLine(metrics, `leakwatch_forward_dead_letters{target="${eventsOnly.url}/events"}`)).toBe(0);
  });
});
