/** GET /rules (what is loaded, and why the last reload failed), POST /-/reload and GET /unclassified. */
import type { FastifyPluginAsync } from 'fastify';
import type { UnclassifiedTally } from '../engine/unclassified-tally.js';
import { LeakwatchError, sendError } from '../errors.js';
import { onlyQueryParameters } from '../query-parameters.js';
import type { RuleSetHolder } from './holder.js';
import { formatProblem, type RuleProblem } from './problems.js';

function withText(problems: readonly RuleProblem[]): Array<RuleProblem & { text: string }> {
  return problems.map((problem) => ({ ...problem, text: formatProblem(problem) }));
}

const unclassifiedQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { limit: { type: 'integer', minimum: 1, maximum: 200, default: 20 } },
} as const;

export const rulesRoutes: FastifyPluginAsync<{ holder: RuleSetHolder; unclassified?: UnclassifiedTally }> = async (app, { holder, unclassified }) => {
  if (unclassified) {
    // Where the next rule is to be found: the multi-line records no rule classified, commonest first.
    app.get<{ Querystring: { limit: number } }>(
      '/unclassified',
      { schema: { querystring: unclassifiedQuerySchema }, preValidation: onlyQueryParameters(Object.keys(unclassifiedQuerySchema.properties)) },
      async (request) => ({
        total: unclassified.total,
        distinct: unclassified.distinct,
        capacity: unclassified.capacity,
        evicted: unclassified.evicted,
        shapes: unclassified.shapes(request.query.limit),
      }),
    );
  }

  app.get('/rules', async () => {
    const status = holder.status();
    return {
      ...status,
      warnings: withText(status.warnings),
      last_reload: { ...status.last_reload, errors: withText(status.last_reload.errors) },
      fallback: status.fallback === null ? null : { ...status.fallback, errors: withText(status.fallback.errors) },
    };
  });

  app.post('/-/reload', async (_request, reply) => {
    const outcome = await holder.reload();
    const status = holder.status();
    if (!outcome.ok) {
      // 422: the request was fine, the rule files are not; the previous rules stay in force.
      const count = outcome.errors.length;
      return sendError(
        reply,
        new LeakwatchError('LW_ERR_RULES_INVALID', `the rule files have ${count} error${count === 1 ? '' : 's'}; the previous rules (hash ${status.hash || 'none'}) stay active`, {
          problems: withText(outcome.errors),
        }),
      );
    }
    return { ok: true, hash: status.hash, rules: status.rules.length, loaded_at: status.loaded_at, warnings: withText(status.warnings) };
  });
};
