/**
 * operator/est/routes: the RFC 7030 resources the operator serves under /.well-known/est/ —
 *   GET /cacerts   the issuing CA as a certs-only CMS (what relying parties and devices trust);
 *   GET /csrattrs  what a CSR must carry: ecdsa-with-SHA256, a P-256 key, and a fresh operator-signed
 *                  challenge (est/challenge.ts) in challengePassword, for the card to attest over.
 * Bodies are base64 (Content-Transfer-Encoding: base64, RFC 7030 §4.1.3); errors are text/plain with
 * a stable ERR_OP_… code on the first line. Both resources are anonymous (RFC 7030 §4.1.1: /cacerts
 * needs no authentication) and stateless: a challenge costs a random draw and an HMAC, no write.
 * Enrolment (/simpleenroll, /simplereenroll) is not served yet: those paths answer 404 like any
 * other unknown resource. imports est/*, keys/secret-files, errors, operator (type only).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { OpErrorCode } from '../errors.js';
import { readSecretFile, writeSecretFile } from '../keys/secret-files.js';
import type { Operator } from '../operator.js';
import { DEFAULT_CHALLENGE_TTL_MS, issueChallenge } from './challenge.js';
import { certsOnly, derOid, derUtf8, encodeBase64Body, encodeCsrAttrs, EstMedia, EstOid } from './codec.js';

export const EST_PREFIX = '/.well-known/est/';
/** The challenge MAC key: 32 random bytes in the operator's keys folder (mode 0600). */
export const EST_CHALLENGE_KEY_FILE = 'est-challenge.key';

/** The challenge key, created on first use (a concurrent creator wins; the loser reads its key). */
export function estChallengeKey(keysDir: string): Uint8Array {
  const path = join(keysDir, EST_CHALLENGE_KEY_FILE);
  try {
    writeSecretFile(path, randomBytes(32));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const key = new Uint8Array(readSecretFile(path));
  if (key.length !== 32) throw new RangeError(`${path} must hold 32 bytes`);
  return key;
}

export interface EstOptions {
  /** Challenge lifetime (default 5 minutes). */
  readonly challengeTtlMs?: number;
}

function plain(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  const body = `${code}: ${message}\n`;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store', ...headers });
  res.end(body);
}

function base64(res: ServerResponse, type: string, der: Uint8Array): void {
  const body = encodeBase64Body(der);
  res.writeHead(200, { 'content-type': type, 'content-transfer-encoding': 'base64', 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store' });
  res.end(body);
}

/** The handler to mount at EST_PREFIX on the operator's HTTPS server. */
export function estHandler(op: Operator, o: EstOptions = {}): (req: IncomingMessage, res: ServerResponse) => void {
  const key = estChallengeKey(op.paths.keysDir);
  const ttl = o.challengeTtlMs ?? DEFAULT_CHALLENGE_TTL_MS;
  return (req, res) => {
    req.resume(); // no body is read by these resources
    const path = new URL(req.url ?? '/', 'https://operator.invalid').pathname;
    // An optional CA label (/.well-known/est/<label>/cacerts, RFC 7030 §3.2.2) is not offered.
    const name = path.slice(EST_PREFIX.length);
    const method = req.method ?? 'GET';
    if (name !== 'cacerts' && name !== 'csrattrs') {
      plain(res, 404, OpErrorCode.notFound, `no EST resource ${path}`);
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      plain(res, 405, OpErrorCode.methodNotAllowed, `${method} ${path}: only GET`, { allow: 'GET, HEAD' });
      return;
    }
    if (name === 'cacerts') {
      base64(res, EstMedia.pkcs7, certsOnly([op.ca.certDer]));
      return;
    }
    const challenge = issueChallenge(key, op.now(), ttl);
    base64(
      res,
      EstMedia.csrattrs,
      encodeCsrAttrs([
        { oid: EstOid.ecdsaWithSha256 },
        { type: EstOid.ecPublicKey, values: [derOid(EstOid.secp256r1)] },
        { type: EstOid.challengePassword, values: [derUtf8(challenge.text)] },
      ]),
    );
  };
}
