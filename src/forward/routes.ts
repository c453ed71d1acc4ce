import type { FastifyInstance, FastifyReply } from 'fastify';
import { LeakwatchError, sendError } from '../errors.js';
import { onlyQueryParameters } from '../query-parameters.js';
import type { ForwardOutbox } from '../store/store.js';
import type { Forwarder } from './forwarder.js';

export interface ForwardRoutesOptions {
  forwarder: Forwarder;
  outbox: ForwardOutbox;
}

interface ListQuery {
  target?: string;
  limit: number;
  cursor?: string;
}

const listQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    target: { type: 'string', minLength: 1, maxLength: 200 },
    limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
    cursor: { type: 'string', minLength: 1, maxLength: 40 },
  },
} as const;

const retryQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { target: { type: 'string', minLength: 1, maxLength: 200 } },
} as const;

/** The page position: the last id listed, base64url, so that callers treat it as opaque. */
function encodeCursor(id: number): string {
  return Buffer.from(String(id)).toString('base64url');
}

function decodeCursor(cursor: string): number | undefined {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  return /^\d{1,15}$/.test(text) ? Number(text) : undefined;
}

function badParameter(reply: FastifyReply, parameter: string, message: string): FastifyReply {
  return sendError(reply, new LeakwatchError('LW_ERR_BAD_PARAMETER', `${parameter}: ${message}`, { where: { parameter } }));
}

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * GET /forward/dead-letters: what targets refused or gave up on, oldest first, paged.
 * POST /forward/dead-letters/retry[?target=]: queues them again (admin token), as if new.
 */
export async function forwardRoutes(app: FastifyInstance, options: ForwardRoutesOptions): Promise<void> {
  const { forwarder, outbox } = options;

  app.get<{ Querystring: ListQuery }>(
    '/forward/dead-letters',
    { schema: { querystring: listQuerySchema }, preValidation: onlyQueryParameters(['target', 'limit', 'cursor']) },
    async (request, reply) => {
      const { target, limit, cursor } = request.query;
      let afterId: number | undefined;
      if (cursor !== undefined) {
        afterId = decodeCursor(cursor);
        if (afterId === undefined) return badParameter(reply, 'cursor', 'not a cursor this server returned');
      }
      const rows = outbox.deadLetters({ ...(target === undefined ? {} : { target }), ...(afterId === undefined ? {} : { afterId }), limit: limit + 1 });
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        dead_letters: page.map((row) => ({
          target: row.target,
          record_id: row.recordId,
          status: row.lastStatus,
          last_error: row.lastError,
          attempts: row.attempts,
          created_at: iso(row.createdAt),
          dead_at: iso(row.deadAt),
          bytes: row.bytes,
        })),
        next_cursor: rows.length > limit && last ? encodeCursor(last.id) : null,
      };
    },
  );

  app.post<{ Querystring: { target?: string } }>(
    '/forward/dead-letters/retry',
    { schema: { querystring: retryQuerySchema }, preValidation: onlyQueryParameters(['target']) },
    async (request, reply) => {
      const { target } = request.query;
      if (target !== undefined && !forwarder.has(target)) {
        const known = forwarder.targets.map((t) => t.name);
        return badParameter(reply, 'target', `not a configured target${known.length > 0 ? `; configured: ${known.join(', ')}` : ' (no --forward-url is set)'}`);
      }
      if (forwarder.targets.length === 0) return badParameter(reply, 'target', 'no --forward-url is set: there is nowhere to send dead letters');
      return { requeued: forwarder.retryDeadLetters(target) };
    },
  );
}
