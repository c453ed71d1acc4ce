import type { Readable } from 'node:stream';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { DEFAULTS } from '../config.js';
import { doneWithin } from '../done-within.js';
import { isLeakwatchError, isPassingStorageError, LeakwatchError } from '../errors.js';
import { decodeContentEncoding, parseContentEncoding } from './content-encoding.js';
import { PackedBatch } from './packed-records.js';
import { decodeReceivedBody, type BodyFormat, type DecodedBody, type DecodeLimits, type EarlyJournalWrite, type IngestedBody, type ReceivedBody, type SubmittedBatch } from './decode-body.js';
import { badBody, bodyTooLarge } from './errors.js';
import { InflightBytes, type InflightClaim } from './inflight.js';
import { SharedBodies } from './shared-bodies.js';
import { freeChunkNow } from './free-now.js';
import type { LogRecord } from './record.js';
import { decodeWriteRequest, isRemoteWriteV2, type RemoteSeries } from './remote-write.js';

/** One body answered 200: what it was and what it held (for the metrics). */
export interface AcceptedBody {
  format: BodyFormat | 'empty';
  /** The content codings undone, in the order applied (`gzip`), or `identity`. */
  encoding: string;
  /** As received, before decompression. */
  bytes: number;
  records: number;
  malformed: number;
}

export interface IngestRoutesOptions {
  /**
   * Hands a decoded batch on; false means "full, try again later" (503 + Retry-After). A
   * LeakwatchError it throws is the answer as it is. Asynchronous where the batch is kept
   * elsewhere (an ingest node publishes it to NATS JetStream and answers once it is acknowledged).
   */
  submit: (batch: SubmittedBatch) => boolean | Promise<boolean>;
  /**
   * Starts the journal write of a body as soon as it is received, to run while it is decoded; the
   * batch is then submitted with it, or it is abandoned. Undefined (or absent): submit() journals.
   */
  journalBody?: (received: ReceivedBody, receivedAtMs: number) => EarlyJournalWrite | undefined;
  /** Told of every body answered 200. */
  accepted?: (body: AcceptedBody) => void;
  /**
   * Undefined while the engine keeps up, else a promise that resolves once it has room again: the
   * answer to an accepted body waits for it (at most PACE_MAX_MS), which slows a faster shipper down
   * to the engine's pace before the queue is full and answers 503. Told how long each wait was.
   */
  pace?: () => Promise<void> | undefined;
  paced?: (waitedMs: number) => void;
  /** Limit for the body as received and again after each Content-Encoding is undone. */
  maxBodyBytes: number;
  /** Records, line, message and depth limits of one body (the --max-* settings). */
  limits?: Partial<DecodeLimits>;
  maxZstdWindowBytes?: number;
  /** Request bytes held at once across all requests. */
  maxInflightBytes?: number;
  /** Longest pause in a body upload (408 and the connection closed). */
  bodyTimeoutMs?: number;
  /** Longest time for a whole request (408 and the connection closed). */
  requestTimeoutMs?: number;
  /** False while the service cannot take batches yet (rules loading): 503 + Retry-After. */
  ready?: () => boolean;
  /** Receive time for records without one; injectable for tests. */
  now?: () => number;
  /** Bytes in flight, shared with the decoding threads; made from maxInflightBytes when absent. */
  inflight?: InflightBytes;
  /** How a body as received becomes records (the server's DecodePool); on this thread when absent. */
  decode?: (received: ReceivedBody, receivedAtMs: number, claim: InflightClaim) => Promise<IngestedBody>;
  /** `POST /api/v1/write` (Prometheus remote_write): which series to keep and the records they become. */
  remoteWrite?: {
    keep: (labels: Record<string, string>) => boolean;
    toRecords: (series: readonly RemoteSeries[]) => LogRecord[];
  };
}

export interface IngestAnswer {
  accepted: number;
  malformed: number;
  /** Records with none of the text fields leakwatch reads (kept and counted, see normalize.ts). */
  without_text: number;
}

/** Records without a text field are logged at most this often, with an example of their keys. */
const WITHOUT_TEXT_LOG_EVERY_MS = 60_000;

