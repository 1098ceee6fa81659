/**
 * operator/api/est-routes: the REST routes of EST enrolment credentials and of the certificates
 * issued to EST clients that are not cards (docs/est.md):
 *   POST /v1/est/credentials                 admin: create; the answer holds the password, once
 *   GET  /v1/est/credentials                 viewer: list (never a hash)
 *   POST /v1/est/credentials/<id>/revoke     admin
 *   GET  /v1/est/certificates[?limit&cursor] viewer: newest first
 *   GET  /v1/est/certificates/<serial>       viewer: with its PEM
 *   POST /v1/est/certificates/<serial>/revoke  operator: revoked, a new CRL published at once
 * Creating a credential is not idempotent-replayable on purpose: a stored response would hold the
 * password. imports api/http, api/routes (types), est/credentials, est/client-csr, pki/x509,
 * errors, operator (type only), bytes/.
 */
import { fromHex, toHex } from '../../bytes/index.js';
import { OpError, OpErrorCode } from '../errors.js';
import { createEstCredential } from '../est/credentials.js';
import { makeProfile } from '../est/client-csr.js';
import type { Operator } from '../operator.js';
import { toPem } from '../pki/x509.js';
import type { EstCertificateRow, EstCredentialRow, JsonObject } from '../store/types.js';
import { queryInt } from './http.js';
import type { Route } from './routes.js';

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

export function credentialView(c: EstCredentialRow): JsonObject {
  return {
    id: c.id,
    name: c.name,
    usesLeft: c.usesLeft,
    expiresAt: iso(c.expiresAt),
    profile: c.profile,
    createdBy: c.createdBy,
    createdAt: iso(c.createdAt),
    lastUsedAt: iso(c.lastUsedAt),
    revokedAt: iso(c.revokedAt),
  };
}

export function estCertificateView(c: EstCertificateRow, withPem = false): JsonObject {
  return {
    serial: toHex(c.serial),
    subject: c.subject,
    san: c.san,
    alg: c.alg,
    credential: c.credentialId,
    replaces: c.replaces ? toHex(c.replaces) : null,
    status: c.status,
    notBefore: iso(c.notBefore),
    notAfter: iso(c.notAfter),
    revokedAt: iso(c.revokedAt),
    reason: c.reason,
    createdAt: iso(c.createdAt),
    ...(withPem ? { pem: toPem(c.der, 'CERTIFICATE') } : {}),
  };
}

function strings(body: JsonObject, key: string): string[] | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string') || v.length > 64) throw new OpError(OpErrorCode.badRequest, `${key} must be a list of at most 64 strings`);
  return v as string[];
}

function serialParam(s: string): Uint8Array {
  const hex = s.replace(/:/g, '').toLowerCase();
  if (hex.length % 2 !== 0 || hex.length === 0) throw new OpError(OpErrorCode.badRequest, `'${s}' is not a certificate serial (hex)`);
  return fromHex(hex);
}

const CREDENTIAL_KEYS = new Set(['name', 'uses', 'expiresAt', 'cn', 'dns', 'ip', 'days']);

