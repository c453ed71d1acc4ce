/**
 * The thread behind SyncPostgres (postgres-sync.ts): one node-postgres connection, one query at
 * a time, each answer posted back and the waiting thread woken through the shared signal. A
 * connection that fails is dropped and a new one made for the next query, so a PostgreSQL restart
 * costs the queries made while it was down, not the process.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import pg from 'pg';
import type { PostgresAnswer, PostgresRequest, PostgresWorkerData } from './postgres-sync.js';

// BIGINT (event times in ms, counts) and NUMERIC (SUM) as numbers: every value leakwatch keeps fits in 2^53.
pg.types.setTypeParser(20, (value) => Number(value));
pg.types.setTypeParser(1700, (value) => Number(value));

const data = workerData as PostgresWorkerData;
const signal = new Int32Array(data.signal);
let client: pg.Client | undefined;
/** Increases with every new connection: session state (advisory locks) belongs to one of them. */
let session = 0;

async function connected(): Promise<pg.Client> {
  if (client !== undefined) return client;
  const fresh = new pg.Client({ connectionString: data.connectionString, connectionTimeoutMillis: data.connectTimeoutMs, application_name: data.applicationName });
  // An idle connection that breaks (server restart) must not crash the thread: the next query reconnects.
  fresh.on('error', () => {
    if (client === fresh) client = undefined;
  });
  try {
    await fresh.connect();
  } catch (error) {
    await fresh.end().catch(() => undefined);
    throw error;
  }
  client = fresh;
  session++;
  return fresh;
}

function describe(error: unknown): PostgresAnswer & { ok: false } {
  const { message, code } = error as { message?: unknown; code?: unknown };
  return { id: 0, ok: false, message: typeof message === 'string' ? message : String(error), code: typeof code === 'string' ? code : undefined, session };
}

async function answer(request: PostgresRequest): Promise<PostgresAnswer> {
  let used: pg.Client | undefined;
  try {
    if (request.session !== undefined && (client === undefined || session !== request.session)) {
      // A transaction's connection broke: running the rest of it on a new one would commit half of it.
      return { id: request.id, ok: false, message: 'the connection of this transaction was lost', code: '08003', session };
    }
    used = await connected();
    const result = request.rowMode === 'array' ? await used.query({ text: request.sql, values: request.params, rowMode: 'array' }) : await used.query(request.sql, request.params);
    return { id: request.id, ok: true, rows: result.rows as unknown[], rowCount: result.rowCount ?? 0, session };
  } catch (error) {
    const described = describe(error);
    // A query the server refused leaves the connection usable; anything else (reset, timeout) does not.
    if (described.code === undefined || !/^[0-9A-Z]{5}$/.test(described.code) || /^(08|57P)/.test(described.code)) {
      if (used !== undefined && client === used) client = undefined;
      await used?.end().catch(() => undefined);
    }
    return { ...described, id: request.id };
  }
}

const port = data.port as MessagePort;
port.on('message', (request: PostgresRequest) => {
  void answer(request).then((result) => {
    port.postMessage(result);
    Atomics.store(signal, 0, 1);
    Atomics.notify(signal, 0);
  });
});
parentPort?.on('message', (message: unknown) => {
  if (message === 'close') void client?.end().finally(() => process.exit(0));
});
