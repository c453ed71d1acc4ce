import { encode } from '@msgpack/msgpack';
import { describe, expect, it } from 'vitest';
import { chooseFormat, decodeBody } from '../../src/ingest/decode-body.js';
import { LeakwatchError } from '../../src/errors.js';
import { VECTOR_JOURNALD_EVENTS } from '../fixtures/shippers/bodies.js';

const NOW = Date.UTC(2024, 4, 1, 12, 0, 0);
const one = JSON.stringify(VECTOR_JOURNALD_EVENTS[0]);
const two = JSON.stringify(VECTOR_JOURNALD_EVENTS[1]);

function decode(body: string | Buffer, contentType?: string): ReturnType<typeof decodeBody> {
  return decodeBody(Buffer.isBuffer(body) ? body : Buffer.from(body), contentType, NOW);
}

async function thrown(run: () => Promise<unknown>): Promise<LeakwatchError> {
  try {
    await run();
  } catch (error) {
    if (error instanceof LeakwatchError) return error;
    throw error;
  }
  throw new Error('expected an LeakwatchError');
}

describe('JSON family (Vector framings, src/sinks/http/encoder.rs and config.rs)', () => {
  it('payload_prefix wrapper {"data":[...]}', async () => {
    expect((await decode(`{"data":[${one},${two}]}`, 'application/json')).records.map((record) => record.service)).toEqual(['ntpd', 'linkerd']);
  });

  it('a single object is one record; an object that merely has a data field is too', async () => {
    expect((await decode(one, 'application/json')).records).toHaveLength(1);
    expect((await decode('{"data":[1,2],"message":"m"}', 'application/json')).records.map((record) => record.message)).toEqual(['m']);
  });

  it('character_delimited with another delimiter, GELF NUL framing, bytes framing', async () => {
    expect((await decode(`${one}|${two}|`)).records).toHaveLength(2);
    expect((await decode(`${one}\0${two}\0`)).records).toHaveLength(2);
    expect((await decode(`${one}${two}`)).records).toHaveLength(2);
  });

  it('an unbalanced quote mid-stream: later records survive, the broken part is counted', async () => {
    const batch = await decode(`${one}\n{"message":"broken}\n${two}\n`, 'application/json');
    expect(batch.records.map((record) => record.service)).toEqual(['ntpd', '', 'linkerd']);
    expect(batch.malformed).toBe(1);
  });

  it('a first value that never ends, with nothing parseable after it, is a 400 with its place', async () => {
    const error = await thrown(() => decode('\n\n{"message":"never closed', 'application/json'));
    expect(error.statusCode).toBe(400);
    expect(error.where).toEqual({ stage: 'json', byteOffset: 2, line: 3 });
  });

  it('Fluentd json_array with one broken element keeps the others', async () => {
    const batch = await decode(`[${one}\n,{"message":}\n,${two}\n]`, 'application/json');
    expect(batch.records).toHaveLength(3);
    expect(batch.malformed).toBe(1);
  });
});

describe('format choice', () => {
  it('sniffs when the type is missing or generic', async () => {
    expect(chooseFormat(Buffer.from('  [1]'), undefined)).toBe('json');
    expect(chooseFormat(Buffer.from(encode({ a: 1 })), 'application/octet-stream')).toBe('msgpack');
    expect(chooseFormat(Buffer.from('Nov 01 11:59:32 h s[1]: m'), '*/*')).toBe('text');
    expect(chooseFormat(Buffer.from('Nov 01 11:59:32 h s[1]: m'), 'application/json')).toBe('text');
    expect(chooseFormat(Buffer.from('{}'), 'application/problem+json; charset=utf-8')).toBe('json');
  });
});

describe('msgpack', () => {
  it('Fluentd plain maps and forward-mode [tag, [[time, record]...]]', async () => {
    const body = Buffer.concat([
      Buffer.from(encode({ message: 'a' })),
      Buffer.from(encode(['app.log', [[1714564800, { message: 'b' }], [1714564801, { message: 'c' }]]])),
      Buffer.from(encode(['app.log', 1714564802, { message: 'd' }])),
    ]);
    const batch = await decode(body, 'application/x-msgpack');
    expect(batch.records.map((record) => [record.message, record.time])).toEqual([
      ['a', NOW],
      ['b', 1714564800000],
      ['c', 1714564801000],
      ['d', 1714564802000],
    ]);
  });

  it('a float time in seconds (Fluent Bit v1 without EventTime)', async () => {
    expect((await decode(Buffer.from(encode([1714564800.25, { log: 'x' }])), 'application/msgpack')).records[0]?.time).toBe(1714564800250);
  });

  it('a bogus 2^32 array length fails as a 400, not an allocation', async () => {
    const error = await thrown(() => decode(Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]), 'application/msgpack'));
    expect(error.statusCode).toBe(400);
    expect(error.where?.stage).toBe('msgpack');
  });
});

describe('text', () => {
  it('CRLF and blank lines', async () => {
    expect((await decode('a\r\n\r\nb\r\n', 'text/plain')).records.map((record) => record.message)).toEqual(['a', 'b']);
  });
});
