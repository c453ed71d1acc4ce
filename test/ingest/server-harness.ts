import Fastify, { type FastifyInstance } from 'fastify';
import { request } from 'undici';
import { installAuth } from '../../src/auth.js';
import { installErrorShape } from '../../src/errors.js';
import { ingestRoutes, type IngestRoutesOptions } from '../../src/ingest/routes.js';
import type { LogRecord } from '../../src/ingest/record.js';

export interface TestServer {
  url: string;
  batches: LogRecord[][];
  app: FastifyInstance;
  /** Set to false to make submit refuse (queue full). */
  accepting: { value: boolean };
  /** Set to make submit throw it (a store that fails). */
  failure: { error: Error | undefined };
  close(): Promise<void>;
}

/** A real Fastify app on loopback with only the ingest plugin; submit collects the batches. */
export async function startIngestServer(options: Partial<IngestRoutesOptions> & { token?: string } = {}): Promise<TestServer> {
  const batches: LogRecord[][] = [];
  const accepting = { value: true };
  const failure: { error: Error | undefined } = { error: undefined };
  const maxBodyBytes = options.maxBodyBytes ?? 32 * 1024 * 1024;
  const app = Fastify({ bodyLimit: maxBodyBytes });
  installErrorShape(app);
  installAuth(app, { token: options.token });
  app.get('/healthz', async () => ({ status: 'ok' }));
  await app.register(ingestRoutes, {
    ...options,
    maxBodyBytes,
    submit: (records) => {
      if (failure.error) throw failure.error;
      if (!accepting.value) return false;
      batches.push(records);
      return true;
    },
    now: options.now ?? (() => Date.UTC(2017, 10, 5, 12, 0, 0)),
  });
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  return { url: address, batches, app, accepting, failure, close: () => app.close() };
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: Record<string, unknown>;
}

export async function post(url: string, body: Buffer | string, headers: Record<string, string> = {}): Promise<Answer> {
  const response = await request(url, { method: 'POST', body, headers });
  const text = await response.body.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = { raw: text };
  }
  return { status: response.statusCode, headers: response.headers, json };
}
