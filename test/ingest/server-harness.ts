import type { IncomingMessage, ServerResponse } from 'node:http';
import Fastify, { type FastifyInstance, type RawServerDefault } from 'fastify';
import { pino, type Logger } from 'pino';
import { request } from 'undici';
import { installAuth } from '../../src/auth.js';
import { installErrorShape } from '../../src/errors.js';
import { ingestRoutes, type IngestRoutesOptions } from '../../src/ingest/routes.js';
import { allRecords } from '../../src/ingest/packed-records.js';
import type { LogRecord } from '../../src/ingest/record.js';

export interface TestServer {
  url: string;
  batches: LogRecord[][];
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>;
  /** Set to false to make submit refuse (queue full). */
  accepting: { value: boolean };
  /** Set to make submit throw it (a store that fails). */
  failure: { error: Error | undefined };
  close(): Promise<void>;
}

/**
 * A real Fastify app on loopback with the ingest plugin, the error shape, auth and /healthz;
 * submit collects the batches; `logLines` collects its log.
 */
export async function startIngestServer(options: Partial<IngestRoutesOptions> & { token?: string; logLines?: string[] } = {}): Promise<TestServer> {
  const batches: LogRecord[][] = [];
  const accepting = { value: true };
  const failure: { error: Error | undefined } = { error: undefined };
  const maxBodyBytes = options.maxBodyBytes ?? 32 * 1024 * 1024;
  const logLines = options.logLines;
  // Without a sink the log is silent, as the harness always was.
  const log = pino({ level: logLines === undefined ? 'silent' : 'warn' }, { write: (line: string) => void logLines?.push(line) });
  const app = Fastify({ bodyLimit: maxBodyBytes, loggerInstance: log });
  installErrorShape(app);
  installAuth(app, { token: options.token });
  app.get('/healthz', async () => ({ status: 'ok' }));
  await app.register(ingestRoutes, {
    ...options,
    maxBodyBytes,
    submit: ({ records }) => {
      if (failure.error) throw failure.error;
      if (!accepting.value) return false;
      batches.push(allRecords(records));
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
