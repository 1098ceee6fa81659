/**
 * operator/est/routes: the RFC 7030 resources the operator serves under /.well-known/est/ —
 *   GET /cacerts   the issuing CA as a certs-only CMS (what relying parties and devices trust);
 *   GET /csrattrs  what a CSR must carry: ecdsa-with-SHA256, a P-256 key, and a fresh operator-signed
 *                  challenge (est/challenge.ts) in challengePassword, for the card to attest over.
 *   POST /simpleenroll  zero-touch enrolment (Mode B): application/pkcs10, base64 DER, carrying the
 *                  challenge in challengePassword and the card's attestation in id-aa-evidence
 *                  (est/evidence.ts). Checks: the challenge's MAC and expiry (est/challenge.ts), the
 *                  evidence present, then EnrolmentService.completeEst (attestation chain to a trusted
 *                  manufacturer CA, statement over the challenge nonce, CSR key = attested key, CSR
 *                  self-signature, UID in a manifest and not terminated, key not bound elsewhere,
 *                  single use through the unique enrolment row). Answer: certs-only CMS (the issued
 *                  certificate, then the issuing CA), application/pkcs7-mime; smime-type=certs-only.
 *                  A CSR WITHOUT evidence is a client that is not a card: it needs an enrolment
 *                  credential (HTTP Basic, RFC 7030 §3.2.3; est/credentials.ts), else 401 with
 *                  WWW-Authenticate; its names are bounded by the credential's profile
 *                  (est/client-csr.ts, est/client-enrol.ts).
 *   POST /simplereenroll  renewal by TLS client authentication with the certificate being renewed
 *                  (the server asks every client for a certificate but requires none; here it is
 *                  required): same subject and SAN, the old certificate superseded
 *                  (est/client-enrol.ts). Card certificates are refused (ERR_OP_EST_CARD_CERTIFICATE).
 * Bodies are base64 (Content-Transfer-Encoding: base64, RFC 7030 §4.1.3); errors are text/plain with
 * a stable ERR_OP_… code on the first line: 400 for a request that is malformed, 401 for a missing
 * or bad credential, 403 for one that is refused, 415 for another media type, 503 when too many
 * password checks are in flight. The GET resources are anonymous (RFC 7030 §4.1.1) and
 * stateless: a challenge costs a random draw and an HMAC, no write.
 * imports est/*, keys/secret-files, api/http, errors, operator (type only).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { readBody, send } from '../api/http.js';
import { OpError, OpErrorCode } from '../errors.js';
import { readSecretFile, writeSecretFile } from '../keys/secret-files.js';
import type { Operator } from '../operator.js';
import { checkChallenge, DEFAULT_CHALLENGE_TTL_MS, issueChallenge } from './challenge.js';
import { certsOnly, decodeBase64Body, derOid, derUtf8, encodeBase64Body, encodeCsrAttrs, EstMedia, EstOid } from './codec.js';
import { readCsrExtras } from './evidence.js';
import { reenroll, enrolWithCredential } from './client-enrol.js';
import { BASIC_REALM, checkEstCredential } from './credentials.js';

/** Largest /simpleenroll body (base64 of a CSR with its evidence and attestation chain). */
const ENROL_BODY_LIMIT = 64 * 1024;

/** Codes of a malformed request (400); every other refusal of an enrolment is 403. */
const BAD_REQUEST: ReadonlySet<string> = new Set([
  OpErrorCode.badRequest,
  OpErrorCode.csrInvalid,
  OpErrorCode.attestationFormat,
  OpErrorCode.estChallengeInvalid,
]);

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
  send(res, { status, raw: { type: 'text/plain; charset=utf-8', data: `${code}: ${message}\n` }, headers });
}

function base64(res: ServerResponse, type: string, der: Uint8Array): void {
  send(res, { status: 200, raw: { type, data: encodeBase64Body(der) }, headers: { 'content-transfer-encoding': 'base64' } });
}

