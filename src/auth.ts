/**
 * Access control for every route. With a token configured, only the probes (/healthz, /readyz)
 * answer without it; reading (GET, HEAD) takes the admin or the read-only token; everything else
 * (ingest, ack, resolve, reload) takes the admin token. Either is sent as `Bearer <token>` or as
 * Basic auth whose password is the token: Fluent Bit's http_passwd and Fluentd's <auth> send that,
 * and so does a browser asked by `WWW-Authenticate: Basic`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest, RawServerDefault } from 'fastify';
import { LeakwatchError, sendError } from './errors.js';

/** What a route needs; routes say `config: { access: 'public' }` to opt out, the default follows the method. */
export type Access = 'public' | 'read' | 'admin';

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
  }
}

export interface AuthOptions {
  /** Admin token; without it every route is open (the start-up log says so on a non-loopback address). */
  token?: string | undefined;
  /** Read-only token, for dashboards and the web page. */
  readToken?: string | undefined;
}

export const AUTH_CHALLENGE = 'Basic realm="leakwatch", charset="UTF-8"';

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** The token in a Bearer header, or the password of a Basic one; undefined otherwise. */
export function presentedToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const space = header.indexOf(' ');
  if (space < 0) return undefined;
  const scheme = header.slice(0, space).toLowerCase();
  const credentials = header.slice(space + 1).trim();
  if (scheme === 'bearer') return credentials === '' ? undefined : credentials;
  if (scheme === 'basic') {
    const decoded = Buffer.from(credentials, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? undefined : decoded.slice(colon + 1);
  }
  return undefined;
}

function accessOf(request: FastifyRequest): Access {
  const declared = request.routeOptions.config?.access;
  if (declared !== undefined) return declared;
  return request.method === 'GET' || request.method === 'HEAD' ? 'read' : 'admin';
}

/** Adds the check to every route of `app` (call it on the root, before the routes are registered). */
export function installAuth<Log extends FastifyBaseLogger>(app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Log>, options: AuthOptions): void {
  if (options.token === undefined || options.token === '') return;
  const admin = digest(options.token);
  const reader = options.readToken === undefined || options.readToken === '' ? undefined : digest(options.readToken);
  app.addHook('onRequest', async (request, reply) => {
    const access = accessOf(request);
    if (access === 'public') return undefined;
    const presented = presentedToken(request.headers.authorization);
    // Hashing first gives equal lengths, which timingSafeEqual needs, and hides the token's length.
    const hash = presented === undefined ? undefined : digest(presented);
    const isAdmin = hash !== undefined && timingSafeEqual(hash, admin);
    const isReader = !isAdmin && hash !== undefined && reader !== undefined && timingSafeEqual(hash, reader);
    if (!isAdmin && !isReader) {
      reply.header('www-authenticate', AUTH_CHALLENGE);
      return sendError(
        reply,
        new LeakwatchError('LW_ERR_UNAUTHORIZED', 'missing or wrong token (send Authorization: Bearer <token>, or Basic auth with the token as password)'),
      );
    }
    if (access === 'admin' && !isAdmin) {
      return sendError(reply, new LeakwatchError('LW_ERR_FORBIDDEN', `${request.method} ${request.url.split('?')[0]} needs the admin token; the read-only token only reads`));
    }
    return undefined;
  });
}
