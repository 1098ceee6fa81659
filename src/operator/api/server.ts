/**
 * operator/api/server: `setls operator serve` — node:https with the operator's own certificate
 * (D/tls.crt, issued by D/tls-ca.crt), the REST API (api/routes.ts) behind bearer-token roles,
 * Idempotency-Key replay, bounded bodies, timeouts and one error shape; plus `mount(prefix,
 * handler)` for other endpoints served by the same process (the device-agent relay, /admin/v1/,
 * authenticates its agents itself). The TLS server asks clients for a certificate of the issuing CA
 * without requiring one (EST /simplereenroll). imports api/*, auth/tokens, operator, errors, pki/x509,
 * console/cookie-auth (type only).
 *
 * The web console (console/, docs/console.md) plugs in with `useCookieAuth`: a request without
 * Authorization but with the console's session cookie is authenticated by it (cookie + CSRF
 * header), and its destructive calls must carry their confirmation. Every response carries
 * security headers (nosniff, no framing, no referrer, a CSP that allows nothing for API bodies).
 *
 * Idempotency (POSTs that create work): the key is scoped to the token; the request hash is
 * SHA-256 over method, path and the canonical JSON body. Same key + same hash → the stored response
 * again (`idempotent-replayed: true`); same key + other hash → 422 ERR_OP_IDEMPOTENCY_MISMATCH;
 * while the first is still running → 409 ERR_OP_IDEMPOTENCY_IN_PROGRESS. Responses with status
 * ≥ 500 are not stored (the client may retry). A reservation left by a crashed process is taken
 * over after 60 s; jobs are deduplicated by their own unique key as well.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { verifyApiToken, hasRole, type Principal } from '../auth/tokens.js';
import { isOpError, OpError, OpErrorCode } from '../errors.js';
import { readSecretFile } from '../keys/secret-files.js';
import type { Operator } from '../operator.js';
import { sha256 } from '../pki/x509.js';
import type { CookieAuth } from '../console/cookie-auth.js';
import type { Json } from '../store/types.js';
import { canonicalJson, DEFAULT_BODY_LIMIT, errorReply, parseJsonBody, readBody, send, type Reply } from './http.js';
import { buildRoutes, type Route } from './routes.js';

export interface ServerLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface ServerOptions {
  readonly operator: Operator;
  readonly host?: string;
  readonly port?: number;
  readonly bodyLimit?: number;
  readonly log?: ServerLog;
  /** TLS material (default: D/tls.crt and D/tls.key). */
  readonly cert?: string;
  readonly key?: string;
}

export type MountHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

const IDEMPOTENCY_TAKEOVER_MS = 60_000;
const SILENT: ServerLog = { info() {}, warn() {}, error() {} };

