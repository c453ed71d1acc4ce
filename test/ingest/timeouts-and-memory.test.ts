import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIngestServer, type TestServer } from './server-harness.js';

// Issue 8, defect 8: a stalled upload is closed; bytes in flight across requests have a cap,
// answered 503 + Retry-After.
const MiB = 1024 * 1024;

interface RawAnswer {
  status: number;
  head: string;
  body: string;
  /** Resolves when the server closes the connection. */
  closed: Promise<void>;
}

/** Sends headers and `sent` bytes of a body announced as `declared` bytes, then stalls; resolves with the answer. */
function stalledUpload(url: string, declared: number, sent: Buffer): { answer: Promise<RawAnswer>; socket: Socket } {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  socket.write(`POST /ingest HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: text/plain\r\nContent-Length: ${declared}\r\n\r\n`);
  socket.write(sent);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  const answer = new Promise<RawAnswer>((resolve) => {
    let text = '';
    const check = (): void => {
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = text.slice(0, end);
      const length = Number(/^content-length: (\d+)$/im.exec(head)?.[1] ?? 0);
      const body = text.slice(end + 4);
      if (body.length < length) return;
      resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0), head, body: body.slice(0, length), closed });
    };
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      text += chunk;
      check();
    });
  });
  return { answer, socket };
}

describe('stalled uploads', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startIngestServer({ bodyTimeoutMs: 300, requestTimeoutMs: 5000, maxInflightBytes: 64 * MiB });
  });
  afterAll(() => server.close());

  it('an upload that stops sending is answered 408 and its connection closed', async () => {
    const { answer } = stalledUpload(server.url, 1000, Buffer.from('Nov 01 11:59:32 web-1 linkerd[1]: a line\n'));
    const result = await answer;
    expect(result.status).toBe(408);
    await result.closed;
    expect(JSON.parse(result.body)).toMatchObject({ code: 'LW_ERR_REQUEST_TIMEOUT' });
    expect(server.batches).toHaveLength(0);
  });

  it('40 stalled 30 MiB uploads: past the in-flight cap they get 503 + Retry-After at once, and memory stays bounded', async () => {
    const rssBefore = process.memoryUsage().rss;
    const uploads = Array.from({ length: 40 }, () => stalledUpload(server.url, 30 * MiB, Buffer.alloc(MiB, 0x61)));
    const answers = await Promise.all(uploads.map((upload) => upload.answer));
    for (const upload of uploads) upload.socket.destroy();
    const refused = answers.filter((answer) => answer.status === 503);
    const timedOut = answers.filter((answer) => answer.status === 408);
    expect(refused.length + timedOut.length).toBe(40);
    // 64 MiB holds two 30 MiB claims; everything else is refused before its body is read.
    expect(timedOut.length).toBeLessThanOrEqual(2);
    for (const answer of refused) {
      expect(answer.head).toMatch(/^retry-after: 1$/im);
      expect(JSON.parse(answer.body)).toMatchObject({ code: 'LW_ERR_OVERLOADED', limit: { setting: '--max-inflight-bytes', value: 64 * MiB } });
    }
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(400 * MiB);
  });

  it('an upload that trickles past --request-timeout is answered 408', async () => {
    const slow = await startIngestServer({ bodyTimeoutMs: 2000, requestTimeoutMs: 1000 });
    try {
      const { answer, socket } = stalledUpload(slow.url, 100, Buffer.from('a'));
      const trickle = setInterval(() => socket.writable && socket.write('a'), 100);
      const result = await answer;
      clearInterval(trickle);
      expect(result.status).toBe(408);
      expect(JSON.parse(result.body).message).toContain('--request-timeout');
    } finally {
      await slow.close();
    }
  });
});
