/**
 * operator/console/cookie-auth: how the REST API (api/server.ts) accepts a console session instead
 * of a bearer token — the session cookie ONLY together with the session's X-CSRF-Token header, for
 * every method (GET included: a cross-site page can neither send the cookie (SameSite=Strict) nor
 * know the token). An EventSource cannot set headers: for `Accept: text/event-stream` GETs the
 * token may come as `?csrf=` instead. A request whose Origin or Sec-Fetch-Site says cross-site is
 * refused. Destructive calls need their confirmation (console/confirm.ts). imports
 * console/sessions, console/confirm, auth/tokens, errors, store/types.
 */
import type { IncomingMessage } from 'node:http';
import type { Principal } from '../auth/tokens.js';
import { OpError, OpErrorCode } from '../errors.js';
import type { JsonObject } from '../store/types.js';
import { checkConfirmation } from './confirm.js';
import { ConsoleSessions, sessionCookie } from './sessions.js';

export interface CookieAuth {
  /** The session's principal; null when the request carries no console cookie; throws when it is bad. */
  authenticate(req: IncomingMessage, url: URL): Promise<Principal | null>;
  /** The body of a session-authenticated call, its confirmation checked and removed. */
  confirmed(method: string, path: string, body: JsonObject): JsonObject;
}

/** Refuses a request a browser marks as cross-site (Origin of another host, Sec-Fetch-Site). */
export function refuseCrossSite(req: IncomingMessage): void {
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') throw new OpError(OpErrorCode.csrf, 'cross-site request refused');
  const origin = req.headers['origin'];
  if (typeof origin === 'string' && origin !== 'null') {
    let host: string;
    try {
      host = new URL(origin).host;
    } catch {
      throw new OpError(OpErrorCode.csrf, 'cross-site request refused');
    }
    if (host !== req.headers['host']) throw new OpError(OpErrorCode.csrf, 'cross-site request refused');
  } else if (origin === 'null') throw new OpError(OpErrorCode.csrf, 'cross-site request refused');
}

export function cookieAuth(sessions: ConsoleSessions): CookieAuth {
  return {
    async authenticate(req, url) {
      const id = sessionCookie(req);
      if (id === null) return null;
      refuseCrossSite(req);
      const s = await sessions.lookup(id);
      if (!s) throw new OpError(OpErrorCode.unauthenticated, 'the console session is over (expired, signed out or its token revoked): sign in again');
      const header = req.headers['x-csrf-token'];
      let presented = typeof header === 'string' ? header : undefined;
      const sse = (req.method ?? 'GET') === 'GET' && /text\/event-stream/.test(String(req.headers['accept'] ?? ''));
      if (presented === undefined && sse) presented = url.searchParams.get('csrf') ?? undefined;
      if (!ConsoleSessions.csrfMatches(s.csrfHash, presented)) {
        throw new OpError(OpErrorCode.csrf, presented === undefined ? 'a console session needs its X-CSRF-Token header' : 'wrong X-CSRF-Token for this session');
      }
      return s.principal;
    },
    confirmed: checkConfirmation,
  };
}
