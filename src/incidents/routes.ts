import type { FastifyInstance, FastifyReply } from 'fastify';
import { LeakwatchError, sendError } from '../errors.js';
import { onlyQueryParameters } from '../query-parameters.js';
import { SEVERITIES, type Severity } from '../engine/event.js';
import { InvalidCursorError, type IncidentService } from './service.js';

export interface IncidentRoutesOptions {
  incidents: IncidentService;
}

interface ListQuery {
  status: 'open' | 'resolved' | 'all';
  host?: string;
  service?: string;
  category?: string;
  rule?: string;
  /** Exact match: an SRE filtering on `critical` wants those, and `status`-style exact filters compose simply. */
  severity?: Severity;
  since?: string;
  limit: number;
  cursor?: string;
}

const LIST_PARAMETERS = ['status', 'host', 'service', 'category', 'rule', 'severity', 'since', 'limit', 'cursor'];

const listQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    status: { type: 'string', enum: ['open', 'resolved', 'all'], default: 'open' },
    host: { type: 'string', maxLength: 1024 },
    service: { type: 'string', maxLength: 1024 },
    category: { type: 'string', maxLength: 256 },
    rule: { type: 'string', maxLength: 256 },
    severity: { type: 'string', enum: [...SEVERITIES] },
    since: { type: 'string', minLength: 1, maxLength: 64 },
    limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
    cursor: { type: 'string', minLength: 1, maxLength: 400 },
  },
} as const;

const idParamsSchema = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 128 } },
} as const;

/** `since` as ms since the epoch: whole milliseconds or an ISO-8601 date/time. */
export function parseSince(value: string): number | undefined {
  if (/^\d{1,16}$/.test(value)) return Number(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value)) return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : undefined;
}

function badParameter(reply: FastifyReply, parameter: string, message: string): FastifyReply {
  return sendError(reply, new LeakwatchError('LW_ERR_BAD_PARAMETER', `${parameter}: ${message}`, { where: { parameter } }));
}

function noSuchIncident(reply: FastifyReply, id: string): FastifyReply {
  return sendError(reply, new LeakwatchError('LW_ERR_NOT_FOUND', `no incident with id ${id}`, { where: { parameter: 'id' } }));
}

/** GET /incidents, GET /incidents/:id, POST /incidents/:id/ack, POST /incidents/:id/resolve. */
export async function incidentRoutes(app: FastifyInstance, options: IncidentRoutesOptions): Promise<void> {
  const { incidents } = options;

  app.get<{ Querystring: ListQuery }>(
    '/incidents',
    {
      schema: { querystring: listQuerySchema },
      preValidation: onlyQueryParameters(LIST_PARAMETERS),
    },
    async (request, reply) => {
      const { since, cursor, ...filters } = request.query;
      let sinceMs: number | undefined;
      if (since !== undefined) {
        sinceMs = parseSince(since);
        if (sinceMs === undefined) return badParameter(reply, 'since', `expected an ISO-8601 time or milliseconds since the epoch, got "${since}"`);
      }
      try {
        return incidents.list({ ...filters, since: sinceMs, cursor });
      } catch (error) {
        if (error instanceof InvalidCursorError) return badParameter(reply, 'cursor', error.message);
        throw error;
      }
    },
  );

  app.get<{ Params: { id: string } }>('/incidents/:id', { schema: { params: idParamsSchema } }, async (request, reply) => {
    const incident = incidents.get(request.params.id);
    return incident ?? noSuchIncident(reply, request.params.id);
  });

  for (const action of ['ack', 'resolve'] as const) {
    app.post<{ Params: { id: string } }>(`/incidents/:id/${action}`, { schema: { params: idParamsSchema } }, async (request, reply) => {
      const incident = action === 'ack' ? incidents.ack(request.params.id) : incidents.resolve(request.params.id);
      return incident ?? noSuchIncident(reply, request.params.id);
    });
  }
}
