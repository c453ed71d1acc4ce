/**
 * The one catalogue of error answers (after fastify's lib/errors.js,
 * https://github.com/fastify/fastify/blob/main/lib/errors.js): every route answers a failure as
 * `{ statusCode, code, error, message, where?, limit?, problems? }`. Each code is chosen for what
 * the caller should do next: shippers retry 503 (with Retry-After) and drop the batch on other
 * 4xx answers, so 503 is kept for conditions that pass, and a batch that can never be recorded
 * gets a final 4xx.
 */
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest, RawServerDefault } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';

interface CatalogueEntry {
  statusCode: number;
  /** True when sending the same request again later can succeed (503: Retry-After is sent). */
  retry: boolean;
  /** For the README's "Answers" section: what the answer means to a shipper or a user. */
  meaning: string;
}

export const ERROR_CATALOGUE = {
  LW_ERR_BAD_BODY: { statusCode: 400, retry: false, meaning: 'the body as a whole cannot be decoded (bad compression, JSON that never closes); `where` says what and where' },
  LW_ERR_BAD_REQUEST: { statusCode: 400, retry: false, meaning: 'the request itself is malformed (a bad URL, a bad JSON body on a non-ingest route)' },
  LW_ERR_BAD_PARAMETER: { statusCode: 400, retry: false, meaning: 'a query or path parameter is invalid; `where.parameter` names it' },
  LW_ERR_UNAUTHORIZED: { statusCode: 401, retry: false, meaning: 'no token or a wrong one (`WWW-Authenticate: Basic realm="leakwatch"`)' },
  LW_ERR_FORBIDDEN: { statusCode: 403, retry: false, meaning: 'the read-only token was used for ingest or a change (ack, resolve, reload)' },
  LW_ERR_NOT_FOUND: { statusCode: 404, retry: false, meaning: 'no such route, or no such incident' },
  LW_ERR_REQUEST_TIMEOUT: { statusCode: 408, retry: true, meaning: 'the body stalled longer than --body-timeout, or the request took longer than --request-timeout; the connection is closed' },
  LW_ERR_BODY_TOO_LARGE: { statusCode: 413, retry: false, meaning: 'the body is over --max-body-bytes, as sent or decompressed; `limit` names the cap' },
  LW_ERR_TOO_MANY_RECORDS: { statusCode: 413, retry: false, meaning: 'the body holds more than --max-records records; `limit` names the cap' },
  LW_ERR_UNSUPPORTED_ENCODING: { statusCode: 415, retry: false, meaning: 'an unknown Content-Encoding (gzip, x-gzip, deflate, zstd, snappy, identity are known)' },
  LW_ERR_UNSUPPORTED_MEDIA_TYPE: { statusCode: 415, retry: false, meaning: 'POST /api/v1/write: a Remote-Write 2.0 body; send Remote-Write 1.0 (`prometheus.WriteRequest`)' },
  LW_ERR_UNRECORDABLE: { statusCode: 422, retry: false, meaning: 'the batch can never be recorded (the message says why); sending it again would fail again' },
  LW_ERR_RULES_INVALID: { statusCode: 422, retry: false, meaning: 'POST /-/reload: the rule files have errors (`problems`, file:line:col); the previous rules stay active' },
  LW_ERR_OVERLOADED: { statusCode: 503, retry: true, meaning: 'the engine queue (records or bytes) or the bytes in flight are at their cap; retry after Retry-After' },
  LW_ERR_NOT_READY: { statusCode: 503, retry: true, meaning: 'the rules are still being loaded and checked; retry after Retry-After' },
  LW_ERR_STORAGE: { statusCode: 503, retry: true, meaning: 'the store is busy or its disk is full; retry after Retry-After' },
  LW_ERR_FORWARD_BACKLOG: {
    statusCode: 503,
    retry: true,
    meaning: 'the forwarding outbox is full (--forward-outbox-bytes) because a target is not taking events; /readyz names it; retry after Retry-After',
  },
  LW_ERR_INTERNAL: { statusCode: 500, retry: false, meaning: 'a bug; the server log has the stack' },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

const REASON_OF: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Where in the request the problem is; omitted parts are unknown. */
export interface ErrorLocation {
  /** Which stage failed: `content-encoding:gzip`, `json`, `ndjson`, `msgpack`, ... */
  stage?: string;
  /** In the (decompressed) body. */
  byteOffset?: number;
  line?: number;
  /** A query or path parameter. */
  parameter?: string;
}

/** The cap an answer is about, by the flag that sets it. */
export interface ErrorLimit {
  setting: string;
  value: number;
}

/** A finding in a rule file. */
export interface ErrorProblem {
  file: string;
  line: number;
  col: number;
  message: string;
  severity: 'error' | 'warning';
  text: string;
}

export interface ErrorDetails {
  where?: ErrorLocation;
  limit?: ErrorLimit;
  problems?: ErrorProblem[];
}

export interface ErrorBody extends ErrorDetails {
  statusCode: number;
  code: ErrorCode;
  error: string;
  message: string;
}

/** Seconds a retryable answer asks the client to wait. */
export const RETRY_AFTER_SECONDS = 1;

export class LeakwatchError extends Error {
  readonly statusCode: number;
  readonly retry: boolean;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetails = {},
  ) {
    super(message);
    this.name = 'LeakwatchError';
    this.statusCode = ERROR_CATALOGUE[code].statusCode;
    this.retry = ERROR_CATALOGUE[code].retry;
  }

  get where(): ErrorLocation | undefined {
    return this.details.where;
  }

  toJSON(): ErrorBody {
    return { statusCode: this.statusCode, code: this.code, error: REASON_OF[this.statusCode] ?? 'Error', message: this.message, ...this.details };
  }
}