/** Sent on every response (the console's pages set their own CSP). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
};

export class OperatorServer {
  readonly server: Server;
  private readonly routes: Route[];
  private readonly mounts: { prefix: string; handler: MountHandler }[] = [];
  private readonly log: ServerLog;
  private readonly op: Operator;
  private cookieAuth: CookieAuth | null = null;

  constructor(private readonly o: ServerOptions) {
    this.op = o.operator;
    this.log = o.log ?? SILENT;
    this.routes = buildRoutes(o.operator);
    const paths = o.operator.paths;
    this.server = createServer(
      {
        cert: o.cert ?? readFileSync(paths.tlsCert, 'utf8'),
        key: o.key ?? readSecretFile(paths.tlsKey).toString('utf8'),
        minVersion: 'TLSv1.2',
        // EST /simplereenroll authenticates by the certificate being renewed: every client is asked
        // for one issued by the issuing CA, none is required (the other endpoints use tokens; the
        // EST handler checks the certificate itself: est/client-enrol.ts).
        requestCert: true,
        rejectUnauthorized: false,
        ca: [o.operator.ca.certPem],
        requestTimeout: 30_000,
        headersTimeout: 15_000,
        keepAliveTimeout: 5_000,
      },
      (req, res) => void this.handle(req, res),
    );
    this.server.setTimeout(120_000, (socket) => socket.destroy());
    this.server.maxHeadersCount = 100;
  }

  /** Serves every path starting with `prefix` by `handler` (no API auth: the handler's own). */
  mount(prefix: string, handler: MountHandler): void {
    this.mounts.push({ prefix, handler });
  }

  /** Accepts the web console's session cookie (with its CSRF token) as API authentication. */
  useCookieAuth(auth: CookieAuth): void {
    this.cookieAuth = auth;
  }

  async listen(): Promise<{ port: number; url: string }> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.o.port ?? 9443, this.o.host ?? '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const port = (this.server.address() as AddressInfo).port;
    const host = this.o.host ?? '127.0.0.1';
    const name = host === '127.0.0.1' || host === '::1' || host === '0.0.0.0' || host === '::' ? 'localhost' : host;
    return { port, url: `https://${name}:${port}` };
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const method = req.method ?? 'GET';
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'https://operator.invalid');
    } catch {
      send(res, errorReply(new OpError(OpErrorCode.badRequest, 'malformed request target')));
      return;
    }
    const mount = this.mounts.find((m) => url.pathname.startsWith(m.prefix));
    if (mount) {
      try {
        await mount.handler(req, res);
      } catch (e) {
        this.log.error({ err: e, path: url.pathname }, 'mounted handler failed');
        send(res, errorReply(new OpError(OpErrorCode.internal, 'internal error')));
      }
      return;
    }
    let routeName = 'unmatched';
    let reply: Reply;
    try {
      const { route, params } = this.match(method, url.pathname);
      routeName = route.name;
      reply = await this.run(route, params, req, url);
    } catch (e) {
      reply = this.errorOf(e, method, url.pathname);
    }
    if (reply.stream) reply.stream(req, res);
    else send(res, reply);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.op.metrics.httpRequests.inc({ method, route: routeName, status: String(reply.status) });
    this.op.metrics.httpDuration.observe({ route: routeName }, seconds);
    this.log.info({ method, path: url.pathname, route: routeName, status: reply.status, ms: Math.round(seconds * 1000) }, 'request');
  }

  private errorOf(e: unknown, method: string, path: string): Reply {
    if (isOpError(e)) return errorReply(e);
    this.log.error({ err: e, method, path }, 'request failed');
    return errorReply(new OpError(OpErrorCode.internal, 'internal error (see the operator log)'));
  }

  private match(method: string, path: string): { route: Route; params: string[] } {
    let pathMatched = false;
    for (const route of this.routes) {
      const m = route.pattern.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (route.method === method) return { route, params: m.slice(1) };
    }
    if (pathMatched) throw new OpError(OpErrorCode.methodNotAllowed, `${method} is not allowed on ${path}`);
    throw new OpError(OpErrorCode.notFound, `no such endpoint: ${method} ${path}`);
  }

  /**
   * The caller of a request: its bearer token, or (without Authorization) the console session of its
   * cookie with the CSRF token. Public for mounted handlers that stream (server-sent events) and so
   * authenticate themselves like the routes.
   */
  async authenticate(req: IncomingMessage, url: URL): Promise<{ principal: Principal; viaSession: boolean }> {
    const h = req.headers['authorization'];
    if (h === undefined && this.cookieAuth) {
      const p = await this.cookieAuth.authenticate(req, url);
      if (p) return { principal: p, viaSession: true };
    }
    const m = typeof h === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
    if (!m) throw new OpError(OpErrorCode.unauthenticated, 'a bearer token is required (Authorization: Bearer sop_…)');
    const p = await verifyApiToken(this.op.store, m[1]!);
    void this.op.store.touchApiToken(p.tokenId, this.op.now()).catch(() => undefined);
    return { principal: p, viaSession: false };
  }

  private async run(route: Route, params: string[], req: IncomingMessage, url: URL): Promise<Reply> {
    let principal: Principal | null = null;
    let viaSession = false;
    if (route.role !== null) {
      ({ principal, viaSession } = await this.authenticate(req, url));
      if (route.role !== 'per-kind' && !hasRole(principal, route.role)) {
        throw new OpError(OpErrorCode.forbidden, `${route.name} needs the ${route.role} role; this token is ${principal.role}`);
      }
    }
    const raw = route.method === 'POST' ? await readBody(req, route.bodyLimit ?? this.o.bodyLimit ?? DEFAULT_BODY_LIMIT) : Buffer.alloc(0);
    if (route.method === 'GET') req.resume();
    const parsed = route.method === 'POST' ? parseJsonBody(req, raw, route.arrayBodyKey) : {};
    const body = viaSession && this.cookieAuth ? this.cookieAuth.confirmed(route.method, url.pathname, parsed) : parsed;
    const keyHeader = req.headers['idempotency-key'];
    const key = typeof keyHeader === 'string' && keyHeader !== '' ? keyHeader : null;
    if (key !== null && (key.length > 255 || !/^[\x21-\x7e]+$/.test(key))) throw new OpError(OpErrorCode.badRequest, 'Idempotency-Key must be 1–255 visible ASCII characters');
    const accept = String(req.headers['accept'] ?? '*/*');
    const call = (idem: string | null): Promise<Reply> => route.handler({ params, query: url.searchParams, body, principal, accept, idempotencyKey: idem });
    if (!route.createsWork || key === null || principal === null) return call(null);

    const requestHash = sha256(Buffer.from(`${route.method} ${url.pathname}${url.search}\n${canonicalJson(body)}`, 'utf8'));
    const store = this.op.store;
    for (let tries = 0; ; tries++) {
      const existing = await store.reserveIdempotency({ principal: principal.tokenId, key, requestHash, createdAt: this.op.now() });
      if (!existing) break;
      if (!Buffer.from(existing.requestHash).equals(Buffer.from(requestHash))) {
        throw new OpError(OpErrorCode.idempotencyMismatch, 'this Idempotency-Key was used with another request; use a new key for a new request');
      }
      if (existing.status === 0) {
        if (tries === 0 && this.op.now() - existing.createdAt > IDEMPOTENCY_TAKEOVER_MS) {
          await store.releaseIdempotency(principal.tokenId, key);
          continue;
        }
        throw new OpError(OpErrorCode.idempotencyInProgress, 'a request with this Idempotency-Key is still being processed; retry later');
      }
      const stored = existing.response as { body?: Json; headers?: Record<string, string> } | null;
      return { status: existing.status, body: stored?.body ?? null, headers: { ...(stored?.headers ?? {}), 'idempotent-replayed': 'true' } };
    }
    let reply: Reply;
    try {
      reply = await call(`${principal.tokenId}/${key}`);
    } catch (e) {
      reply = isOpError(e) ? errorReply(e) : this.errorOf(e, route.method, url.pathname);
    }
    if (reply.status >= 500) await store.releaseIdempotency(principal.tokenId, key);
    else await store.completeIdempotency(principal.tokenId, key, reply.status, { body: reply.body ?? null, headers: reply.headers ?? {} } as Json);
    return reply;
  }
}
