import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installErrorShape } from '../../src/errors.js';
import { incidentRoutes } from '../../src/incidents/routes.js';
import { IncidentService, type IncidentView } from '../../src/incidents/service.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { makeEvent } from './fixtures.js';

const MIN = 60_000;
const T0 = Date.parse('2017-11-01T16:59:32.962Z');

let dir: string;
let store: SqliteStore;
let incidents: IncidentService;
let app: FastifyInstance;
let base: string;

async function getJson(path: string, init?: RequestInit): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(base + path, init);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'leakwatch-routes-'));
  store = new SqliteStore(dir);
  incidents = new IncidentService(store, { quietPeriodMs: 30 * MIN });
  // 12 hosts with an OODM incident each; pairs of hosts share a last_seen to exercise the id tie-break.
  const events = [];
  for (let i = 0; i < 12; i++) {
    const host = `lb-${String(i).padStart(2, '0')}`;
    events.push(makeEvent('oodm', { time: T0 + Math.floor(i / 2) * MIN, host, severity: i % 3 === 0 ? 'critical' : 'error' }));
  }
  events.push(makeEvent('leak', { time: T0 - 5 * MIN, host: 'lb-00' }));
  events.push(makeEvent('tail', { time: T0 - MIN, host: 'lb-00' }));
  incidents.ingest(events);
  app = Fastify();
  installErrorShape(app);
  await app.register(incidentRoutes, { incidents });
  base = (await app.listen({ port: 0, host: '127.0.0.1' })).replace('localhost', '127.0.0.1');
});

afterAll(async () => {
  await app.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('GET /incidents', () => {
  it('pages through every open incident in a stable last_seen desc, id order', async () => {
    const seen: IncidentView[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `/incidents?limit=5${cursor ? `&cursor=${cursor}` : ''}`;
      const { status, body } = await getJson(query);
      expect(status).toBe(200);
      seen.push(...(body['incidents'] as IncidentView[]));
      cursor = body['next_cursor'] as string | null;
      pages++;
    } while (cursor !== null && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(14);
    expect(new Set(seen.map((i) => i.id)).size).toBe(14);
    const sorted = [...seen].sort((a, b) => (a.last_seen === b.last_seen ? (a.id < b.id ? -1 : 1) : a.last_seen > b.last_seen ? -1 : 1));
    expect(seen.map((i) => i.id)).toEqual(sorted.map((i) => i.id));
    const all = await getJson('/incidents?limit=500');
    expect((all.body['incidents'] as IncidentView[]).map((i) => i.id)).toEqual(seen.map((i) => i.id));
    expect(all.body['next_cursor']).toBeNull();
  });

  it('filters by host, category, rule, exact severity and since', async () => {
    const byHost = (await getJson('/incidents?host=lb-00')).body['incidents'] as IncidentView[];
    expect(byHost.map((i) => i.category).sort()).toEqual(['buffer-leak', 'direct-memory-exhausted', 'exception-caught-at-tail']);
    const oodm = byHost.find((i) => i.category === 'direct-memory-exhausted')!;
    expect(oodm.evidence.map((e) => [e.category, e.count])).toEqual([['buffer-leak', 1], ['exception-caught-at-tail', 1]]);
    for (const key of ['id', 'key', 'rule', 'category', 'severity', 'status', 'host', 'service', 'pids', 'first_seen', 'last_seen', 'count', 'summary', 'fields', 'evidence', 'last_event', 'acked_at', 'resolved_at', 'reopened_count']) {
      expect(oodm).toHaveProperty(key);
    }

    const critical = (await getJson('/incidents?severity=critical&category=direct-memory-exhausted')).body['incidents'] as IncidentView[];
    expect(critical.map((i) => i.host).sort()).toEqual(['lb-00', 'lb-03', 'lb-06', 'lb-09']);
    const byRule = (await getJson('/incidents?rule=netty-buffer-leak')).body['incidents'] as IncidentView[];
    expect(byRule.map((i) => i.host)).toEqual(['lb-00']);
    const since = new Date(T0 + 5 * MIN).toISOString();
    const recent = (await getJson(`/incidents?since=${encodeURIComponent(since)}`)).body['incidents'] as IncidentView[];
    expect(recent.map((i) => i.host).sort()).toEqual(['lb-10', 'lb-11']);
    const recentMs = (await getJson(`/incidents?since=${T0 + 5 * MIN}`)).body['incidents'] as IncidentView[];
    expect(recentMs.map((i) => i.id)).toEqual(recent.map((i) => i.id));
    expect(((await getJson('/incidents?status=resolved')).body['incidents'] as unknown[]).length).toBe(0);
  });

  it.each([
    ['limit=0', 'limit'],
    ['limit=501', 'limit'],
    ['limit=ten', 'limit'],
    ['status=closed', 'status'],
    ['severity=high', 'severity'],
    ['since=yesterday', 'since'],
    ['cursor=not-a-cursor', 'cursor'],
    ['stauts=open', 'stauts'],
    ['host=a&host=b', 'host'],
  ])('answers 400 naming the parameter for %s', async (query, parameter) => {
    const { status, body } = await getJson(`/incidents?${query}`);
    expect(status).toBe(400);
    expect(body).toMatchObject({ statusCode: 400, code: 'LW_ERR_BAD_PARAMETER', error: 'Bad Request', where: { parameter } });
    expect(String(body['message'])).toContain(parameter);
  });
});

describe('GET /incidents/:id and actions', () => {
  it('returns the incident with its latest events, newest first', async () => {
    const [first] = (await getJson('/incidents?host=lb-05')).body['incidents'] as IncidentView[];
    incidents.ingest([makeEvent('oodm', { time: T0 + 2 * MIN + 1000, host: 'lb-05', pid: '6001' })]);
    const { status, body } = await getJson(`/incidents/${first!.id}`);
    expect(status).toBe(200);
    expect(body['count']).toBe(2);
    expect(body['pids']).toEqual(['5699', '6001']);
    const events = body['events'] as { pid: string; incident_id: string }[];
    expect(events.map((e) => e.pid)).toEqual(['6001', '5699']);
    expect(events.every((e) => e.incident_id === first!.id)).toBe(true);
  });

  it('acks and resolves over POST, 404 for an unknown id', async () => {
    const [incident] = (await getJson('/incidents?host=lb-07')).body['incidents'] as IncidentView[];
    const acked = await getJson(`/incidents/${incident!.id}/ack`, { method: 'POST' });
    expect(acked.status).toBe(200);
    expect(acked.body).toMatchObject({ id: incident!.id, status: 'open' });
    expect(typeof acked.body['acked_at']).toBe('string');
    const resolved = await getJson(`/incidents/${incident!.id}/resolve`, { method: 'POST' });
    expect(resolved.body).toMatchObject({ id: incident!.id, status: 'resolved' });
    const listed = (await getJson('/incidents?status=resolved')).body['incidents'] as IncidentView[];
    expect(listed.map((i) => i.id)).toEqual([incident!.id]);

    for (const [path, method] of [['/incidents/ffffffffffffffffffffffff', 'GET'], ['/incidents/ffffffffffffffffffffffff/ack', 'POST'], ['/incidents/ffffffffffffffffffffffff/resolve', 'POST']] as const) {
      const { status, body } = await getJson(path, { method });
      expect(status).toBe(404);
      expect(body).toMatchObject({ statusCode: 404, code: 'LW_ERR_NOT_FOUND' });
      expect(String(body['message'])).toContain('ffffffffffffffffffffffff');
    }
  });
});