export function estRoutes(op: Operator): Route[] {
  const store = op.store;
  return [
    {
      method: 'POST',
      pattern: /^\/v1\/est\/credentials$/,
      name: 'est.credentials.create',
      role: 'admin',
      handler: async (r) => {
        for (const k of Object.keys(r.body)) if (!CREDENTIAL_KEYS.has(k)) throw new OpError(OpErrorCode.badRequest, `unknown parameter '${k}' (allowed: ${[...CREDENTIAL_KEYS].join(', ')})`);
        const name = r.body['name'];
        if (typeof name !== 'string' || name.length < 1 || name.length > 128) throw new OpError(OpErrorCode.badRequest, 'name must be a string of 1–128 characters');
        const uses = r.body['uses'] ?? 1;
        if (typeof uses !== 'number') throw new OpError(OpErrorCode.badRequest, 'uses must be a number');
        const now = op.now();
        const exp = r.body['expiresAt'];
        const expiresAt = exp === undefined ? now + 7 * 86_400_000 : typeof exp === 'string' ? Date.parse(exp) : NaN;
        if (!Number.isFinite(expiresAt)) throw new OpError(OpErrorCode.badRequest, 'expiresAt must be an ISO time');
        const days = r.body['days'];
        if (days !== undefined && typeof days !== 'number') throw new OpError(OpErrorCode.badRequest, 'days must be a number');
        const profile = makeProfile({ cn: strings(r.body, 'cn'), dns: strings(r.body, 'dns'), ip: strings(r.body, 'ip'), days: days ?? null });
        const { row, password } = await createEstCredential(store, { name, uses, expiresAt, profile, createdBy: r.principal!.name, now });
        await store.addEvent({ at: now, actor: r.principal!.name, kind: 'est.credential.created', cardId: null, subject: row.id, details: { name, uses, expiresAt: iso(expiresAt) } });
        return { status: 201, body: { credential: credentialView(row), username: row.id, password }, headers: { 'cache-control': 'no-store' } };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/est\/credentials$/,
      name: 'est.credentials.list',
      role: 'viewer',
      handler: async () => ({ status: 200, body: { items: (await store.listEstCredentials()).map(credentialView) } }),
    },
    {
      method: 'POST',
      pattern: /^\/v1\/est\/credentials\/(estc-[0-9a-f]{16})\/revoke$/,
      name: 'est.credentials.revoke',
      role: 'admin',
      handler: async (r) => {
        const id = r.params[0]!;
        const now = op.now();
        if (!(await store.estCredentialById(id))) throw new OpError(OpErrorCode.unknownCredential, `no enrolment credential ${id}`);
        if (await store.revokeEstCredential(id, now)) {
          await store.addEvent({ at: now, actor: r.principal!.name, kind: 'est.credential.revoked', cardId: null, subject: id, details: {} });
        }
        return { status: 200, body: { credential: credentialView((await store.estCredentialById(id))!) } };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/est\/certificates$/,
      name: 'est.certificates.list',
      role: 'viewer',
      handler: async (r) => {
        const limit = queryInt(r.query, 'limit', 1, 500, 100);
        const cursor = r.query.get('cursor');
        let after: { createdAt: number; serial: Uint8Array } | null = null;
        if (cursor) {
          const m = /^(\d{1,15})\.([0-9a-f]{2,64})$/.exec(cursor);
          if (!m || m[2]!.length % 2 !== 0) throw new OpError(OpErrorCode.badCursor, 'invalid cursor');
          after = { createdAt: Number(m[1]), serial: fromHex(m[2]!) };
        }
        const rows = await store.listEstCertificates(after, limit + 1);
        const page = rows.slice(0, limit);
        const last = page[page.length - 1];
        return { status: 200, body: { items: page.map((c) => estCertificateView(c)), nextCursor: rows.length > limit && last ? `${last.createdAt}.${toHex(last.serial)}` : null } };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/est\/certificates\/([0-9a-fA-F:]{2,64})$/,
      name: 'est.certificates.get',
      role: 'viewer',
      handler: async (r) => {
        const serial = serialParam(r.params[0]!);
        const c = await store.estCertificateBySerial(serial);
        if (!c) throw new OpError(OpErrorCode.unknownCertificate, `no EST certificate with serial ${toHex(serial)}`);
        return { status: 200, body: { certificate: estCertificateView(c, true) } };
      },
    },
    {
      method: 'POST',
      pattern: /^\/v1\/est\/certificates\/([0-9a-fA-F:]{2,64})\/revoke$/,
      name: 'est.certificates.revoke',
      role: 'operator',
      handler: async (r) => {
        const serial = serialParam(r.params[0]!);
        for (const k of Object.keys(r.body)) if (k !== 'reason') throw new OpError(OpErrorCode.badRequest, `unknown parameter '${k}' (allowed: reason)`);
        const reason = r.body['reason'] ?? 'unspecified';
        if (typeof reason !== 'string') throw new OpError(OpErrorCode.badRequest, 'reason must be a string');
        const { certificate, crl } = await op.revocation.revokeEst(serial, reason, r.principal!.name);
        return { status: 200, body: { certificate: estCertificateView(certificate), crl: { number: crl.number, thisUpdate: new Date(crl.thisUpdate).toISOString() } } };
      },
    },
  ];
}
