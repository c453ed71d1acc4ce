import { encode } from '@msgpack/msgpack';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBody, type BodyFormat } from '../../src/ingest/decode-body.js';
import { BatchBuilder } from '../../src/ingest/formats/batch.js';
import { msgpackValueEnd } from '../../src/ingest/formats/msgpack.js';
import { RecordPacker } from '../../src/ingest/packed-records.js';
import { isLeakwatchError } from '../../src/errors.js';

/**
 * --max-records is checked twice: on a body's bytes before anything is built (values sure to make
 * a record are counted), and record by record as the decoder makes them. The first must never
 * refuse a body the second would take: these bodies mix values that make one record, none (blank
 * strings and lines, journalctl markers, empty `{"data":[]}` wrappers, Fluent Bit group markers)
 * and several (wrappers, arrays, forward-mode entries), and each is decoded with the cap at its
 * record count and one below.
 */
const LIMITS = { maxLineBytes: 2048, maxMessageBytes: 1024, maxDepth: 8 };
/** Over decodeJsonBody's string-body size (4 × 96 KiB), so that a JSON body is read as bytes and counted. */
const LARGE_BYTES = 400 * 1024;
const LINE = 'Nov 01 11:59:32 web-1 linkerd[5699]: W 1101 11:59:32.461 UTC THREAD40: Exception propagated to the default monitor';
const LONG = 'x'.repeat(3000);

const jsonElement = fc.constantFrom(
  `{"message":"${LINE}"}`,
  '{}',
  '{ }',
  '""',
  '"  "',
  `"${LINE}"`,
  '"-- Boot 0f2b6f9e4c1e4b1f8a4f4d0f3b0d7a11 --"',
  '12',
  'true',
  'nul',
  '[1,2]',
  `{"message":"${LONG}"}`,
  `{"a":${'{"a":'.repeat(12)}1${'}'.repeat(12)}}`,
);
const streamValue = fc.oneof(
  jsonElement,
  fc.constantFrom('{"data":[]}', '{"data":[{},"",{}]}', '{"d\\u0061ta":[]}', '{"data":1}', '{ "data" : [ ] }', '[{}, "", "x"]', '[]', 'ab', 'x', '{"message":"a" "b"}'),
);
const separator = fc.constantFrom('', '\n', ',', '\0', ' ');

const ndjsonLine = fc.constantFrom(`{"message":"${LINE}"}`, '{}', '  {}', '', ' ', '[{}, ""]', '[]', '"text"', '""', '12', '{x', `{"message":"${LONG}"}`);
const textLine = fc.constantFrom(LINE, '', '\r', '-- Boot 0f2b6f9e4c1e4b1f8a4f4d0f3b0d7a11 --', '-not a marker', '\tat io.netty.channel.AbstractChannelHandlerContext.invokeChannelRead', LONG);
const msgpackValue = fc.constantFrom(
  encode({ message: LINE }),
  Uint8Array.of(0x80),
  encode(''),
  encode(LINE),
  encode([1_509_537_572, { message: 'v1' }]),
  encode([[1_509_537_572, {}], { message: 'v2' }]),
  encode([[-1, {}], {}]),
  encode(['tag', [[1_509_537_572, { message: 'a' }], [1_509_537_573, { message: 'b' }]]]),
  encode(['tag', []]),
  encode(['tag', 1_509_537_572, { message: 'forward' }]),
  encode(7),
  encode(null),
  encode({ message: LONG }),
);

type Body = { raw: Buffer; contentType: string; format: BodyFormat };

/** `pieces` repeated until the body is large, so that its first 64 KiB are only a sample of it. */
function repeated(pieces: Buffer[]): Buffer {
  const unit = Buffer.concat(pieces);
  return Buffer.concat(Array<Buffer>(Math.max(1, Math.ceil(LARGE_BYTES / Math.max(1, unit.length)))).fill(unit));
}

function joined(values: string[], separators: string[]): string {
  return values.map((value, index) => `${value}${separators[index % separators.length] ?? ''}`).join('');
}

