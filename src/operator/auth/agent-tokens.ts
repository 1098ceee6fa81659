/**
 * operator/auth/agent-tokens: the bearer tokens device agents present to the relay endpoint
 * (`setls operator agent-token --host H`). One token per host id: `sat_<43 base64url>`; the store
 * keeps SHA-256 of it in the `host` row (never the token), so a database leak yields no token; a
 * new token for a host replaces the old one. The token only keeps strangers from using the relay:
 * trust in what agents relay comes from SCP03, not from this. imports store/types, errors, pki/x509.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { OpError, OpErrorCode } from '../errors.js';
import { sha256 } from '../pki/x509.js';
import type { OperatorStore } from '../store/types.js';

const HOST_ID = /^[A-Za-z0-9._-]{1,64}$/;
const TOKEN = /^sat_[A-Za-z0-9_-]{43}$/;

export function isAgentHostId(id: string): boolean {
  return HOST_ID.test(id);
}

/** Creates (or replaces) the token of host `hostId`; returns the only copy of its text. */
export async function createAgentToken(store: OperatorStore, hostId: string, now = Date.now(), name?: string): Promise<string> {
  if (!isAgentHostId(hostId)) throw new OpError(OpErrorCode.badRequest, `host id '${hostId.slice(0, 80)}' must be 1..64 of A-Z a-z 0-9 . _ -`);
  const token = `sat_${randomBytes(32).toString('base64url')}`;
  await store.putHostCredential({ id: hostId, name: name ?? hostId, credentialHash: sha256(Buffer.from(token, 'utf8')), createdAt: now });
  return token;
}

/** The host id the token belongs to when it is `claimedHostId`'s current token; undefined otherwise. */
export async function authenticateAgent(store: OperatorStore, token: string, claimedHostId: string): Promise<string | undefined> {
  if (!isAgentHostId(claimedHostId)) return undefined;
  const host = await store.hostById(claimedHostId);
  const presented = sha256(Buffer.from(token, 'utf8'));
  const expected = host?.credentialHash && host.credentialHash.length === 32 ? host.credentialHash : new Uint8Array(32);
  const same = timingSafeEqual(presented, expected);
  if (!host || !host.credentialHash || host.revokedAt !== null || !TOKEN.test(token) || !same) return undefined;
  return host.id;
}
