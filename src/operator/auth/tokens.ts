/**
 * operator/auth/tokens: API bearer tokens with roles (viewer < operator < admin). A token is
 * `sop_<id>_<secret>` (id: 16 hex, secret: 32 random bytes base64url); the store keeps the id, the
 * role and SHA-256(secret) only, so a database leak yields no usable token. Verification looks the
 * id up and compares the secret's hash in constant time. imports store/types, errors, pki/x509.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { OpError, OpErrorCode } from '../errors.js';
import { sha256 } from '../pki/x509.js';
import { ROLE_RANK, type ApiTokenRow, type OperatorStore, type Role } from '../store/types.js';

const TOKEN_RE = /^sop_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export function isRole(v: unknown): v is Role {
  return v === 'viewer' || v === 'operator' || v === 'admin';
}

export interface Principal {
  readonly tokenId: string;
  readonly name: string;
  readonly role: Role;
}

/** Creates a token; returns the only copy of its text. */
export async function createApiToken(store: OperatorStore, role: Role, name: string, now = Date.now()): Promise<{ token: string; row: ApiTokenRow }> {
  if (!isRole(role)) throw new OpError(OpErrorCode.badRequest, `role must be viewer, operator or admin`);
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const row: ApiTokenRow = { id, name, role, secretHash: sha256(Buffer.from(secret, 'utf8')), createdAt: now, lastUsedAt: null, revokedAt: null };
  await store.insertApiToken(row);
  return { token: `sop_${id}_${secret}`, row };
}

/** The principal of a bearer token, or ERR_OP_UNAUTHENTICATED (same message for every failure). */
export async function verifyApiToken(store: OperatorStore, token: string): Promise<Principal> {
  const refuse = (): never => {
    throw new OpError(OpErrorCode.unauthenticated, 'a valid bearer token is required (Authorization: Bearer sop_…)');
  };
  const m = TOKEN_RE.exec(token);
  if (!m) return refuse();
  const row = await store.apiTokenById(m[1]!);
  const presented = sha256(Buffer.from(m[2]!, 'utf8'));
  // Compare even when the id is unknown, against a dummy, so both paths do the same work.
  const expected = row?.secretHash ?? new Uint8Array(32);
  const same = timingSafeEqual(presented, expected);
  if (!row || !same || row.revokedAt !== null) return refuse();
  return { tokenId: row.id, name: row.name, role: row.role };
}

export function hasRole(p: Principal, needed: Role): boolean {
  return ROLE_RANK[p.role] >= ROLE_RANK[needed];
}
