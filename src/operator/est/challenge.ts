/**
 * operator/est/challenge: the challenge a /csrattrs answer carries (zero-touch enrolment, Mode B) —
 * 32 fresh random bytes the card signs in its attestation, an expiry, and the operator's HMAC over
 * both, so that any operator node can check a challenge it did not issue without a database read.
 * Single use is the caller's business: the enrolment row keyed by SHA-256(nonce) is unique in the
 * store, so a second enrolment with the same nonce fails there. imports node:crypto, bytes/.
 *
 * Text form (what travels in the challengePassword attribute, ≤ 127 bytes):
 *   "setls-est1." base64url(nonce 32) "." expiry (ms since the epoch, decimal) "." base64url(HMAC-SHA-256 16)
 * The MAC is HMAC-SHA-256(key, "setls-est1" ‖ 0x00 ‖ nonce ‖ expiry as 8 bytes big-endian), cut to
 * 16 bytes, compared in constant time.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { ctEqual } from '../../bytes/index.js';

export const CHALLENGE_PREFIX = 'setls-est1';
/** Five minutes: long enough for a card on real silicon to make a key, attest and sign a CSR. */
export const DEFAULT_CHALLENGE_TTL_MS = 5 * 60 * 1000;
const MAC_BYTES = 16;

export interface EstChallenge {
  /** The text for the challengePassword attribute. */
  readonly text: string;
  /** What the card must sign over (its AttestKey / CreateCSR nonce). */
  readonly nonce: Uint8Array;
  readonly expiresAt: number;
}

/** Why a challenge was refused; each maps to its own error code in the EST endpoint. */
export type ChallengeRefusal = 'malformed' | 'mac' | 'expired';

function mac(key: Uint8Array, nonce: Uint8Array, expiresAt: number): Uint8Array {
  const exp = Buffer.alloc(8);
  exp.writeBigUInt64BE(BigInt(expiresAt));
  const h = createHmac('sha256', key);
  h.update(CHALLENGE_PREFIX);
  h.update(Buffer.of(0));
  h.update(nonce);
  h.update(exp);
  return new Uint8Array(h.digest().subarray(0, MAC_BYTES));
}

/** A fresh challenge valid until now + ttl. The key must be at least 32 bytes. */
export function issueChallenge(key: Uint8Array, now: number, ttlMs = DEFAULT_CHALLENGE_TTL_MS): EstChallenge {
  if (key.length < 32) throw new RangeError('the challenge key must be at least 32 bytes');
  const nonce = new Uint8Array(randomBytes(32));
  const expiresAt = now + ttlMs;
  const text = [CHALLENGE_PREFIX, Buffer.from(nonce).toString('base64url'), String(expiresAt), Buffer.from(mac(key, nonce, expiresAt)).toString('base64url')].join('.');
  return { text, nonce, expiresAt };
}

/** The challenge's nonce when `text` is one this key issued and it has not expired; else why not. */
export function checkChallenge(key: Uint8Array, text: string, now: number): { ok: true; nonce: Uint8Array; expiresAt: number } | { ok: false; why: ChallengeRefusal } {
  const parts = text.split('.');
  if (parts.length !== 4 || parts[0] !== CHALLENGE_PREFIX) return { ok: false, why: 'malformed' };
  const [, n64, expText, mac64] = parts as [string, string, string, string];
  if (!/^[A-Za-z0-9_-]{43}$/.test(n64) || !/^[A-Za-z0-9_-]{22}$/.test(mac64) || !/^[1-9][0-9]{0,15}$/.test(expText)) return { ok: false, why: 'malformed' };
  const nonce = new Uint8Array(Buffer.from(n64, 'base64url'));
  const given = new Uint8Array(Buffer.from(mac64, 'base64url'));
  const expiresAt = Number(expText);
  // Canonical encodings only: the unused low bits of the last base64url character must be zero,
  // so that one challenge has exactly one text.
  const canonical = Buffer.from(nonce).toString('base64url') === n64 && Buffer.from(given).toString('base64url') === mac64;
  if (!canonical || nonce.length !== 32 || !Number.isSafeInteger(expiresAt)) return { ok: false, why: 'malformed' };
  if (given.length !== MAC_BYTES || !ctEqual(given, mac(key, nonce, expiresAt))) return { ok: false, why: 'mac' };
  if (now > expiresAt) return { ok: false, why: 'expired' };
  return { ok: true, nonce, expiresAt };
}
