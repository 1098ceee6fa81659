/**
 * operator/console/handler: the web console's own endpoints under /console, mounted on the
 * operator's HTTPS server —
 *   GET  /console/ (and /console)            the page (static/index.html); app.js and style.css next to it
 *   POST /console/session { token }           sign in with an API token → session cookie + CSRF token
 *   GET  /console/session                     the current session (name, role, CSRF token) for a reload
 *   DELETE /console/session                   sign out (needs the CSRF token)
 * Static files are read once from ./static (copied next to the compiled file by scripts/build.mjs).
 * Pages carry a strict CSP (default-src 'self', no inline script or style), no framing, no referrer,
 * nosniff. The JSON API the pages call is /v1 (api/server.ts with console/cookie-auth).
 * imports console/sessions, console/cookie-auth, api/http, errors.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { errorReply, parseJsonBody, readBody, send, type Reply } from '../api/http.js';
import { isOpError, OpError, OpErrorCode } from '../errors.js';
import { refuseCrossSite } from './cookie-auth.js';
import { COOKIE_NAME, ConsoleSessions, sessionCookie } from './sessions.js';

export const CONSOLE_PREFIX = '/console';

export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=()',
};

const ASSETS: Readonly<Record<string, { file: string; type: string }>> = {
  '/console/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/console/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

function loadAssets(): Map<string, { data: Buffer; type: string }> {
  const dir = fileURLToPath(new URL('./static/', import.meta.url));
  const m = new Map<string, { data: Buffer; type: string }>();
  for (const [path, a] of Object.entries(ASSETS)) m.set(path, { data: readFileSync(dir + a.file), type: a.type });
  return m;
}

function cookie(value: string, maxAge?: number): string {
  return `${COOKIE_NAME}=${value}; Path=/; Secure; HttpOnly; SameSite=Strict${maxAge === undefined ? '' : `; Max-Age=${maxAge}`}`;
}

export function consoleHandler(sessions: ConsoleSessions): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const assets = loadAssets();
  const reply = (res: ServerResponse, r: Reply): void => send(res, { ...r, headers: { ...PAGE_HEADERS, ...r.headers } });

  const session = async (req: IncomingMessage): Promise<Reply> => {
    const method = req.method ?? 'GET';
    refuseCrossSite(req);
    if (method === 'POST') {
      const body = parseJsonBody(req, await readBody(req, 4096, 10_000));
      const token = body['token'];
      if (typeof token !== 'string' || token.length === 0) throw new OpError(OpErrorCode.badRequest, 'send { "token": "sop_…" }');
      if (!/^application\/json\b/i.test(String(req.headers['content-type'] ?? ''))) throw new OpError(OpErrorCode.unsupportedMediaType, 'send JSON');
      const s = await sessions.signIn(token);
      return {
        status: 201,
        body: { name: s.principal.name, role: s.principal.role, csrf: s.csrf, expiresAt: new Date(s.expiresAt).toISOString(), idleSeconds: Math.round(sessions.idleMs / 1000) },
        headers: { 'set-cookie': cookie(s.id) },
      };
    }
    req.resume();
    const id = sessionCookie(req);
    const s = id === null ? null : await sessions.lookup(id);
    if (method === 'GET') {
      // A custom header a cross-origin page cannot send without a CORS preflight (which fails).
      if (req.headers['x-requested-with'] !== 'setls-console') throw new OpError(OpErrorCode.csrf, 'send X-Requested-With: setls-console');
      if (!s) throw new OpError(OpErrorCode.unauthenticated, 'no console session: sign in');
      return { status: 200, body: { name: s.principal.name, role: s.principal.role, csrf: s.csrf, expiresAt: new Date(s.expiresAt).toISOString() } };
    }
    if (method === 'DELETE') {
      if (!s || id === null) return { status: 204, headers: { 'set-cookie': cookie('', 0) } };
      const h = req.headers['x-csrf-token'];
      if (!ConsoleSessions.csrfMatches(s.csrfHash, typeof h === 'string' ? h : undefined)) throw new OpError(OpErrorCode.csrf, 'sign-out needs the X-CSRF-Token header');
      sessions.end(id);
      return { status: 204, headers: { 'set-cookie': cookie('', 0) } };
    }
    throw new OpError(OpErrorCode.methodNotAllowed, `${method} is not allowed on /console/session`);
  };

  return async (req, res) => {
    let path: string;
    try {
      path = new URL(req.url ?? '/', 'https://operator.invalid').pathname;
    } catch {
      path = '';
    }
    try {
      if (path === '/console/session') {
        reply(res, await session(req));
        return;
      }
      req.resume();
      if (path === '/console') {
        reply(res, { status: 308, headers: { location: '/console/' } });
        return;
      }
      const a = assets.get(path);
      if (!a || !path.startsWith('/console/')) throw new OpError(OpErrorCode.notFound, `no such page: ${path}`);
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new OpError(OpErrorCode.methodNotAllowed, `${req.method} is not allowed on ${path}`);
      reply(res, { status: 200, raw: { type: a.type, data: a.data }, headers: { 'cache-control': 'no-cache' } });
    } catch (e) {
      reply(res, errorReply(isOpError(e) ? e : new OpError(OpErrorCode.internal, 'internal error')));
    }
  };
}
