/**
 * PostgreSQL behind the synchronous Store interface. The store is synchronous by design: the
 * single-process guarantees rest on it (a batch journaled before its 200, the forwarding outbox
 * written in the transaction that stores its events, the checkpoint taken right after a write
 * succeeded), and the incident lifecycle, the memory tracker and the forwarder are written once
 * against it. node-postgres is asynchronous, so its connection lives on a thread of its own
 * (postgres-worker.ts) and the caller waits for each answer (Atomics.wait): the same code runs
 * over either backend. The price is that a query holds this thread for its round trip (about
 * 0.1 ms on a local network), which engine nodes pay per batch, not per request.
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { compiledWorkerFile } from '../worker-file.js';

export interface PostgresWorkerData {
  connectionString: string;
  signal: SharedArrayBuffer;
  port: MessagePort;
  connectTimeoutMs: number;
  applicationName: string;
}

export interface PostgresRequest {
  id: number;
  sql: string;
  params: unknown[];
  rowMode?: 'array';
  /** Run only on this connection (a transaction's): when it is gone, fail instead of reconnecting. */
  session?: number;
}

export type PostgresAnswer =
  | { id: number; ok: true; rows: unknown[]; rowCount: number; session: number }
  | { id: number; ok: false; message: string; code: string | undefined; session: number };

export interface QueryResult<Row> {
  rows: Row[];
  rowCount: number;
}

/**
 * PostgreSQL cannot be reached or refused for a reason that passes (restart, shutdown, too many
 * connections, a full disk, a serialization conflict): ingest answers 503 and what failed is kept
 * and retried, as for a full SQLite disk.
 */
export class PostgresUnavailableError extends Error {
  override readonly name = 'PostgresUnavailableError';
  /** errors.ts counts this code among the storage failures that pass. */
  readonly code = 'LW_STORE_UNAVAILABLE';
  constructor(
    message: string,
    readonly sqlState: string | undefined,
  ) {
    super(message);
  }
}

/** A query PostgreSQL refused for good (a bug, bad data): retrying would fail the same way. */
export class PostgresQueryError extends Error {
  override readonly name = 'PostgresQueryError';
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

/**
 * SQLSTATE classes that pass: 08 connection, 53 insufficient resources (disk full, too many
 * connections), 57P operator intervention (shutdown, restart), 40001/40P01 serialization failure
 * and deadlock (the transaction is retried whole), 55P03 lock not available.
 */
const PASSING_SQLSTATE = /^(08|53|57P|40001|40P01|55P03)/;
/** A code of the server's; anything else (ECONNREFUSED, ECONNRESET, ETIMEDOUT) is the network's, and passes. */
const SQLSTATE = /^[0-9A-Z]{5}$/;

/** Longest a query may take before the caller gives up on it (the answer, if any, is discarded). */
const DEFAULT_QUERY_TIMEOUT_MS = 30_000;

function workerFile(): URL {
  // Run from the TypeScript sources (tests): the compiled thread in dist/, built before the tests.
  return compiledWorkerFile(new URL('./postgres-worker.js', import.meta.url)) ?? new URL('../../dist/store/postgres-worker.js', import.meta.url);
}

export class SyncPostgres {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly signal: Int32Array;
  private nextId = 1;
  private closed = false;
  /** The connection the last answer came from: session state (advisory locks) is lost when it changes. */
  lastSession = 0;

  constructor(
    readonly connectionString: string,
    private readonly options: { queryTimeoutMs?: number; connectTimeoutMs?: number; applicationName?: string } = {},
  ) {
    const shared = new SharedArrayBuffer(4);
    this.signal = new Int32Array(shared);
    const channel = new MessageChannel();
    this.port = channel.port1;
    const data: PostgresWorkerData = {
      connectionString,
      signal: shared,
      port: channel.port2,
      connectTimeoutMs: options.connectTimeoutMs ?? 5000,
      applicationName: options.applicationName ?? 'leakwatch',
    };
    this.worker = new Worker(workerFile(), { workerData: data, transferList: [channel.port2] });
    // An idle connection must not keep the process alive.
    this.worker.unref();
    this.port.unref();
  }

  /** `session`: the connection a transaction runs on (lastSession after its BEGIN). */
  query<Row = Record<string, unknown>>(sql: string, params: readonly unknown[] = [], session?: number): QueryResult<Row> {
    const answer = this.ask({ id: this.nextId++, sql, params: [...params], ...(session === undefined ? {} : { session }) });
    return { rows: answer.rows as Row[], rowCount: answer.rowCount };
  }

  /** The first column of each row (better-sqlite3's `pluck`). */
  column<T>(sql: string, params: readonly unknown[] = [], session?: number): T[] {
    const answer = this.ask({ id: this.nextId++, sql, params: [...params], rowMode: 'array', ...(session === undefined ? {} : { session }) });
    return (answer.rows as unknown[][]).map((row) => row[0] as T);
  }

  private ask(request: PostgresRequest): PostgresAnswer & { ok: true } {
    if (this.closed) throw new PostgresUnavailableError('the PostgreSQL store is closed', undefined);
    this.port.postMessage(request);
    const timeoutMs = this.options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // Cleared before the port is read: an answer posted after the read sets it again, so the wait below returns.
      Atomics.store(this.signal, 0, 0);
      // Answers of requests given up on earlier arrive late: they are read and dropped here.
      for (let message = receiveMessageOnPort(this.port); message !== undefined; message = receiveMessageOnPort(this.port)) {
        const answer = message.message as PostgresAnswer;
        if (answer.id !== request.id) continue;
        this.lastSession = answer.session;
        if (answer.ok) return answer;
        const text = `PostgreSQL: ${answer.message}`;
        if (answer.code === undefined || !SQLSTATE.test(answer.code) || PASSING_SQLSTATE.test(answer.code)) throw new PostgresUnavailableError(text, answer.code);
        throw new PostgresQueryError(text, answer.code);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new PostgresUnavailableError(`PostgreSQL did not answer within ${timeoutMs} ms`, undefined);
      Atomics.wait(this.signal, 0, 0, left);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.worker.postMessage('close');
    this.port.close();
    // The thread ends itself once its connection is closed; it holds no work worth waiting for.
    setTimeout(() => void this.worker.terminate(), 1000).unref();
  }
}
