import { describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig } from '../../src/config.js';
import { backoffMs, laneOf, retryAfterMs } from '../../src/forward/forwarder.js';
import { parseForwardTarget, TargetSpecError } from '../../src/forward/target.js';

describe('a forwarding target from its URL', () => {
  it.each([
    ['http://vector:8080/', 'ndjson'],
    ['http://fluent-bit:9880/leakwatch', 'ndjson'],
    ['http://loki:3100/loki/api/v1/push', 'loki'],
    ['https://logs.example/tenant-1/loki/api/v1/push', 'loki'],
    ['http://es:9200/_bulk', 'elasticsearch'],
    ['http://es:9200/leakwatch-events/_bulk', 'elasticsearch'],
    ['http://otel-collector:4318/v1/logs', 'otlp'],
    ['http://vector:8080/v1/logs#format=ndjson', 'ndjson'],
  ])('%s is %s', (url, format) => {
    expect(parseForwardTarget(url).format).toBe(format);
  });

  it('takes every option from the fragment, and its defaults otherwise', () => {
    const target = parseForwardTarget('https://es:9200/_bulk#index=lw&records=all&batch=50&max-bytes=1MiB&max-wait=250ms&concurrency=4&gzip=false&give-up=2h&backoff=1s&max-backoff=2m&timeout=5s&action=index');
    expect(target).toMatchObject({
      name: 'https://es:9200/_bulk',
      origin: 'https://es:9200',
      path: '/_bulk',
      format: 'elasticsearch',
      records: 'all',
      batchEvents: 50,
      batchBytes: 1024 * 1024,
      maxWaitMs: 250,
      concurrency: 4,
      gzip: false,
      giveUpMs: 2 * 3_600_000,
      backoffMs: 1000,
      maxBackoffMs: 120_000,
      timeoutMs: 5000,
      index: 'lw',
      bulkAction: 'index',
    });
    expect(parseForwardTarget('http://es:9200/_bulk')).toMatchObject({ index: 'leakwatch', bulkAction: 'create', records: 'events', batchEvents: 500, gzip: true, concurrency: 2, giveUpMs: undefined });
    // The index in the path is the index: none named per action.
    expect(parseForwardTarget('http://es:9200/events/_bulk').index).toBeUndefined();
  });

  it('turns userinfo into Basic auth and keeps it out of the name, which keeps the query out too', () => {
    const target = parseForwardTarget('https://user:p%40ss@loki.example:3100/loki/api/v1/push?X-Scope-OrgID=1');
    expect(target.authorization).toBe(`Basic ${Buffer.from('user:p@ss').toString('base64')}`);
    expect(target.name).toBe('https://loki.example:3100/loki/api/v1/push');
    expect(target.path).toBe('/loki/api/v1/push?X-Scope-OrgID=1');
    expect(parseForwardTarget('http://a:1/#name=primary-loki').name).toBe('primary-loki');
  });

  it.each([
    ['ftp://host/', /only http and https/],
    ['http://es:9200/x#format=elasticsearch', /posts to \/_bulk/],
    ['http://h/#format=syslog', /format=syslog: expected one of ndjson, loki, elasticsearch, otlp/],
    ['http://h/#batch=0', /batch=0: expected a whole number from 1/],
    ['http://h/#max-wait=soon', /max-wait=soon: expected a duration/],
    ['http://h/#gzip=maybe', /gzip=maybe: expected true or false/],
    ['http://h/#colour=red', /unknown option "colour"/],
    ['http://h/#batch=1&batch=2', /given twice/],
    ['http://h/#index=x', /index= is an Elasticsearch option/],
    ['http://es/_bulk#index=Upper', /not an Elasticsearch index name/],
    ['http://es/i/_bulk#index=j', /name the index once/],
    ['http://h/#backoff=10s&max-backoff=1s', /shorter than backoff/],
    ['http://us%ZZer:pw@h/', /not valid percent-encoding/],
  ])('refuses %s clearly', (url, message) => {
    expect(() => parseForwardTarget(url)).toThrow(TargetSpecError);
    expect(() => parseForwardTarget(url)).toThrow(message);
  });
});

describe('--forward-url and LEAKWATCH_FORWARD_URL', () => {
  it('take several targets, repeated or comma-separated, and give each a give-up no later than the outbox age', () => {
    const fromFlags = resolveConfig({ forwardTargets: ['http://a:1/', 'http://b:2/loki/api/v1/push#give-up=1h'] }, {});
    expect(fromFlags.forwardTargets.map((target) => [target.name, target.format, target.giveUpMs])).toEqual([
      ['http://a:1/', 'ndjson', 24 * 3_600_000],
      ['http://b:2/loki/api/v1/push', 'loki', 3_600_000],
    ]);
    const fromEnv = resolveConfig({}, { LEAKWATCH_FORWARD_URL: 'http://a:1/, http://es:9200/_bulk', LEAKWATCH_FORWARD_OUTBOX_AGE: '2h' });
    expect(fromEnv.forwardTargets.map((target) => [target.format, target.giveUpMs])).toEqual([
      ['ndjson', 2 * 3_600_000],
      ['elasticsearch', 2 * 3_600_000],
    ]);
    expect(fromEnv.forwardOutboxBytes).toBe(256 * 1024 * 1024);
  });

  it('name what is wrong without repeating a password', () => {
    const attempt = () => resolveConfig({ forwardTargets: ['http://user:hunter2@h:1/#batch=lots'] }, {});
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow('--forward-url: http://***@h:1/#batch=lots: batch=lots: expected a whole number from 1 to 100000');
    expect(attempt).not.toThrow(/hunter2/);
    expect(() => resolveConfig({}, { LEAKWATCH_FORWARD_URL: 'http://h:1/,http://h:1/' })).toThrow('LEAKWATCH_FORWARD_URL: two targets are named http://h:1/; give one a #name=');
    expect(() => resolveConfig({ forwardTargets: ['http://h:1/#give-up=30d'] }, {})).toThrow('give-up (30d) is longer than --forward-outbox-age (7d)');
  });
});

describe('lanes and backoff', () => {
  it('puts a stream in the same lane every time, and spreads streams over the lanes', () => {
    const streams = Array.from({ length: 64 }, (_, index) => `edge-${index}\u001flinkerd\u001f${1000 + index}`);
    expect(streams.map((stream) => laneOf(stream, 4))).toEqual(streams.map((stream) => laneOf(stream, 4)));
    const perLane = [0, 1, 2, 3].map((lane) => streams.filter((stream) => laneOf(stream, 4) === lane).length);
    // Keys that differ only in repeated digits still spread (plain FNV-1a would use two lanes of four).
    for (const count of perLane) expect(count).toBeGreaterThanOrEqual(8);
    expect(laneOf('', 3)).toBe(laneOf('', 3));
  });

  it('draws each delay uniformly up to a ceiling that doubles per attempt, to the cap', () => {
    expect([1, 2, 3, 4, 10].map((attempt) => backoffMs(attempt, 500, 60_000, () => 0.999999))).toEqual([500, 1000, 2000, 4000, 60_000]);
    expect(backoffMs(3, 500, 60_000, () => 0)).toBe(0);
    expect(backoffMs(2, 500, 60_000, () => 0.5)).toBe(500);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.UTC(2024, 10, 1, 12, 0, 0);
    expect(retryAfterMs('120', now)).toBe(120_000);
    expect(retryAfterMs('Fri, 01 Nov 2024 12:00:30 GMT', now)).toBe(30_000);
    expect(retryAfterMs(undefined, now)).toBeUndefined();
    expect(retryAfterMs('soon', now)).toBeUndefined();
  });
});
