// Bodies decoded from their bytes, a piece at a time, must make exactly what their whole text makes.
import fc from 'fast-check';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeContentEncoding } from '../../src/ingest/content-encoding.js';
import { BatchBuilder } from '../../src/ingest/formats/batch.js';
import { linePieces, TEXT_PIECE_BYTES } from '../../src/ingest/formats/body-text.js';
import { decodeJson, decodeJsonBody } from '../../src/ingest/formats/json.js';
import { TimeSlicer } from '../../src/ingest/time-slice.js';

const RECEIVED_AT = Date.UTC(2026, 11, 2, 9, 0, 0);
/** Small enough that some elements are over it, or over a third of it (each then parsed alone). */
const LIMITS = { maxLineBytes: 600 };
const neverYield = (): TimeSlicer => new TimeSlicer(Number.POSITIVE_INFINITY);

/** Text with the characters that matter: multi-byte ones (2, 3 and 4 bytes), escapes, a BOM. */
const text = fc.string({ unit: fc.constantFrom('a', 'é', '€', '𝄞', '\\"', '\\\\', ' ', '\ufeff', '"', '{', ']'), maxLength: 40 });
const record = fc.record({ message: text, host: fc.constantFrom('h1', 'hé'), n: fc.integer() }).map((value) => JSON.stringify(value));
/** Array elements as a shipper sends them, and as a broken or hostile one might. */
const element = fc.oneof(
  { weight: 8, arbitrary: record },
  { weight: 1, arbitrary: fc.json() },
  { weight: 1, arbitrary: text.map((value) => JSON.stringify(value)) },
  { weight: 1, arbitrary: fc.constantFrom('{"message":', '{"message":"x"]', 'nope', '12', 'true', '{"message":"' + 'é'.repeat(250) + '"}', '{"message":"' + 'a'.repeat(700) + '"}') },
);
const separator = fc.constantFrom(',', ', ', ',\n', ' , ', ',\0', ',\ufeff', '');
const opening = fc.constantFrom('[', ' \n[', '\ufeff[', '{"data":[', ' {  "data" :\n[', '{"data":\u00a0[');
const ending = fc.constantFrom(']', ']\n', ']}', '] }\n', '] , }', ']\0}', '] }}', ']{"message":"after"}', '][{"message":"next"}]', ']\v}', '', ', {"message":"cut');

/** A body of the given shape, its elements repeated past the size where bodies are decoded from bytes. */
const largeBody = fc.tuple(opening, fc.array(fc.tuple(element, separator), { minLength: 1, maxLength: 30 }), ending).map(([open, parts, end]) => {
  const unit = parts.map(([value, sep]) => value + sep).join('');
  return Buffer.from(open + unit.repeat(Math.ceil(420_000 / Buffer.byteLength(unit))) + end);
});

describe('JSON bodies decoded from their bytes (decodeJsonBody)', () => {
  it('make the records, raw values and counts their text makes (decodeJson)', async () => {
    let withRecords = 0;
    await fc.assert(
      fc.asyncProperty(largeBody, async (body) => {
        const fromBytes = await decodeJsonBody(body, new BatchBuilder(RECEIVED_AT, LIMITS, neverYield()));
        const fromText = await decodeJson(body.toString('utf8'), new BatchBuilder(RECEIVED_AT, LIMITS, neverYield()));
        expect(fromBytes).toEqual(fromText);
        if (fromBytes.records.length > 0) withRecords++;
      }),
      { numRuns: 40 },
    );
    // Not a comparison of empty results: a body of nothing but empty strings ("") makes no record, most make many.
    expect(withRecords).toBeGreaterThan(30);
  });
});

