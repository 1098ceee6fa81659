/**
 * operator/console/sessions: the web console's server-side sessions. Signing in with an API token
 * makes a session: an opaque id (32 random bytes, base64url) that travels only in an HttpOnly,
 * Secure, SameSite=Strict cookie, and a CSRF token (32 random bytes) the page holds in memory and
 * sends as X-CSRF-Token (a reload asks for it again: GET /console/session, same-origin only). The table keys sessions by SHA-256(id), so it holds no usable cookie value;
 * the CSRF token is compared in constant time. A session dies after `idleMs` without use, after
 * `absoluteMs` in all, at logout, or when its API token is revoked (checked on every request).
 * Sessions live in this process (bounded: the oldest goes when `maxSessions` is reached); several
 * operator nodes behind one name need sticky routing for the console (docs/console.md).
 * imports auth/tokens, pki/x509 (sha256), errors, store/types.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { verifyApiToken, type Principal } from '../auth/tokens.js';
import { OpError, OpErrorCode } from '../errors.js';
import { sha256 } from '../pki/x509.js';
import type { OperatorStore } from '../store/types.js';

export const COOKIE_NAME = '__Host-setls-console';

export interface SessionOptions {
  readonly idleMs?: number;
  readonly absoluteMs?: number;
  readonly maxSessions?: number;
  readonly now?: () => number;
  /** Failed sign-ins allowed per minute (per process) before 429. */
  readonly signInFailuresPerMinute?: number;
}

interface Session {
  readonly principal: Principal;
  readonly csrf: string;
  readonly csrfHash: Uint8Array;
  readonly createdAt: number;
  lastUsedAt: number;
}

export interface NewSession {
  readonly id: string;
  readonly csrf: string;
  readonly principal: Principal;
  readonly expiresAt: number;
}

const hashOf = (text: string): Uint8Array => sha256(Buffer.from(text, 'utf8'));

export class ConsoleSessions {
  readonly idleMs: number;
  readonly absoluteMs: number;
  private readonly max: number;
  private readonly now: () => number;
  private readonly byHash = new Map<string, Session>();
  private failures: number[] = [];
  private readonly failuresPerMinute: number;

  constructor(
    private readonly store: OperatorStore,
    o: SessionOptions = {},
  ) {
    this.idleMs = o.idleMs ?? 30 * 60_000;
    this.absoluteMs = o.absoluteMs ?? 12 * 3600_000;
    this.max = o.maxSessions ?? 10_000;
    this.now = o.now ?? Date.now;
    this.failuresPerMinute = o.signInFailuresPerMinute ?? 30;
  }

  get size(): number {
    return this.byHash.size;
  }

  /** Signs in with an API token: a new session, or ERR_OP_UNAUTHENTICATED / ERR_OP_RATE_LIMITED. */
  async signIn(token: string): Promise<NewSession> {
    const now = this.now();
    this.failures = this.failures.filter((t) => now - t < 60_000);
    if (this.failures.length >= this.failuresPerMinute) throw new OpError(OpErrorCode.rateLimited, 'too many failed sign-ins; wait a minute');
    let principal: Principal;
    try {
      principal = await verifyApiToken(this.store, token);
    } catch (e) {
      this.failures.push(now);
      throw e;
    }
    this.sweep(now);
    while (this.byHash.size >= this.max) this.byHash.delete(this.byHash.keys().next().value!);
    const id = randomBytes(32).toString('base64url');
    const csrf = randomBytes(32).toString('base64url');
    this.byHash.set(Buffer.from(hashOf(id)).toString('hex'), { principal, csrf, csrfHash: hashOf(csrf), createdAt: now, lastUsedAt: now });
    return { id, csrf, principal, expiresAt: now + this.absoluteMs };
  }

  /**
   * The live session of a cookie value (touching it), or null (unknown, expired, token revoked).
   * Expired sessions are forgotten.
   */
  async lookup(id: string): Promise<{ principal: Principal; csrf: string; csrfHash: Uint8Array; expiresAt: number } | null> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(id)) return null;
    const key = Buffer.from(hashOf(id)).toString('hex');
    const s = this.byHash.get(key);
    if (!s) return null;
    const now = this.now();
    if (now - s.lastUsedAt > this.idleMs || now - s.createdAt > this.absoluteMs) {
      this.byHash.delete(key);
      return null;
    }
    const row = await this.store.apiTokenById(s.principal.tokenId);
    if (!row || row.revokedAt !== null) {
      this.byHash.delete(key);
      return null;
    }
    s.lastUsedAt = now;
    return { principal: s.principal, csrf: s.csrf, csrfHash: s.csrfHash, expiresAt: Math.min(s.createdAt + this.absoluteMs, now + this.idleMs) };
  }

  /** Ends a session (logout). */
  end(id: string): void {
    this.byHash.delete(Buffer.from(hashOf(id)).toString('hex'));
  }

  /** True when `presented` is the session's CSRF token (constant time over the hashes). */
  static csrfMatches(csrfHash: Uint8Array, presented: string | undefined): boolean {
    if (typeof presented !== 'string' || presented.length === 0 || presented.length > 256) return false;
    return timingSafeEqual(hashOf(presented), csrfHash);
  }

  private sweep(now: number): void {
    for (const [k, s] of this.byHash) if (now - s.lastUsedAt > this.idleMs || now - s.createdAt > this.absoluteMs) this.byHash.delete(k);
  }
}

/** The console session id of a request's Cookie header, or null. */
export function sessionCookie(req: IncomingMessage): string | null {
  const h = req.headers['cookie'];
  if (typeof h !== 'string') return null;
  for (const part of h.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === COOKIE_NAME) return part.slice(eq + 1).trim();
  }
  return null;
}
