import type { FastifyReply, FastifyRequest } from 'fastify';
import { LeakwatchError, sendError } from './errors.js';

/**
 * A preValidation hook that refuses unknown and repeated query parameters: fastify's validator
 * would drop them silently, and a misspelt filter must not look like "no filter".
 */
export function onlyQueryParameters(allowed: readonly string[]) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const query = request.query as Record<string, unknown>;
    for (const name of Object.keys(query)) {
      const problem = !allowed.includes(name) ? `unknown parameter; expected one of ${allowed.join(', ')}` : Array.isArray(query[name]) ? 'given more than once' : undefined;
      if (problem !== undefined) return sendError(reply, new LeakwatchError('LW_ERR_BAD_PARAMETER', `${name}: ${problem}`, { where: { parameter: name } }));
    }
    return undefined;
  };
}