describe('large arrays cut into runs where `},{` is (decodeLargeArray)', () => {
  // Defaults but a low --max-depth, so that some values are kept raw (each from its own text).
  const GUESS_LIMITS = { maxDepth: 3 };
  /** Elements with `},{` inside strings and nested values, where a cut would be wrong, besides shippers' records. */
  const tricky = fc.oneof(
    { weight: 6, arbitrary: record },
    { weight: 1, arbitrary: text.map((value) => JSON.stringify({ message: `${value}},{${value}` })) },
    { weight: 1, arbitrary: fc.constantFrom('{"message":"},{\\"},{"}', '{"message":"m","spans":[{"a":1},{"b":2}]}', '{"a":{"b":{"c":{"d":[{},{}]}}}}', '"},{"', '12', '[{},{}]', '{}') },
  );
  it('make exactly what the same elements make when each end is found (no `},{` between them)', async () => {
    let guessed = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(tricky, { minLength: 1, maxLength: 30 }), fc.constantFrom('[', '{"data":['), async (elements, open) => {
        const repeat = Math.ceil(420_000 / Buffer.byteLength(elements.join(',')));
        const all = Array<string[]>(repeat).fill(elements).flat();
        const cutAtMeetings = Buffer.from(`${open}${all.join(',')}]${open === '[' ? '' : '}'}`);
        const eachEndFound = Buffer.from(`${open}${all.join(', ')}]${open === '[' ? '' : '}'}`);
        const fromRuns = await decodeJsonBody(cutAtMeetings, new BatchBuilder(RECEIVED_AT, GUESS_LIMITS, neverYield()));
        const fromEnds = await decodeJsonBody(eachEndFound, new BatchBuilder(RECEIVED_AT, GUESS_LIMITS, neverYield()));
        expect(fromRuns).toEqual(fromEnds);
        expect(fromRuns.records.length).toBeGreaterThan(0);
        if (all.join(',').includes('},{')) guessed++;
      }),
      { numRuns: 40, seed: 20_261_202 },
    );
    expect(guessed).toBeGreaterThan(30);
  });
});

describe('line pieces (linePieces)', () => {
  it('join to the body as text, and each but the last ends a line', () => {
    const line = fc.oneof(text, fc.constantFrom('x'.repeat(TEXT_PIECE_BYTES + 5), '€'.repeat(30_000), ''));
    fc.assert(
      fc.property(fc.array(line, { maxLength: 200 }), fc.constantFrom('\n', '\r\n'), fc.boolean(), (lines, feed, endsWithFeed) => {
        const body = Buffer.from(lines.join(feed) + (endsWithFeed ? feed : ''));
        const pieces = [...linePieces(body)];
        expect(pieces.join('')).toBe(body.toString('utf8'));
        for (const piece of pieces.slice(0, -1)) expect(piece.endsWith('\n')).toBe(true);
        // Only a line longer than a piece makes a longer one.
        for (const piece of pieces) if (Buffer.byteLength(piece) > TEXT_PIECE_BYTES) expect([-1, piece.length - 1]).toContain(piece.indexOf('\n'));
      }),
      { numRuns: 60 },
    );
  });
});

describe('gzip inflated into one buffer (its trailer sized the output)', () => {
  it('gives the whole body, also of several members (the trailer states the last one), and a 413 past the cap', async () => {
    const raw = Buffer.from('{"message":"x"}\n'.repeat(40_000));
    const tail = Buffer.from('{"message":"tail"}\n'.repeat(30_000));
    const members = Buffer.concat([gzipSync(raw), gzipSync(tail)]);
    expect((await decodeContentEncoding(gzipSync(raw), 'gzip', { maxBytes: 1 << 20, blocking: true })).equals(raw)).toBe(true);
    // A body exactly at the cap is allowed.
    expect((await decodeContentEncoding(gzipSync(raw), 'gzip', { maxBytes: raw.length, blocking: true })).equals(raw)).toBe(true);
    expect((await decodeContentEncoding(members, 'gzip', { maxBytes: 2 << 20, blocking: true })).equals(Buffer.concat([raw, tail]))).toBe(true);
    await expect(decodeContentEncoding(gzipSync(raw), 'gzip', { maxBytes: raw.length - 1, blocking: true })).rejects.toMatchObject({ statusCode: 413 });
    await expect(decodeContentEncoding(members, 'gzip', { maxBytes: raw.length + 1000, blocking: true })).rejects.toMatchObject({ statusCode: 413 });
  });
});
