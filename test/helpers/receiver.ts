import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/** One request a receiver got, its body decompressed. */
export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export type Answering = (request: ReceivedRequest, index: number) => Answer | Promise<Answer>;

export interface Receiver {
  /** http://127.0.0.1:<port> */
  url: string;
  /** Every request, in arrival order, with what it was answered. */
  requests: Array<ReceivedRequest & { answered: number }>;
  /** Changes how the next requests are answered. */
  answerWith(answering: Answering): void;
  /** Stops listening and drops open connections (a target that went away). */
  close(): Promise<void>;
}

export const OK: Answering = () => ({ status: 200, body: 'ok' });

/**
 * A loopback HTTP server standing in for a downstream (Vector, Loki, Elasticsearch, an OTel
 * collector): it undoes Content-Encoding gzip as they do, keeps every request and answers as told.
 */
export async function startReceiver(answering: Answering = OK, port = 0): Promise<Receiver> {
  let answer = answering;
  const requests: Receiver['requests'] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      void (async () => {
        let raw = Buffer.concat(chunks);
        if (request.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
        const received: ReceivedRequest = { method: request.method ?? '', url: request.url ?? '', headers: request.headers, body: raw.toString('utf8') };
        const index = requests.length;
        const entry = { ...received, answered: 0 };
        requests.push(entry);
        let reply: Answer;
        try {
          reply = await answer(received, index);
        } catch (error) {
          reply = { status: 500, body: String(error) };
        }
        entry.answered = reply.status;
        response.writeHead(reply.status, reply.headers ?? {});
        response.end(reply.body ?? '');
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    requests,
    answerWith(next) {
      answer = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The NDJSON lines of every request answered 2xx, parsed. */
export function deliveredLines<T = Record<string, unknown>>(receiver: Receiver): T[] {
  return receiver.requests
    .filter((request) => request.answered >= 200 && request.answered < 300)
    .flatMap((request) => request.body.split('\n').filter((line) => line !== ''))
    .map((line) => JSON.parse(line) as T);
}