/**
 * `POST /ingest` and `POST /` (Fluent Bit's default `uri /`): the HTTP sink every shipper posts to.
 * The plugin reads the raw body itself: all content types go to one catch-all parser, so no shipper
 * label (application/msgpack, application/x-msgpack, none at all) can earn fastify's own 415, and
 * the size limits apply to the bytes received and to what they decompress to. Every byte held is
 * counted against --max-inflight-bytes while the request runs.
 */
export const ingestRoutes: FastifyPluginAsync<IngestRoutesOptions> = async (app, options) => {
  const now = options.now ?? Date.now;
  const maxBodyBytes = options.maxBodyBytes;
  const inflight = options.inflight ?? new InflightBytes(options.maxInflightBytes ?? DEFAULTS.maxInflightBytes);
  const decode =
    options.decode ??
    ((received: ReceivedBody, receivedAtMs: number, claim: InflightClaim): Promise<DecodedBody> =>
      decodeReceivedBody(received, receivedAtMs, {
        maxBytes: maxBodyBytes,
        maxZstdWindowBytes: options.maxZstdWindowBytes,
        reserve: (bytes) => claim.add(bytes),
        limits: options.limits,
      }));
  const timeouts = { idleMs: options.bodyTimeoutMs ?? DEFAULTS.bodyTimeoutMs, totalMs: options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs };
  let withoutTextLoggedAt = Number.NEGATIVE_INFINITY;
  const bodies = new SharedBodies();

  // Encapsulated by fastify: only these routes lose the default JSON/text parsers.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request: FastifyRequest, payload: Readable, done: (error: Error | null, body?: unknown) => void) => {
    done(null, payload);
  });

  app.addHook('onRequest', async (request) => {
    // Refuse unknown encodings and oversized bodies before reading a byte.
    parseContentEncoding(headerValue(request.headers['content-encoding']));
    const declared = Number(request.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBodyBytes) throw bodyTooLarge(maxBodyBytes, 'Content-Length');
    return undefined;
  });

  /** The body as sent, every byte counted against the caps; 503 while the service is not ready. */
  async function receive(request: FastifyRequest, claim: InflightClaim, startedAt: number): Promise<Buffer> {
    if (options.ready !== undefined && !options.ready()) {
      throw new LeakwatchError('LW_ERR_NOT_READY', 'the rules are still being loaded and checked; retry shortly');
    }
    const declared = Number(request.headers['content-length']);
    // Claim what the client announced before reading it, so that 40 big uploads cannot all start.
    if (Number.isFinite(declared) && declared > 0) claim.add(declared);
    return readBody(request.body, maxBodyBytes, claim, { ...timeouts, startedAt }, declared, bodies);
  }

  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const startedAt = Date.now();
    const receivedAtMs = now();
    const claim = inflight.claim();
    let journaled: EarlyJournalWrite | undefined;
    let submitted = false;
    let raw: Buffer | undefined;
    /** Decoded on a thread, its records packed there: nothing made of the body refers to its bytes. */
    let bodyIsFree = false;
    try {
      raw = await receive(request, claim, startedAt);
      const received: ReceivedBody = { body: raw, contentType: request.headers['content-type'], contentEncoding: headerValue(request.headers['content-encoding']) };
      journaled = options.journalBody?.(received, receivedAtMs);
      const { records, malformed, withoutText, format } = await decode(received, receivedAtMs, claim);
      bodyIsFree = records instanceof PackedBatch;
      if (withoutText > 0 && receivedAtMs - withoutTextLoggedAt >= WITHOUT_TEXT_LOG_EVERY_MS) {
        withoutTextLoggedAt = receivedAtMs;
        const example = records instanceof PackedBatch ? records.firstFieldsWithoutText() : records.find((record) => record.withoutText === true)?.fields;
        request.log.warn(
          { withoutText, keys: example === undefined ? [] : Object.keys(example).slice(0, 20) },
          'ingest: records without a text field leakwatch reads (message, MESSAGE, log, msg, full_message, short_message); they are counted, not grouped',
        );
      }
      if (records.length > 0) {
        await submitOrRefuse({ records, receivedAt: receivedAtMs, received, ...(journaled ? { journaled } : {}) }, request);
        submitted = true;
      }
      const codings = parseContentEncoding(received.contentEncoding);
      options.accepted?.({ format, encoding: codings.length === 0 ? 'identity' : [...codings].reverse().join('+'), bytes: raw.length, records: records.length, malformed });
      const answer: IngestAnswer = { accepted: records.length, malformed, without_text: withoutText };
      const pace = submitted ? options.pace?.() : undefined;
      if (pace !== undefined) {
        // The batch is journaled and queued: its body and its bytes in flight are not held while the answer waits.
        if (bodyIsFree) bodies.release(raw);
        claim.release();
        const waitFrom = performance.now();
        await doneWithin(pace, PACE_MAX_MS);
        options.paced?.(performance.now() - waitFrom);
      }
      return reply.code(200).send(answer);
    } finally {
      if (journaled !== undefined && !submitted) {
        journaled.abandon();
        // The write still holds the body: it stays counted against --max-inflight-bytes until the write ends.
        await journaled.ended;
      }
      // The journal write has ended (the answer or the abandon above waited for it).
      if (bodyIsFree && raw !== undefined) bodies.release(raw);
      claim.release();
    }
  };

  /** 503 only for what passes (queue full, store busy or full); a batch that can never be recorded gets a final 422. */
  async function submitOrRefuse(batch: SubmittedBatch, request: FastifyRequest): Promise<void> {
    let accepted: boolean;
    try {
      const outcome = options.submit(batch);
      // Without a journal write to wait for, the answer needs no extra turn of the event loop.
      accepted = typeof outcome === 'boolean' ? outcome : await outcome;
    } catch (error) {
      if (isLeakwatchError(error)) throw error;
      if (isPassingStorageError(error)) {
        request.log.warn({ err: error }, 'ingest: the store refused the batch for now');
        const message = (error as Error).message;
        throw new LeakwatchError('LW_ERR_STORAGE', (error as Error).name === 'StoreUnavailableError' ? message : `the batch could not be recorded for now (${message}); retry shortly`);
      }
      request.log.error({ err: error }, 'ingest: the batch cannot be recorded');
      throw new LeakwatchError('LW_ERR_UNRECORDABLE', `the batch cannot be recorded: ${(error as Error).message}`);
    }
    if (!accepted) throw new LeakwatchError('LW_ERR_OVERLOADED', 'the engine queue is full (--queue-records / --queue-bytes); retry shortly');
  }

  // The route limit only has to let the stream through; readBody enforces maxBodyBytes itself.
  const routeOptions = { bodyLimit: maxBodyBytes + 1 };
  app.post('/ingest', routeOptions, handler);
  app.post('/', routeOptions, handler);

  const remoteWrite = options.remoteWrite;
  if (remoteWrite === undefined) return;
  /**
   * Prometheus remote_write. The answer follows the Remote-Write 1.0 specification: 204 once the
   * kept samples are in the journal (Prometheus' own receiver answers 204 too), 503 with
   * Retry-After for what passes (senders retry 5xx), a final 4xx for a body that will never do.
   * Series that are not direct memory are skipped, not refused; the journal keeps the records made
   * of the kept ones, not the body.
   */
  app.post('/api/v1/write', routeOptions, async (request, reply) => {
    const startedAt = Date.now();
    const receivedAtMs = now();
    const claim = inflight.claim();
    try {
      if (isRemoteWriteV2(headerValue(request.headers['content-type']))) {
        throw new LeakwatchError('LW_ERR_UNSUPPORTED_MEDIA_TYPE', 'Remote-Write 2.0 (io.prometheus.write.v2.Request) is not read here; send Remote-Write 1.0 (protobuf_message: prometheus.WriteRequest)', {
          where: { stage: 'content-type' },
        });
      }
      const raw = await receive(request, claim, startedAt);
      // Snappy is the specification's only coding; a sender that leaves the header out still means it.
      const decoded = await decodeContentEncoding(raw, headerValue(request.headers['content-encoding']) ?? 'snappy', {
        maxBytes: maxBodyBytes,
        maxZstdWindowBytes: options.maxZstdWindowBytes,
        reserve: (bytes) => claim.add(bytes),
      });
      const { kept } = await decodeWriteRequest(decoded, remoteWrite.keep, options.limits?.maxRecords ?? DEFAULTS.maxRecords);
      const records = remoteWrite.toRecords(kept);
      if (records.length > 0) submitOrRefuse({ records, receivedAt: receivedAtMs }, request);
      return reply.code(204).send();
    } finally {
      claim.release();
    }
  });
};