export function isLeakwatchError(error: unknown): error is LeakwatchError {
  return error instanceof LeakwatchError;
}

/** SQLite result codes (and errnos) of conditions that pass: a busy or locked database, a full disk, an I/O hiccup. */
const PASSING_STORAGE_CODES = /^(SQLITE_(BUSY|LOCKED|FULL|IOERR|NOMEM|CANTOPEN|PROTOCOL)|LW_STORE_UNAVAILABLE|ENOSPC|EIO|EAGAIN|EBUSY|EMFILE|ENFILE)/;

/**
 * Whether a failure to record a batch can pass, so that a retry may succeed (503); any other
 * failure (a record the journal cannot serialise, say) would fail the same way every time.
 */
export function isPassingStorageError(error: unknown): boolean {
  // The pipeline's own word for a store that cannot be written until a write succeeds again.
  if (error instanceof Error && error.name === 'StoreUnavailableError') return true;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && PASSING_STORAGE_CODES.test(code);
}

/**
 * Answers with the error's shape; 503s carry Retry-After. A body refused before it was read is
 * read on and discarded by Node (bounded by the request timeout), not cut off: closing a socket
 * with unread data resets it, and the client may never see the answer. A stalled upload (408) is
 * closed.
 */
export function sendError(reply: FastifyReply, error: LeakwatchError): FastifyReply {
  if (error.statusCode === 503) reply.header('retry-after', String(RETRY_AFTER_SECONDS));
  if (error.statusCode === 408) reply.header('connection', 'close');
  return reply.code(error.statusCode).type('application/json; charset=utf-8').send(error.toJSON());
}

/** Names the offending parameter of an ajv validation failure, which fastify reports as a path. */
function parameterOf(error: FastifyError): string {
  const first = error.validation?.[0];
  if (!first) return 'request';
  const missing = (first.params as { missingProperty?: unknown; additionalProperty?: unknown }).missingProperty;
  if (typeof missing === 'string') return missing;
  const additional = (first.params as { additionalProperty?: unknown }).additionalProperty;
  if (typeof additional === 'string') return additional;
  return first.instancePath.replace(/^\//, '').split('/')[0] || (error.validationContext ?? 'request');
}

/** Any error a route or fastify itself throws, in the catalogue's terms. */
export function asLeakwatchError(error: unknown, request: FastifyRequest): LeakwatchError {
  if (isLeakwatchError(error)) return error;
  const fastifyError = error as Partial<FastifyError>;
  if (fastifyError.validation) {
    const parameter = parameterOf(fastifyError as FastifyError);
    const why = String(fastifyError.message).replace(/^[a-z]+\/[^ ]* /, '');
    return new LeakwatchError('LW_ERR_BAD_PARAMETER', `${parameter}: ${why}`, { where: { parameter } });
  }
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new LeakwatchError('LW_ERR_BODY_TOO_LARGE', 'request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new LeakwatchError('LW_ERR_BAD_REQUEST', `unsupported Content-Type on ${request.method} ${request.routeOptions.url ?? request.url}`);
  }
  const status = fastifyError.statusCode;
  if (status === 408) return new LeakwatchError('LW_ERR_REQUEST_TIMEOUT', 'the request took too long to arrive');
  if (status !== undefined && status >= 400 && status < 500) return new LeakwatchError('LW_ERR_BAD_REQUEST', String(fastifyError.message));
  request.log.error({ err: error }, `${request.method} ${request.url} failed`);
  return new LeakwatchError('LW_ERR_INTERNAL', 'internal error; the server log has the details');
}

/** The error and not-found handlers every leakwatch server (and every test server) installs at its root. */
export function installErrorShape<Log extends FastifyBaseLogger>(app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Log>): void {
  app.setErrorHandler((error: unknown, request, reply) => sendError(reply, asLeakwatchError(error, request)));
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, new LeakwatchError('LW_ERR_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );
}

/** The README's table of error answers, made from the catalogue. */
export function renderErrorTable(): string {
  const rows = ['| status | code | retry? | meaning |', '|---|---|---|---|'];
  const entries = Object.entries(ERROR_CATALOGUE) as Array<[ErrorCode, CatalogueEntry]>;
  entries.sort((a, b) => a[1].statusCode - b[1].statusCode);
  for (const [code, entry] of entries) {
    const retry = entry.retry ? (entry.statusCode === 503 ? 'yes, after `Retry-After`' : 'yes') : 'no';
    rows.push(`| ${entry.statusCode} | \`${code}\` | ${retry} | ${entry.meaning.replace(/\|/g, '\\|')} |`);
  }
  return rows.join('\n');
}
