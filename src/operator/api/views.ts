/**
 * operator/api/views: how registry rows appear in the REST API (JSON): hex UIDs and serials, ISO
 * times, hashes instead of keys; never a secret. imports store/types, pki/x509, jobs/runner.
 */
import { toHex } from '../../bytes/index.js';
import { reasonOf } from '../jobs/runner.js';
import { fingerprintHex, toPem } from '../pki/x509.js';
import type { CardRow, CertificateRow, IdentityRow, JobRow, JsonObject } from '../store/types.js';

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

export function cardView(c: CardRow): JsonObject {
  return {
    uid: toHex(c.uid),
    id: c.id,
    state: c.lifecycle,
    kvn: c.kvn.toString(16).padStart(2, '0'),
    labels: c.labels,
    profile: c.profile,
    batchId: c.batchId,
    attestationCertificateSha256: fingerprintHex(c.attestCertDer),
    createdAt: iso(c.createdAt),
    updatedAt: iso(c.updatedAt),
    lastSeenAt: iso(c.lastSeenAt),
  };
}

export function identityView(i: IdentityRow): JsonObject {
  return { id: i.id, slot: i.slot, alg: i.alg, spkiSha256: toHex(i.spkiSha256), state: i.state, attestedAt: iso(i.attestedAt), createdAt: iso(i.createdAt) };
}

export function certificateView(c: CertificateRow, uid: Uint8Array | null, withPem = false): JsonObject {
  return {
    serial: toHex(c.serial),
    card: uid ? toHex(uid) : null,
    identityId: c.identityId,
    status: c.status,
    subject: c.subject,
    san: c.san,
    notBefore: iso(c.notBefore),
    notAfter: iso(c.notAfter),
    revokedAt: iso(c.revokedAt),
    reason: c.reason,
    jobId: c.jobId,
    sha256: fingerprintHex(c.der),
    ...(withPem ? { pem: toPem(c.der, 'CERTIFICATE') } : {}),
  };
}

export function jobView(j: JobRow, uid: Uint8Array | null): JsonObject {
  return {
    id: j.id,
    card: uid ? toHex(uid) : null,
    kind: j.kind,
    params: j.params,
    status: j.status,
    reason: j.status === 'failed' || j.status === 'timed_out' ? reasonOf(j.errorCode) : null,
    attempt: j.attempt,
    maxAttempts: j.maxAttempts,
    errorCode: j.errorCode,
    errorMessage: j.errorMessage,
    result: j.result,
    progress: j.progress,
    createdBy: j.createdBy,
    createdAt: iso(j.createdAt),
    updatedAt: iso(j.updatedAt),
    startedAt: iso(j.startedAt),
    finishedAt: iso(j.finishedAt),
    deadlineAt: iso(j.deadlineAt),
  };
}
