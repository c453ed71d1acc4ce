/**
 * The web page at GET /: a handful of static files from the package's web/ folder and uPlot's
 * two files from node_modules, read once at start-up and served from memory with an ETag. A fixed
 * list of names, not a static-file plugin: nothing on the URL ever becomes a path on disk, and the
 * page works offline (no CDN). The page reads the same JSON API as everyone else, so it needs the
 * same token: the 401 carries `WWW-Authenticate: Basic`, and the browser asks for it.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { LeakwatchError, sendError } from '../errors.js';

/** The page's own files: `web/` at the package root (src/web and dist/web are both two levels below it). */
export const WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

// uPlot sets positions through element.style (CSSOM), which style-src does not restrict.
const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

function assetOf(file: string): Asset {
  const body = readFileSync(file);
  const type = CONTENT_TYPES[path.extname(file)];
  if (type === undefined) throw new Error(`no content type for ${file}`);
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

/** Every file the page may ask for, by its URL name. */
function loadAssets(webDir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(webDir)) {
    if (/^[a-z][a-z0-9-]*\.(?:html|js|css|svg|png)$/.test(name)) assets.set(name, assetOf(path.join(webDir, name)));
  }
  const require = createRequire(import.meta.url);
  assets.set('uPlot.iife.min.js', assetOf(require.resolve('uplot/dist/uPlot.iife.min.js')));
  assets.set('uPlot.min.css', assetOf(require.resolve('uplot/dist/uPlot.min.css')));
  if (!assets.has('index.html')) throw new Error(`${webDir} has no index.html`);
  return assets;
}

function send(request: FastifyRequest, reply: FastifyReply, asset: Asset): FastifyReply {
  reply
    .header('content-security-policy', CONTENT_SECURITY_POLICY)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    // Revalidated on every load (an upgrade must never leave an old script running), answered 304 when unchanged.
    .header('cache-control', 'no-cache')
    .header('etag', asset.etag);
  if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
  return reply.type(asset.type).send(asset.body);
}

export async function webRoutes(app: FastifyInstance, options: { webDir?: string } = {}): Promise<void> {
  const assets = loadAssets(options.webDir ?? WEB_DIR);
  const index = assets.get('index.html')!;
  app.get('/', async (request, reply) => send(request, reply, index));
  app.get<{ Params: { name: string } }>('/assets/:name', async (request, reply) => {
    const asset = request.params.name === 'index.html' ? undefined : assets.get(request.params.name);
    if (!asset) return sendError(reply, new LeakwatchError('LW_ERR_NOT_FOUND', `no asset ${request.params.name}`, { where: { parameter: 'name' } }));
    return send(request, reply, asset);
  });
}
