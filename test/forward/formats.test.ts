/**
 * What Loki, Elasticsearch and an OpenTelemetry collector receive, field by field: the real
 * two-host Netty export goes through a whole leakwatch service to loopback receivers that check
 * each body the way that server does (test/helpers/downstreams.ts, first proven on each
 * project's own example), and answer as it answers. Then the answers that are not plain
 * successes: an Elasticsearch 200 with `"errors": true`, an OTLP partial success, and the status
 * rules of each format.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import type { LeakEvent } from '../../src/engine/event.js';
import { Forwarder } from '../../src/forward/forwarder.js';
import { SEVERITY_NUMBER } from '../../src/forward/formats/otlp.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { PACKAGE_VERSION } from '../../src/version.js';
import { bulkAnswer, bulkRequest, fixture, lokiPush, otlpLogsProblems, type BulkAction, type LokiEntry } from '../helpers/downstreams.js';
import { startLeakwatch, type RunningLeakwatch } from '../helpers/in-process.js';
import { expectEventsMatchManifest, JOURNAL_TEXT } from '../helpers/netty-fixtures.js';
import { deliveredLines, startReceiver, type Receiver } from '../helpers/receiver.js';
import { shippedRulesWith } from '../helpers/rules-dir.js';
import { eventually } from '../helpers/serve-process.js';
import { makeEvent } from '../incidents/fixtures.js';

describe('the test receivers accept each project\'s own example', () => {
  it('Loki: the push body of the API reference', () => {
    const { problems, entries } = lokiPush(fixture('loki-push.json'));
    expect(problems).toEqual([]);
    expect(entries).toEqual([{ labels: { foo: 'bar2' }, nanos: 1570818238000000000n, line: 'fizzbuzz' }]);
    // And refuse what Loki refuses.
    expect(lokiPush('{"streams":[{"stream":{"foo":"bar"},"values":[[1570818238000000000,"x"]]}]}').problems).toEqual(['streams[0].values[0]: the timestamp must be a string of nanoseconds']);
    expect(lokiPush('{"streams":[{"stream":{"1st":"x"},"values":[]}]}').problems).toEqual(['streams[0]: invalid label name 1st']);
  });

  it('Elasticsearch: the bulk request of the API reference, and its answer shape', () => {
    const { problems, actions } = bulkRequest(fixture('es-bulk-request.ndjson'));
    expect(problems).toEqual([]);
    expect(actions.map((action) => [action.action, action.meta['_id'], action.source !== undefined])).toEqual([
      ['index', '1', true],
      ['delete', '2', false],
      ['create', '3', true],
      ['update', '1', true],
    ]);
    expect(bulkRequest('{"index":{"_id":"1"}}\n').problems).toEqual(['line 2: the index action needs a source object']);
    const answer = JSON.parse(bulkAnswer(actions.slice(2, 3), () => 201)) as { errors: boolean; items: Array<Record<string, Record<string, unknown>>> };
    const documented = JSON.parse(fixture('es-bulk-errors-response.json')) as { items: Array<Record<string, Record<string, unknown>>> };
    expect(Object.keys(answer.items[0]!['create']!).sort()).toEqual(Object.keys(documented.items[2]!['create']!).sort());
  });

  it('OTLP: examples/logs.json of opentelemetry-proto', () => {
    expect(otlpLogsProblems(fixture('otlp-logs.json'))).toEqual([]);
    expect(otlpLogsProblems('{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severity_number":9,"body":{"stringValue":"x","intValue":"1"}}]}]}]}')).toEqual([
      'resourceLogs[0].scopeLogs[0].logRecords[0]: no field severity_number in LogRecord',
      'resourceLogs[0].scopeLogs[0].logRecords[0].body: an AnyValue holds exactly one value, got stringValue, intValue',
    ]);
  });
});

interface OtlpRecord {
  resource: Record<string, unknown>;
  record: Record<string, unknown> & { attributes: Array<{ key: string; value: Record<string, unknown> }> };
}

function flattenOtlp(body: string): OtlpRecord[] {
  const parsed = JSON.parse(body) as {
    resourceLogs: Array<{ resource: { attributes: Array<{ key: string; value: Record<string, unknown> }> }; scopeLogs: Array<{ scope: unknown; logRecords: OtlpRecord['record'][] }> }>;
  };
  return parsed.resourceLogs.flatMap((resourceLogs) => {
    const resource = Object.fromEntries(resourceLogs.resource.attributes.map((kv) => [kv.key, Object.values(kv.value)[0]]));
    return resourceLogs.scopeLogs.flatMap((scopeLogs) => {
      expect(scopeLogs.scope).toEqual({ name: 'leakwatch', version: PACKAGE_VERSION });
      return scopeLogs.logRecords.map((record) => ({ resource, record }));
    });
  });
}

describe('the Netty export, forwarded to NDJSON, Loki, Elasticsearch and OTLP receivers', () => {
  let rules: ReturnType<typeof shippedRulesWith>;
  let running: RunningLeakwatch;
  let ndjson: Receiver;
  let loki: Receiver;
  let elasticsearch: Receiver;
  let otlp: Receiver;
  let events: LeakEvent[];
  const lokiEntries: LokiEntry[] = [];
  const bulkActions: BulkAction[] = [];
  const otlpRecords: OtlpRecord[] = [];

  beforeAll(async () => {
    rules = shippedRulesWith({ expire_after: '2s' });
    ndjson = await startReceiver();
    loki = await startReceiver((received) => {
      const { problems, entries } = lokiPush(received.body);
      if (received.headers['content-type'] !== 'application/json' || problems.length > 0) return { status: 400, body: `${received.headers['content-type']}: ${problems.join('; ')}` };
      lokiEntries.push(...entries);
      return { status: 204 };
    });
    elasticsearch = await startReceiver((received) => {
      const { problems, actions } = bulkRequest(received.body);
      if (received.headers['content-type'] !== 'application/x-ndjson' || problems.length > 0) return { status: 400, body: JSON.stringify({ error: problems }) };
      bulkActions.push(...actions);
      return { status: 200, headers: { 'content-type': 'application/json' }, body: bulkAnswer(actions, () => 201) };
    });
    otlp = await startReceiver((received) => {
      const problems = otlpLogsProblems(received.body);
      if (received.headers['content-type'] !== 'application/json' || problems.length > 0) return { status: 400, body: JSON.stringify({ message: problems.join('; ') }) };
      otlpRecords.push(...flattenOtlp(received.body));
      return { status: 200, headers: { 'content-type': 'application/json' }, body: '{}' };
    });
    running = await startLeakwatch('formats', {
      rulesDir: rules.dir,
      forwardTargets: [
        `${ndjson.url}/vector#max-wait=50ms`,
        `${loki.url}/loki/api/v1/push#max-wait=50ms`,
        `${elasticsearch.url}/_bulk#max-wait=50ms&index=leakwatch-events`,
        `${otlp.url}/v1/logs#max-wait=50ms`,
      ],
    });
    const response = await request(`${running.base}/ingest`, { method: 'POST', body: readFileSync(JOURNAL_TEXT), headers: { 'content-type': 'text/plain' } });
    expect(response.statusCode).toBe(200);
    await response.body.dump();
    await eventually(async () => (deliveredLines(ndjson).length === 6 && lokiEntries.length === 6 && bulkActions.length === 6 && otlpRecords.length === 6 ? true : undefined), 30_000);
    events = deliveredLines<LeakEvent>(ndjson);
  });

  afterAll(async () => {
    await running?.close();
    for (const receiver of [ndjson, loki, elasticsearch, otlp]) await receiver?.close();
    rules?.remove();
  });

  it('NDJSON: every event once, as stored, as the program logged it', async () => {
    expectEventsMatchManifest(events);
    for (const event of events) {
      const stored = (await (await request(`${running.base}/incidents/${event.incident_id}`)).body.json()) as { events: LeakEvent[] };
      expect(stored.events).toContainEqual(event);
    }
    expect(ndjson.requests.every((received) => received.answered === 200)).toBe(true);
  });

  it('Loki: job, host, service, category and severity as labels (never pid or id), the event as the line, its time in ns', () => {
    expect(loki.requests.every((received) => received.answered === 204 && received.url === '/loki/api/v1/push' && received.headers['content-encoding'] === 'gzip')).toBe(true);
    expect(lokiEntries).toHaveLength(events.length);
    for (const event of events) {
      const entry = lokiEntries.find((candidate) => candidate.line.includes(`"id":"${event.id}"`));
      expect(entry, `a line |= "${event.id}"`).toBeDefined();
      expect(JSON.parse(entry!.line)).toEqual(event);
      expect(entry!.labels).toEqual({ job: 'leakwatch', host: event.host, service: event.service, category: event.category, severity: event.severity });
      expect(entry!.nanos).toBe(BigInt(Date.parse(event.timestamp)) * 1_000_000n);
    }
  });

  it('Elasticsearch: a create action per event with _id = the event id, the event with its @timestamp as the document', () => {
    expect(elasticsearch.requests.every((received) => received.answered === 200 && received.url === '/_bulk')).toBe(true);
    expect(bulkActions).toHaveLength(events.length);
    for (const event of events) {
      const action = bulkActions.find((candidate) => candidate.meta['_id'] === event.id);
      expect(action?.action).toBe('create');
      expect(action!.meta).toEqual({ _index: 'leakwatch-events', _id: event.id });
      expect(action!.source).toEqual({ '@timestamp': event.timestamp, ...event });
    }
  });

  it('OTLP: a resource per process, and per event a LogRecord with its time, severity, trace and ids', () => {
    expect(otlp.requests.every((received) => received.answered === 200 && received.url === '/v1/logs')).toBe(true);
    expect(otlpRecords).toHaveLength(events.length);
    for (const event of events) {
      const found = otlpRecords.find(({ record }) => record.attributes.some((kv) => kv.key === 'log.record.uid' && kv.value['stringValue'] === event.id));
      expect(found, `a LogRecord with log.record.uid ${event.id}`).toBeDefined();
      const { resource, record } = found!;
      expect(resource).toEqual({ 'host.name': event.host, 'service.name': event.service, 'process.pid': event.pid });
      expect(record.timeUnixNano).toBe(`${Date.parse(event.timestamp)}000000`);
      expect(record.observedTimeUnixNano).toMatch(/^\d{19}$/);
      expect(record.severityNumber).toBe(SEVERITY_NUMBER[event.severity]);
      expect(record.severityText).toBe(event.severity);
      expect(record.body).toEqual({ stringValue: event.text });
      const attributes = Object.fromEntries(record.attributes.map((kv) => [kv.key, kv.value]));
      expect(attributes['leakwatch.category']).toEqual({ stringValue: event.category });
      expect(attributes['leakwatch.rule']).toEqual({ stringValue: event.rule });
      expect(attributes['leakwatch.rule_version']).toEqual({ intValue: String(event.rule_version) });
      expect(attributes['leakwatch.incident_id']).toEqual({ stringValue: event.incident_id });
      expect(attributes['leakwatch.line_count']).toEqual({ intValue: String(event.line_count) });
      expect(attributes['leakwatch.tags']).toEqual(event.tags.length === 0 ? undefined : { arrayValue: { values: event.tags.map((tag) => ({ stringValue: tag })) } });
      expect(attributes['exception.type']).toEqual(event.exception === null ? undefined : { stringValue: event.exception.class });
      for (const [name, value] of Object.entries(event.fields)) {
        const expected = typeof value === 'number' ? (Number.isInteger(value) ? { intValue: String(value) } : { doubleValue: value }) : typeof value === 'boolean' ? { boolValue: value } : { stringValue: value };
        expect(attributes[`leakwatch.fields.${name}`], name).toEqual(expected);
      }
    }
    // The direct-memory numbers travel typed: used and max as integers, the ratio as a double.
    const oodm = otlpRecords.find(({ record }) => record.attributes.some((kv) => kv.key === 'leakwatch.category' && kv.value['stringValue'] === 'direct-memory-exhausted'));
    const attributes = Object.fromEntries(oodm!.record.attributes.map((kv) => [kv.key, kv.value]));
    expect(Object.keys(attributes['leakwatch.fields.used_bytes']!)).toEqual(['intValue']);
    expect(Object.keys(attributes['leakwatch.fields.ratio']!)).toEqual(['doubleValue']);
  });
});

describe('answers that are not plain successes', () => {
  let dir: string;
  let store: SqliteStore;
  const stops: Array<() => Promise<void>> = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'leakwatch-answers-'));
    store = new SqliteStore(dir);
  });

  afterAll(async () => {
    for (const stop of stops) await stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function forwardTo(url: string, answering: Parameters<typeof startReceiver>[0], sent: LeakEvent[]): Promise<{ receiver: Receiver; forwarder: Forwarder; name: string }> {
    const receiver = await startReceiver(answering);
    const config = resolveConfig({ dataDir: dir, forwardTargets: [`${receiver.url}${url}#concurrency=1&batch=100&max-wait=0ms&backoff=20ms&max-backoff=100ms`] }, {});
    const forwarder = new Forwarder(config.forwardTargets, store, { outboxBytes: config.forwardOutboxBytes, outboxAgeMs: config.forwardOutboxAgeMs, log: pino({ level: 'silent' }) });
    forwarder.start();
    stops.push(async () => {
      await forwarder.stop(100);
      await receiver.close();
    });
    store.transaction(() => forwarder.enqueue(sent));
    return { receiver, forwarder, name: config.forwardTargets[0]!.name };
  }

  const six = (offset: number): LeakEvent[] => Array.from({ length: 6 }, (_, index) => makeEvent('tail', { time: Date.UTC(2024, 10, 1) + (offset + index) * 1000, seq: offset + index }));

  it('Elasticsearch 200 with "errors": true: 2xx and 409 items are delivered, 429 and 5xx retried, the rest dead letters', async () => {
    const sent = six(0);
    const firstStatuses = [201, 409, 429, 400, 503, 201];
    const { receiver, name } = await forwardTo('/_bulk', (received, index) => {
      const { actions } = bulkRequest(received.body);
      return { status: 200, body: bulkAnswer(actions, (_action, item) => (index === 0 ? firstStatuses[item]! : 201)) };
    }, sent);
    await eventually(async () => (receiver.requests.length === 2 && (store.outboxTotals().find((t) => t.target === name)?.pendingEntries ?? 0) === 0 ? true : undefined));
    const idsOf = (index: number) => bulkRequest(receiver.requests[index]!.body).actions.map((action) => action.meta['_id']);
    expect(idsOf(0)).toEqual(sent.map((event) => event.id));
    // Only the 429 and the 503 went again, in their order.
    expect(idsOf(1)).toEqual([sent[2]!.id, sent[4]!.id]);
    const dead = store.deadLetters({ target: name, limit: 10 });
    expect(dead.map((row) => [row.recordId, row.lastStatus])).toEqual([[sent[3]!.id, 400]]);
    expect(dead[0]!.lastError).toBe('bulk item 400: mapper_parsing_exception: failed to parse field [fields.ratio] of type [long]');
  });

  it('OTLP: a partial success is not sent again (the batch is kept as dead letters, with the reason); 500 is not retried, 503 is', async () => {
    const partial = await forwardTo('/v1/logs', () => ({ status: 200, body: JSON.stringify({ partialSuccess: { rejectedLogRecords: '2', errorMessage: 'attribute value too long' } }) }), six(100));
    await eventually(async () => (store.deadLetters({ target: partial.name, limit: 10 }).length === 6 ? true : undefined));
    expect(partial.receiver.requests).toHaveLength(1);
    expect(store.deadLetters({ target: partial.name, limit: 1 })[0]!.lastError).toBe('HTTP 200: partial success: 2 of 6 log records rejected: attribute value too long');

    const broken = await forwardTo('/otlp-500/v1/logs', () => ({ status: 500, body: 'internal' }), six(200));
    await eventually(async () => (store.deadLetters({ target: broken.name, limit: 10 }).length === 6 ? true : undefined));
    expect(broken.receiver.requests).toHaveLength(1);

    const busy = await forwardTo('/otlp-503/v1/logs', (_received, index) => (index < 2 ? { status: 503 } : { status: 200, body: '{}' }), six(300));
    await eventually(async () => (busy.receiver.requests.length === 3 && (store.outboxTotals().find((t) => t.target === busy.name)?.pendingEntries ?? 0) === 0 ? true : undefined));
    expect(store.deadLetters({ target: busy.name, limit: 10 })).toEqual([]);
  });

  it('Loki (like NDJSON) retries a 500: a proxy in front of it passing its own trouble on', async () => {
    const loki = await forwardTo('/loki/api/v1/push', (_received, index) => (index === 0 ? { status: 500 } : { status: 204 }), six(400));
    await eventually(async () => (loki.receiver.requests.length === 2 && (store.outboxTotals().find((t) => t.target === loki.name)?.pendingEntries ?? 0) === 0 ? true : undefined));
    expect(store.deadLetters({ target: loki.name, limit: 10 })).toEqual([]);
  });
});
