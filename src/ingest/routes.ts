import { createHash, timingSafeEqual } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { decodeContentEncoding, parseContentEncoding } from './content-encoding.js';
import { decodeBody } from './decode-body.js';
import { bodyTooLarge, IngestError, isIngestError } from './errors.js';
import type { LogRecord } from './record.js';

export interface IngestRoutesOptions {
  /** Hands a decoded batch on; false means "full, try again later" (503 + Retry-After). */
  submit: (records: LogRecord[]) => boolean;
  /** When set, requests need `Authorization: Bearer <token>` or Basic with password = token. */
  token?: string;
  /** Limit for the body as received and again after each Content-Encoding is undone. */
  maxBodyBytes: number;
  /** Receive time for records without one; injectable for tests. */
  now?: () => number;
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
 * the size limits apply to the bytes received and to what they decompress to.
 */
export const ingestRoutes: FastifyPluginAsync<IngestRoutesOptions> = async (app, options) => {
  const now = options.now ?? Date.now;
  const maxBodyBytes = options.maxBodyBytes;
  const expectedToken = options.token === undefined || options.token === '' ? undefined : digest(options.token);
  let withoutTextLoggedAt = Number.NEGATIVE_INFINITY;

  // Encapsulated by fastify: only these routes lose the default JSON/text parsers.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request: FastifyRequest, payload: Readable, done: (error: Error | null, body?: unknown) => void) => {
    done(null, payload);
  });

  app.setErrorHandler((error: unknown, _request, reply) => {
    if (isIngestError(error)) return sendError(reply, error);
    throw error;
  });

  app.addHook('onRequest', async (request, reply) => {
    if (expectedToken !== undefined && !isAuthorized(request.headers.authorization, expectedToken)) {
      reply.header('www-authenticate', ['Bearer realm="leakwatch"', 'Basic realm="leakwatch"']);
      return sendError(reply, new IngestError('LW_ERR_UNAUTHORIZED', 'missing or wrong token (send Authorization: Bearer <token>, or Basic with the token as password)'));
    }
    // Refuse unknown encodings and oversized bodies before reading a byte.
    parseContentEncoding(headerValue(request.headers['content-encoding']));
    const declared = Number(request.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBodyBytes) throw bodyTooLarge(maxBodyBytes, 'Content-Length');
    return undefined;
  });

  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const receivedAtMs = now();
    const raw = await readBody(request.body, maxBodyBytes);
    const decoded = await decodeContentEncoding(raw, headerValue(request.headers['content-encoding']), maxBodyBytes);
    const { records, malformed, withoutText } = decodeBody(decoded, request.headers['content-type'], receivedAtMs);
    if (withoutText > 0 && receivedAtMs - withoutTextLoggedAt >= WITHOUT_TEXT_LOG_EVERY_MS) {
      withoutTextLoggedAt = receivedAtMs;
      const example = records.find((record) => record.withoutText === true)?.fields;
      request.log.warn(
        { withoutText, keys: example === undefined ? [] : Object.keys(example).slice(0, 20) },
        'ingest: records without a text field leakwatch reads (message, MESSAGE, log, msg, full_message, short_message); they are counted, not grouped',
      );
    }
    if (records.length > 0) {
      let refusal: string | undefined;
      try {
        if (!options.submit(records)) refusal = 'the engine queue is full; retry shortly';
      } catch (error) {
        // The batch could not be recorded (a full disk, say): 503 so that the shipper keeps it and retries.
        request.log.error({ err: error }, 'ingest: submit failed');
        refusal =
          error instanceof Error && error.name === 'StoreUnavailableError'
            ? error.message
            : 'the batch could not be recorded (storage error, see the server log); retry shortly';
      }
      if (refusal !== undefined) {
        reply.header('retry-after', '1');
        return sendError(reply, new IngestError('LW_ERR_OVERLOADED', refusal));
      }
    }
    const answer: IngestAnswer = { accepted: records.length, malformed, without_text: withoutText };
    return reply.code(200).send(answer);
  };

  // The route limit only has to let the stream through; readBody enforces maxBodyBytes itself.
  const routeOptions = { bodyLimit: maxBodyBytes + 1 };
  app.post('/ingest', routeOptions, handler);
  app.post('/', routeOptions, handler);
};

function sendError(reply: FastifyReply, error: IngestError): FastifyReply {
  if (error.statusCode === 413) reply.header('connection', 'close');
  return reply.code(error.statusCode).type('application/json; charset=utf-8').send(error.toJSON());
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

/** Collects the request stream, refusing (413) past the limit without buffering more. */
async function readBody(body: unknown, limit: number): Promise<Buffer> {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(body)) {
    if (body.length > limit) throw bodyTooLarge(limit, 'request body');
    return body;
  }
  const stream = body as Readable;
  const chunks: Buffer[] = [];
  let total = 0;
  return new Promise<Buffer>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > limit) {
        // Stop keeping bytes; the 413 goes out with Connection: close, which ends the upload.
        stream.off('data', onData);
        stream.resume();
        chunks.length = 0;
        reject(bodyTooLarge(limit, 'request body'));
        return;
      }
      chunks.push(chunk);
    };
    stream.on('data', onData);
    stream.once('end', () => resolve(Buffer.concat(chunks, total)));
    stream.once('error', (error) =>
      reject(new IngestError('LW_ERR_BAD_BODY', `request body could not be read: ${error.message}`, { stage: 'read' })),
    );
  });
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Bearer token, or Basic whose password is the token (Fluent Bit http_passwd, Fluentd <auth>). */
function isAuthorized(header: string | undefined, expected: Buffer): boolean {
  if (header === undefined) return false;
  const space = header.indexOf(' ');
  if (space < 0) return false;
  const scheme = header.slice(0, space).toLowerCase();
  const credentials = header.slice(space + 1).trim();
  let presented: string | undefined;
  if (scheme === 'bearer') {
    presented = credentials;
  } else if (scheme === 'basic') {
    const decoded = Buffer.from(credentials, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    presented = colon < 0 ? undefined : decoded.slice(colon + 1);
  }
  return presented !== undefined && timingSafeEqual(digest(presented), expected);
}