/**
 * The longest an accepted body's answer waits for the engine: the batch is already safe, and a
 * sender must not be held long enough to time out and send it again. Past it the queue's caps
 * (503) bound what is held.
 */
const PACE_MAX_MS = 2000;

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

interface BodyTimeouts {
  idleMs: number;
  totalMs: number;
  startedAt: number;
}

/**
 * Collects the request stream, refusing past the size limit (413), when the upload pauses longer
 * than `idleMs` or takes longer than `totalMs` in all (408), and when the bytes in flight are at
 * their cap (503), without buffering more. Bytes beyond what Content-Length announced are claimed
 * as they come.
 */
async function readBody(body: unknown, limit: number, claim: InflightClaim, timeouts: BodyTimeouts, declared: number, bodies: SharedBodies): Promise<Buffer> {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(body)) {
    if (body.length > limit) throw bodyTooLarge(limit, 'request body');
    return body;
  }
  const stream = body as Readable;
  // A body that announced its length (Content-Length, NaN without) is put together as it comes.
  let assembly = declared <= limit ? bodies.assemble(declared) : undefined;
  const chunks: Buffer[] = [];
  let total = 0;
  return new Promise<Buffer>((resolve, reject) => {
    let idle: NodeJS.Timeout | undefined;
    const overall = setTimeout(() => stop(timedOut(`the request took longer than ${timeouts.totalMs} ms (--request-timeout)`)), Math.max(0, timeouts.startedAt + timeouts.totalMs - Date.now()));
    const armIdle = (): void => {
      if (idle) clearTimeout(idle);
      idle = setTimeout(() => stop(timedOut(`the upload paused for more than ${timeouts.idleMs} ms (--body-timeout)`)), timeouts.idleMs);
    };
    const finish = (): void => {
      if (idle) clearTimeout(idle);
      clearTimeout(overall);
      stream.off('data', onData);
    };
    // Stop keeping bytes; the rest of the upload is read and discarded (a 408 closes the connection).
    const stop = (error: Error): void => {
      finish();
      chunks.length = 0;
      assembly?.discard();
      assembly = undefined;
      stream.resume();
      reject(error);
    };
    const onData = (chunk: Buffer): void => {
      armIdle();
      total += chunk.length;
      if (total > limit) return stop(bodyTooLarge(limit, 'request body'));
      const unclaimed = total - claim.bytes;
      if (unclaimed > 0) {
        try {
          claim.add(unclaimed);
        } catch (error) {
          return stop(error as Error);
        }
      }
      if (assembly?.add(chunk) === true) return freeChunkNow(chunk);
      // More than announced (a parser that allowed it): what came so far joins the chunks.
      if (assembly !== undefined) {
        chunks.push(Buffer.from(assembly.body()));
        assembly.discard();
        assembly = undefined;
      }
      chunks.push(chunk);
    };
    armIdle();
    stream.on('data', onData);
    stream.once('end', () => {
      finish();
      if (assembly !== undefined) return resolve(assembly.body());
      const joined = bodies.join(chunks, total);
      for (const chunk of chunks) freeChunkNow(chunk);
      resolve(joined);
    });
    stream.once('error', (error) => {
      finish();
      assembly?.discard();
      reject(badBody(`request body could not be read: ${error.message}`, { stage: 'read' }));
    });
  });
}

function timedOut(message: string): LeakwatchError {
  return new LeakwatchError('LW_ERR_REQUEST_TIMEOUT', message);
}