const body: fc.Arbitrary<Body> = fc.oneof(
  fc.array(jsonElement, { minLength: 1, maxLength: 20 }).map((elements) => {
    const unit = `${elements.join(',')},`;
    const all = unit.repeat(Math.ceil(LARGE_BYTES / unit.length));
    return { raw: Buffer.from(`[${all.slice(0, -1)}]`), contentType: 'application/json', format: 'json' as const };
  }),
  fc.array(jsonElement, { minLength: 1, maxLength: 20 }).map((elements) => {
    const unit = `${elements.join(',')},`;
    const all = unit.repeat(Math.ceil(LARGE_BYTES / unit.length));
    return { raw: Buffer.from(`{"data":[${all.slice(0, -1)}]}`), contentType: 'application/json', format: 'json' as const };
  }),
  fc.tuple(fc.array(streamValue, { minLength: 1, maxLength: 20 }), fc.array(separator, { minLength: 1, maxLength: 3 })).map(([values, separators]) => ({
    raw: repeated([Buffer.from(`${joined(values, separators)}\n`)]),
    contentType: 'application/json',
    format: 'json' as const,
  })),
  fc.array(ndjsonLine, { minLength: 1, maxLength: 20 }).map((lines) => ({ raw: repeated([Buffer.from(`${lines.join('\n')}\n`)]), contentType: 'application/x-ndjson', format: 'ndjson' as const })),
  fc.array(textLine, { minLength: 1, maxLength: 20 }).map((lines) => ({ raw: repeated([Buffer.from(`${lines.join('\n')}\n`)]), contentType: 'text/plain', format: 'text' as const })),
  fc.array(msgpackValue, { minLength: 1, maxLength: 20 }).map((values) => ({
    // A map first, so that the body sniffs as msgpack whatever follows.
    raw: repeated([Buffer.from(encode({ message: 'first' })), ...values.map((value) => Buffer.from(value))]),
    contentType: 'application/msgpack',
    format: 'msgpack' as const,
  })),
);

async function recordCount(raw: Buffer, contentType: string, maxRecords: number): Promise<number | 'refused'> {
  try {
    const decoded = await decodeBody(raw, contentType, 1_700_000_000_000, { ...LIMITS, maxRecords }, { blocking: true });
    return decoded.records.length;
  } catch (error) {
    if (isLeakwatchError(error) && error.code === 'LW_ERR_TOO_MANY_RECORDS') return 'refused';
    throw error;
  }
}

describe('--max-records', () => {
  it('refuses a body exactly when it makes more records than the cap, whatever its values make', async () => {
    const formats = new Set<BodyFormat>();
    await fc.assert(
      fc.asyncProperty(body, async ({ raw, contentType, format }) => {
        formats.add(format);
        const made = await recordCount(raw, contentType, 10_000_000);
        expect(made).not.toBe('refused');
        const count = made as number;
        expect(await recordCount(raw, contentType, count), `${format} at its own count ${count}`).toBe(count);
        if (count > 0) expect(await recordCount(raw, contentType, count - 1), `${format} one under ${count}`).toBe('refused');
      }),
      { numRuns: 60, seed: 20_261_202 },
    );
    expect([...formats].sort()).toEqual(['json', 'msgpack', 'ndjson', 'text']);
  }, 120_000);

  it.each([
    ['32 MiB of {}', Buffer.from('{}'.repeat(16 * 1024 * 1024)), 'application/json'],
    ['32 MiB of [{}, ...]', Buffer.from(`[${'{},'.repeat(11 * 1024 * 1024)}{}]`), 'application/json'],
    ['32 MiB of {"data":[{}, ...]}', Buffer.from(`{"data":[${'{},'.repeat(11 * 1024 * 1024)}{}]}`), 'application/json'],
    ['32 MiB of empty msgpack maps', Buffer.alloc(32 * 1024 * 1024, 0x80), 'application/msgpack'],
    ['32 MiB of one-byte lines', Buffer.from('a\n'.repeat(16 * 1024 * 1024)), 'text/plain'],
    ['32 MiB of {} lines', Buffer.from('{}\n'.repeat(11 * 1024 * 1024)), 'application/x-ndjson'],
  ])('%s: refused before a record is built', async (_name, raw, contentType) => {
    const packer = new RecordPacker(raw.length);
    const refusal = await decodeBody(raw, contentType, 1_700_000_000_000, {}, { blocking: true, packer }).catch((error: unknown) => error);
    expect(isLeakwatchError(refusal) && refusal.code).toBe('LW_ERR_TOO_MANY_RECORDS');
    expect(packer.size).toBe(0);
  });

  it('a body whose first 64 KiB hold few records is decoded, not counted, and refused as it goes', async () => {
    // One large record first: its sample projects few records, so the count is left to the decoder.
    const raw = Buffer.from(`[{"message":"${'x'.repeat(100 * 1024)}"},${'{},'.repeat(300_000)}{}]`);
    const packer = new RecordPacker(raw.length);
    const refusal = await decodeBody(raw, 'application/json', 1_700_000_000_000, { maxLineBytes: 1024 * 1024, maxMessageBytes: 1024 * 1024 }, { blocking: true, packer }).catch((error: unknown) => error);
    expect(isLeakwatchError(refusal) && refusal.code).toBe('LW_ERR_TOO_MANY_RECORDS');
    expect(packer.size).toBe(250_000);
  });
});

