import type { FastifyInstance } from 'fastify';
import { onlyQueryParameters } from '../query-parameters.js';
import type { MemoryTracker } from './tracker.js';

export interface MemoryRoutesOptions {
  memory: MemoryTracker;
}

const querySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    host: { type: 'string', maxLength: 1024 },
    service: { type: 'string', maxLength: 1024 },
    samples: { type: 'integer', minimum: 1, maximum: 1000, default: 200 },
  },
} as const;

/** GET /memory → {"processes": [...]}: direct memory per process, newest state and trend. */
export async function memoryRoutes(app: FastifyInstance, options: MemoryRoutesOptions): Promise<void> {
  app.get<{ Querystring: { host?: string; service?: string; samples: number } }>(
    '/memory',
    { schema: { querystring: querySchema }, preValidation: onlyQueryParameters(Object.keys(querySchema.properties)) },
    async (request) => {
      const { host, service, samples } = request.query;
      return { processes: options.memory.processes({ host, service }, samples) };
    },
  );
}
