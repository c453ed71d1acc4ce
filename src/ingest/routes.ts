import type { Readable } from 'node:stream';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { decodeContentEncoding, parseContentEncoding } from './content-encoding.js';
import { decodeBody } from './decode-body.js';
import { LeakwatchError, sendError } from '../errors.js';
import { badBody, bodyTooLarge } from './errors.js';
import type { LogRecord } from './record.js';

export interface IngestRoutesOptions {
  /** Hands a decoded batch on; false means "full, try again later" (503 + Retry-After). */
  submit: (records: LogRecord[]) => boolean;
  /** Limit for the body as received and again after each Content-Encoding is undone. */
  maxBodyBytes: number;
  /** Receive time for records without one; injectable for tests. */
  now?: () => number;
}

export interface IngestAnswer {
  accepted: number;
  malformed: number;
}

/**
 * `POST /ingest` and `POST /` (Fluent Bit's default `uri /`): the HTTP sink every shipper posts to.
 * The plugin reads the raw body itself: all content types go to one catch-all parser, so no shipper
 * label (application/msgpack, application/x-msgpack, none at all) can earn fastify's own 415, and
 * the size limits apply to the bytes received and to what they decompress to.
 */
export const ingestRoutes: FastifyPluginAsync<IngestRoutesOptions> = async (app, options) => {
  const now = options.now ?? Date.now;
  const maxBodyBytes = options.maxBodyBytes;

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

  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const receivedAtMs = now();
    const raw = await readBody(request.body, maxBodyBytes);
    const decoded = await decodeContentEncoding(raw, headerValue(request.headers['content-encoding']), maxBodyBytes);
    const { records, malformed } = decodeBody(decoded, request.headers['content-type'], receivedAtMs);
    if (records.length > 0) {
      let refusal: string | undefined;
      try {
        if (!options.submit(records)) refusal = 'the engine queue is full; retry shortly';
      } catch (error) {
        // The batch could not be recorded (a full disk, say): 503 so that the shipper keeps it and retries.
        request.log.error({ err: error }, 'ingest: submit failed');
        refusal = 'the batch could not be recorded (storage error, see the server log); retry shortly';
      }
      if (refusal !== undefined) return sendError(reply, new LeakwatchError('LW_ERR_OVERLOADED', refusal));
    }
    const answer: IngestAnswer = { accepted: records.length, malformed };
    return reply.code(200).send(answer);
  };

  // The route limit only has to let the stream through; readBody enforces maxBodyBytes itself.
  const routeOptions = { bodyLimit: maxBodyBytes + 1 };
  app.post('/ingest', routeOptions, handler);
  app.post('/', routeOptions, handler);
};

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
      reject(badBody(`request body could not be read: ${error.message}`, { stage: 'read' })),
    );
  });
}