/** The handler to mount at EST_PREFIX on the operator's HTTPS server. */
export function estHandler(op: Operator, o: EstOptions = {}): (req: IncomingMessage, res: ServerResponse) => void {
  const key = estChallengeKey(op.paths.keysDir);
  const ttl = o.challengeTtlMs ?? DEFAULT_CHALLENGE_TTL_MS;
  return (req, res) => {
    const path = new URL(req.url ?? '/', 'https://operator.invalid').pathname;
    // An optional CA label (/.well-known/est/<label>/cacerts, RFC 7030 §3.2.2) is not offered.
    const name = path.slice(EST_PREFIX.length);
    const method = req.method ?? 'GET';
    if (name === 'simpleenroll' || name === 'simplereenroll') {
      if (method !== 'POST') {
        req.resume();
        plain(res, 405, OpErrorCode.methodNotAllowed, `${method} ${path}: only POST`, { allow: 'POST' });
        return;
      }
      (name === 'simpleenroll' ? simpleEnroll(op, key, req, res) : simpleReenroll(op, req, res)).catch((e: unknown) => {
        const code = e instanceof OpError ? e.code : OpErrorCode.internal;
        const status = statusOf(code);
        const headers: Record<string, string> = {};
        if (status === 401) headers['www-authenticate'] = `Basic realm="${BASIC_REALM}", charset="UTF-8"`;
        if (status === 503) headers['retry-after'] = '1';
        if (!res.headersSent) plain(res, status, code, e instanceof OpError ? e.message : 'internal error', headers);
        else res.destroy();
      });
      return;
    }
    req.resume(); // no body is read by the other resources
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

function statusOf(code: string): number {
  if (code === OpErrorCode.internal) return 500;
  if (code === OpErrorCode.bodyTooLarge) return 413;
  if (code === OpErrorCode.requestTimeout) return 408;
  if (code === OpErrorCode.estCredential) return 401;
  if (code === OpErrorCode.estBusy) return 503;
  return BAD_REQUEST.has(code) ? 400 : 403;
}

/** The body of a POST as a DER PKCS#10, or null when the media type is not application/pkcs10 (415 answered). */
async function readCsr(req: IncomingMessage, res: ServerResponse): Promise<Uint8Array | null> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== EstMedia.pkcs10) {
    req.resume();
    plain(res, 415, OpErrorCode.unsupportedMediaType, `Content-Type ${type || '(none)'}: ${EstMedia.pkcs10} expected`);
    return null;
  }
  const body = await readBody(req, ENROL_BODY_LIMIT);
  try {
    return decodeBase64Body(body.toString('latin1'), ENROL_BODY_LIMIT);
  } catch (e) {
    throw new OpError(OpErrorCode.badRequest, `the body is not base64 DER: ${(e as Error).message}`);
  }
}

/** POST /simplereenroll (see the header). */
async function simpleReenroll(op: Operator, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const csrDer = await readCsr(req, res);
  if (!csrDer) return;
  const peer = (req.socket as TLSSocket).getPeerX509Certificate?.();
  const result = await reenroll(op, peer ? new Uint8Array(peer.raw) : null, csrDer);
  base64(res, EstMedia.certsOnly, certsOnly(result.chainDer));
}

/** POST /simpleenroll (see the header): answers the certificate, or throws the refusal. */
async function simpleEnroll(op: Operator, key: Uint8Array, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const csrDer = await readCsr(req, res);
  if (!csrDer) return;
  const extras = readCsrExtras(csrDer);
  if (!extras.evidence) {
    // not a card: an enrolment credential is the authentication (a challengePassword is not needed)
    const credential = await checkEstCredential(op.store, req.headers['authorization'], op.now());
    const result = await enrolWithCredential(op, credential, csrDer);
    base64(res, EstMedia.certsOnly, certsOnly(result.chainDer));
    return;
  }
  if (extras.challenge === undefined) throw new OpError(OpErrorCode.estChallengeInvalid, 'the CSR carries no challengePassword (GET /csrattrs first)');
  const c = checkChallenge(key, extras.challenge, op.now());
  if (!c.ok) {
    if (c.why === 'malformed') throw new OpError(OpErrorCode.estChallengeInvalid, 'the challengePassword is not an operator challenge');
    if (c.why === 'mac') throw new OpError(OpErrorCode.estChallengeForged, 'the challenge was not issued by this operator');
    throw new OpError(OpErrorCode.nonceExpired, 'the challenge expired');
  }
  const result = await op.enrolment.completeEst({ challengeNonce: c.nonce, challengeExpiresAt: c.expiresAt, evidence: extras.evidence, csrDer, actor: 'est' });
  base64(res, EstMedia.certsOnly, certsOnly(result.chainDer));
}
