import { Compressor } from 'zstd-napi';
import * as snappyjs from 'snappyjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32c, maskedCrc32c } from '../../src/ingest/snappy.js';
import { post, startIngestServer, type TestServer } from './server-harness.js';

// Issue 8, defects 2, 3 and 10: zstd frames are checked (window, checksum) and decoded without
// quadratic copying; snappy blocks and frames are checked (lengths, CRC-32C) before they are trusted.
const LINES = Array.from({ length: 40 }, (_, i) => `Nov 01 11:59:${String(i).padStart(2, '0')} web-1 linkerd[5699]: line ${i} of the batch`).join('\n');

function zstdFrame(data: Buffer, checksum: boolean): Buffer {
  const compressor = new Compressor();
  compressor.setParameters({ compressionLevel: 3, checksumFlag: checksum });
  return compressor.compress(data);
}

/** A framed snappy stream (framing_format.txt): the stream identifier, then one chunk per 64 KiB. */
function snappyFramed(data: Buffer, compress: boolean): Buffer {
  const parts: Buffer[] = [Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59])];
  for (let offset = 0; offset < data.length; offset += 65536) {
    const chunk = data.subarray(offset, offset + 65536);
    const payload = compress ? Buffer.from(snappyjs.compress(chunk)) : chunk;
    const header = Buffer.alloc(8);
    header[0] = compress ? 0x00 : 0x01;
    header.writeUIntLE(payload.length + 4, 1, 3);
    header.writeUInt32LE(maskedCrc32c(chunk), 4);
    parts.push(header, payload);
  }
  return Buffer.concat(parts);
}

let server: TestServer;
beforeAll(async () => {
  server = await startIngestServer();
});
afterAll(() => server.close());

const TEXT = { 'content-type': 'text/plain' };

describe('zstd', () => {
  it('a frame header asking for a 2 GiB window: 400 naming --max-zstd-window, nothing allocated', async () => {
    // Magic, a frame header descriptor without single-segment, window descriptor 0xF8 (2^31 bytes).
    const bomb = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0x00, 0x00, 0x00, 0x00]);
    const answer = await post(`${server.url}/ingest`, bomb, { ...TEXT, 'content-encoding': 'zstd' });
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ code: 'LW_ERR_BAD_BODY', where: { stage: 'content-encoding:zstd' } });
    expect(String(answer.json['message'])).toContain('--max-zstd-window');
  });

  it('every single-bit flip of a checksummed frame is refused or decodes to the very same records', async () => {
    const frame = zstdFrame(Buffer.from(LINES), true);
    const original = await post(`${server.url}/ingest`, frame, { ...TEXT, 'content-encoding': 'zstd' });
    expect(original.json).toEqual({ accepted: 40, malformed: 0, without_text: 0 });
    const messages = server.batches.at(-1)!.map((record) => record.message);
    let refused = 0;
    for (let bit = 0; bit < frame.length * 8; bit++) {
      const flipped = Buffer.from(frame);
      flipped[bit >> 3] = (flipped[bit >> 3] as number) ^ (1 << (bit & 7));
      const before = server.batches.length;
      const answer = await post(`${server.url}/ingest`, flipped, { ...TEXT, 'content-encoding': 'zstd' });
      if (answer.status === 200) {
        expect(server.batches.at(-1)!.map((record) => record.message), `bit ${bit}`).toEqual(messages);
      } else {
        expect(answer.status, `bit ${bit}`).toBe(400);
        expect(server.batches.length).toBe(before);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(frame.length * 8 * 0.9);
  }, 60_000);

  it('a truncated frame is a 400, not the records decoded so far', async () => {
    const frame = zstdFrame(Buffer.from(LINES), true);
    const answer = await post(`${server.url}/ingest`, frame.subarray(0, frame.length - 5), { ...TEXT, 'content-encoding': 'zstd' });
    expect(answer.status).toBe(400);
  });

  it('a 64 MiB bomb of zeros: 413 at the cap', async () => {
    const compressor = new Compressor();
    compressor.setParameters({ compressionLevel: 1, windowLog: 17 });
    const bomb = compressor.compress(Buffer.alloc(64 * 1024 * 1024));
    const answer = await post(`${server.url}/ingest`, bomb, { ...TEXT, 'content-encoding': 'zstd' });
    expect(answer.status).toBe(413);
    expect(answer.json).toMatchObject({ code: 'LW_ERR_BODY_TOO_LARGE', limit: { setting: '--max-body-bytes' } });
  });
});

describe('snappy', () => {
  it('raw block (Vector, Fluent Bit) and framed stream, compressed and stored chunks, are accepted', async () => {
    for (const body of [Buffer.from(snappyjs.compress(Buffer.from(LINES))), snappyFramed(Buffer.from(LINES), true), snappyFramed(Buffer.from(LINES), false)]) {
      const answer = await post(`${server.url}/ingest`, body, { ...TEXT, 'content-encoding': 'snappy' });
      expect(answer.json).toEqual({ accepted: 40, malformed: 0, without_text: 0 });
    }
  });

  it('defect 3: a truncated block is a 400, never a NUL-filled record', async () => {
    const block = Buffer.from(snappyjs.compress(Buffer.from(LINES)));
    for (const cut of [1, 5, 20, block.length - 1]) {
      const answer = await post(`${server.url}/ingest`, block.subarray(0, cut), { ...TEXT, 'content-encoding': 'snappy' });
      expect(answer.status, `cut at ${cut}`).toBe(400);
    }
    // Six bytes declaring 32 MiB, holding one literal byte.
    const answer = await post(`${server.url}/ingest`, Buffer.from([0x80, 0x80, 0x80, 0x10, 0x00, 0x41]), { ...TEXT, 'content-encoding': 'snappy' });
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ code: 'LW_ERR_BAD_BODY', where: { stage: 'content-encoding:snappy' } });
  });

  it('defect 10: an uncompressed body labelled snappy is a 400, not a 413', async () => {
    for (const body of [LINES, JSON.stringify([{ message: 'é'.repeat(2000) }]), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, ...Buffer.from(LINES)])]) {
      const answer = await post(`${server.url}/ingest`, body, { ...TEXT, 'content-encoding': 'snappy' });
      expect(answer.status).toBe(400);
      expect(answer.json['code']).toBe('LW_ERR_BAD_BODY');
    }
  });

  it('a framed chunk whose CRC-32C does not match its data is a 400', async () => {
    const framed = snappyFramed(Buffer.from(LINES), false);
    framed[framed.length - 3] = (framed[framed.length - 3] as number) ^ 0x20;
    const answer = await post(`${server.url}/ingest`, framed, { ...TEXT, 'content-encoding': 'snappy' });
    expect(answer.status).toBe(400);
    expect(String(answer.json['message'])).toContain('CRC-32C');
  });

  it('CRC-32C matches the check values of RFC 3720 B.4', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(32))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
  });
});