describe('BatchBuilder#refuseIfCertainlyOver', () => {
  /** Values of `bytes` each, `counted` or not, as a format's scan yields them; `taken` says how many were read. */
  function scan(values: number, bytes: number, counted: (index: number) => boolean): { ends: Iterable<number>; taken: () => number } {
    let taken = 0;
    function* ends(): Generator<number> {
      for (let index = 0; index < values; index++) {
        taken++;
        const end = (index + 1) * bytes;
        yield counted(index) ? end : -end;
      }
    }
    return { ends: ends(), taken: () => taken };
  }

  it('reads an ordinary body no further than its first 64 KiB, whatever its values are', () => {
    const batch = new BatchBuilder(0, { maxRecords: 250_000 });
    // 32 MiB of 300-byte records, then of 40-byte strings that make none.
    for (const [bytes, counted] of [[300, () => true], [40, () => false], [40, (index: number) => index % 7 === 0]] as const) {
      const values = Math.floor((32 * 1024 * 1024) / bytes);
      const { ends, taken } = scan(values, bytes, counted);
      batch.refuseIfCertainlyOver(ends, values * bytes);
      expect(taken() * bytes).toBeGreaterThanOrEqual(64 * 1024);
      expect(taken() * bytes).toBeLessThan(64 * 1024 + bytes);
    }
  });

  it('counts a dense body to the cap and refuses it there, not further', () => {
    const batch = new BatchBuilder(0, { maxRecords: 250_000 });
    const { ends, taken } = scan(16 * 1024 * 1024, 2, () => true);
    expect(() => batch.refuseIfCertainlyOver(ends, 32 * 1024 * 1024)).toThrow(expect.objectContaining({ code: 'LW_ERR_TOO_MANY_RECORDS' }));
    expect(taken()).toBe(250_001);
  });
});

describe('msgpackValueEnd', () => {
  it('finds the end of any value, alone or followed by others, and never past a cut one', () => {
    fc.assert(
      fc.property(fc.array(fc.anything({ withBigInt: false, withTypedArray: true, withDate: true, withMap: false, withSet: false, withNullPrototype: false }), { minLength: 1, maxLength: 5 }), (values) => {
        const encoded = values.map((value) => Buffer.from(encode(value)));
        const all = Buffer.concat(encoded);
        let at = 0;
        for (const one of encoded) {
          const end = msgpackValueEnd(all, at);
          expect(end).toBe(at + one.length);
          expect(msgpackValueEnd(all.subarray(0, end - 1), at)).toBe(-1);
          at = end;
        }
      }),
      { numRuns: 500, seed: 20_261_202 },
    );
  });

  it('refuses the byte msgpack never uses, and container sizes that run past the body', () => {
    expect(msgpackValueEnd(Uint8Array.of(0xc1), 0)).toBe(-1);
    expect(msgpackValueEnd(Uint8Array.of(0xdf, 0xff, 0xff, 0xff, 0xff, 0x80, 0x80), 0)).toBe(-1);
    expect(msgpackValueEnd(Uint8Array.of(0xc7, 0x02, 0x05, 0x01), 0)).toBe(-1);
    expect(msgpackValueEnd(Uint8Array.of(0xc7, 0x02, 0x05, 0x01, 0x02), 0)).toBe(5);
  });
});
