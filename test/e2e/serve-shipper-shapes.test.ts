import { readFileSync } from 'node:fs';
import { deflateSync, gzipSync } from 'node:zlib';
import { encode, ExtensionCodec } from '@msgpack/msgpack';
import snappy from 'snappyjs';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import type { LeakEvent } from '../../src/engine/event.js';
import { startLeakwatch } from '../helpers/in-process.js';
import { JOURNAL_JSON, expectEventsMatchManifest } from '../helpers/netty-fixtures.js';
import { journalDataFields } from '../helpers/shipper-records.js';

// Issue 3: the real two-host Netty export, re-encoded as each shipper would send it (body shapes of
// field names of each shipper's journald input, see test/fixtures/shippers/bodies.ts), posted in three
// batches to a real server; the events must be exactly those of the export. Batches split traces,
// so grouping must carry across requests.

type Entry = Record<string, string>;
const entries: Entry[] = readFileSync(JOURNAL_JSON, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((line) => JSON.parse(line) as Entry);

const micros = (entry: Entry): number => Number(entry.__REALTIME_TIMESTAMP);

/** Vector's journald source (legacy namespace): MESSAGE → message, _HOSTNAME → host, a timestamp, keys sorted. */
function vectorEvent(entry: Entry): Record<string, unknown> {
  const { MESSAGE, _HOSTNAME, __REALTIME_TIMESTAMP, ...rest } = entry;
  const event: Record<string, unknown> = {
    ...rest,
    host: _HOSTNAME,
    message: MESSAGE,
    source_type: 'journald',
    timestamp: new Date(Number(__REALTIME_TIMESTAMP) / 1000).toISOString(),
  };
  return Object.fromEntries(Object.entries(event).sort(([a], [b]) => a.localeCompare(b)));
}

/** Fluent Bit's systemd input: the entry's data fields only (no __ address fields). */
/** Fluent Bit's out_http JSON: `date` first (seconds, %.16g double), then the record. */
function fluentBitJson(entry: Entry): string {
  const date = (micros(entry) / 1e6).toPrecision(16).replace(/0+$/, '').replace(/\.$/, '.0');
  return `{"date":${date},${JSON.stringify(journalDataFields(entry)).slice(1)}`;
}

class EventTime {
  constructor(readonly micros: number) {}
}
const fluentCodec = new ExtensionCodec();
fluentCodec.register({
  type: 0,
  encode: (value: unknown) => {
    if (!(value instanceof EventTime)) return null;
    const bytes = new Uint8Array(8);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, Math.floor(value.micros / 1e6));
    view.setUint32(4, (value.micros % 1e6) * 1000);
    return bytes;
  },
  decode: () => null,
});
const msgpackStream = (values: unknown[]): Buffer =>
  Buffer.concat(values.map((value) => encode(value, { extensionCodec: fluentCodec })));

interface Shape {
  name: string;
  contentType?: string;
  encoding?: 'gzip' | 'deflate' | 'snappy';
  body(batch: Entry[]): Buffer;
}

const SHAPES: Shape[] = [
  { name: 'Vector json, gzip', contentType: 'application/json', encoding: 'gzip', body: (b) => Buffer.from(JSON.stringify(b.map(vectorEvent))) },
  { name: 'Vector ndjson (no final newline), zlib', contentType: 'application/x-ndjson', encoding: 'deflate', body: (b) => Buffer.from(b.map((e) => JSON.stringify(vectorEvent(e))).join('\n')) },
  { name: 'Vector json + bytes framing (no content type), snappy', encoding: 'snappy', body: (b) => Buffer.from(b.map((e) => JSON.stringify(vectorEvent(e))).join('')) },
  { name: 'Fluent Bit json', contentType: 'application/json', body: (b) => Buffer.from(`[${b.map(fluentBitJson).join(',')}]`) },
  { name: 'Fluent Bit json_lines, gzip', contentType: 'application/x-ndjson', encoding: 'gzip', body: (b) => Buffer.from(b.map((e) => fluentBitJson(e) + '\n').join('')) },
  { name: 'Fluent Bit json_stream', contentType: 'application/json', body: (b) => Buffer.from(b.map(fluentBitJson).join('')) },
  { name: 'Fluent Bit msgpack v2, snappy', contentType: 'application/msgpack', encoding: 'snappy', body: (b) => msgpackStream(b.map((e) => [[new EventTime(micros(e)), {}], journalDataFields(e)])) },
  { name: 'Fluent Bit msgpack v1, gzip', contentType: 'application/msgpack', encoding: 'gzip', body: (b) => msgpackStream(b.map((e) => [new EventTime(micros(e)), journalDataFields(e)])) },
  { name: 'Fluentd ndjson, gzip', contentType: 'application/x-ndjson', encoding: 'gzip', body: (b) => Buffer.from(b.map((e) => JSON.stringify(journalDataFields(e)) + '\n').join('')) },
  { name: 'Fluentd json_array', contentType: 'application/json', body: (b) => Buffer.from(`[${b.map((e) => JSON.stringify(journalDataFields(e)) + '\n').join(',')}]`) },
  { name: 'Fluentd msgpack', contentType: 'application/x-msgpack', body: (b) => msgpackStream(b.map(journalDataFields)) },
];

function compress(body: Buffer, encoding: Shape['encoding']): Buffer {
  if (encoding === 'gzip') return gzipSync(body);
  if (encoding === 'deflate') return deflateSync(body);
  if (encoding === 'snappy') return Buffer.from(snappy.compress(body));
  return body;
}

describe('every shipper shape posted to the server yields the export\'s events', () => {
  for (const shape of SHAPES) {
    it(shape.name, async () => {
      const running = await startLeakwatch('shape');
      const { service, base } = running;
      try {
        const third = Math.ceil(entries.length / 3);
        for (let start = 0; start < entries.length; start += third) {
          const batch = entries.slice(start, start + third);
          const headers: Record<string, string> = {};
          if (shape.contentType) headers['content-type'] = shape.contentType;
          if (shape.encoding) headers['content-encoding'] = shape.encoding;
          const response = await request(`${base}/ingest`, { method: 'POST', headers, body: compress(shape.body(batch), shape.encoding) });
          const answer = await response.body.json();
          expect(response.statusCode, JSON.stringify(answer)).toBe(200);
          expect(answer).toEqual({ accepted: batch.length, malformed: 0, without_text: 0 });
        }
        await service.pipeline.whenIdle();
        service.pipeline.closeOpenGroups();
        const events: LeakEvent[] = [];
        for (const incident of service.incidents.list({ status: 'all', limit: 500 }).incidents) {
          events.push(...service.store.eventsOfIncident(incident.id, 1000));
        }
        expectEventsMatchManifest(events);
      } finally {
        await running.close();
      }
    });
  }
});
