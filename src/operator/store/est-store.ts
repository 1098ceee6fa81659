/**
 * operator/store/est-store: the SQL of EST enrolment credentials (`est_credential`) and of the
 * certificates the issuing CA gave clients that are not cards (`est_certificate`), as functions
 * over a `SqlConn` that SqlStore delegates to. Portable statements (SQLite and PostgreSQL).
 * A credential's use is spent by ONE guarded UPDATE (uses_left > 0, not revoked, not expired), so
 * two concurrent enrolments can never both spend its last use, on either back end.
 * imports store/driver, store/types, store/rows.
 */
import type { SqlConn, SqlRow } from './driver.js';
import type { CertificateRow, CertificateStatus, EstCertificateRow, EstCredentialRow } from './types.js';
import { j as obj, n as num, nn as numOrNull } from './rows.js';


function credentialRow(r: SqlRow): EstCredentialRow {
  return {
    id: r['id'] as string,
    name: r['name'] as string,
    secretHash: r['secret_hash'] as Uint8Array,
    salt: r['salt'] as Uint8Array,
    kdf: r['kdf'] as string,
    usesLeft: num(r, 'uses_left'),
    expiresAt: num(r, 'expires_at'),
    profile: obj(r, 'profile'),
    createdBy: r['created_by'] as string,
    createdAt: num(r, 'created_at'),
    lastUsedAt: numOrNull(r, 'last_used_at'),
    revokedAt: numOrNull(r, 'revoked_at'),
  };
}

function certificateRow(r: SqlRow): EstCertificateRow {
  return {
    serial: r['serial'] as Uint8Array,
    caId: r['ca_id'] as string,
    credentialId: (r['credential_id'] ?? null) as string | null,
    replaces: (r['replaces'] ?? null) as Uint8Array | null,
    subject: r['subject'] as string,
    san: obj(r, 'san'),
    spkiSha256: r['spki_sha256'] as Uint8Array,
    alg: r['alg'] as string,
    notBefore: num(r, 'not_before'),
    notAfter: num(r, 'not_after'),
    der: r['der'] as Uint8Array,
    status: r['status'] as CertificateStatus,
    revokedAt: numOrNull(r, 'revoked_at'),
    reason: (r['reason'] ?? null) as string | null,
    createdAt: num(r, 'created_at'),
  };
}

export async function insertEstCredential(c: SqlConn, row: EstCredentialRow): Promise<void> {
  await c.run(
    `INSERT INTO est_credential (id, name, secret_hash, salt, kdf, uses_left, expires_at, profile, created_by, created_at, last_used_at, revoked_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [row.id, row.name, row.secretHash, row.salt, row.kdf, row.usesLeft, row.expiresAt, JSON.stringify(row.profile), row.createdBy, row.createdAt, row.lastUsedAt, row.revokedAt],
  );
}

export async function estCredentialById(c: SqlConn, id: string): Promise<EstCredentialRow | null> {
  const r = await c.get('SELECT * FROM est_credential WHERE id = ?', [id]);
  return r ? credentialRow(r) : null;
}

export async function listEstCredentials(c: SqlConn): Promise<EstCredentialRow[]> {
  return (await c.all('SELECT * FROM est_credential ORDER BY created_at, id')).map(credentialRow);
}

export async function revokeEstCredential(c: SqlConn, id: string, now: number): Promise<boolean> {
  return (await c.run('UPDATE est_credential SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [now, id])).changes === 1;
}

export async function spendEstCredential(c: SqlConn, id: string, now: number): Promise<boolean> {
  const { changes } = await c.run(
    'UPDATE est_credential SET uses_left = uses_left - 1, last_used_at = ? WHERE id = ? AND uses_left > 0 AND revoked_at IS NULL AND expires_at > ?',
    [now, id, now],
  );
  return changes === 1;
}

export async function insertEstCertificate(c: SqlConn, row: EstCertificateRow): Promise<void> {
  await c.run(
    `INSERT INTO est_certificate (serial, ca_id, credential_id, replaces, subject, san, spki_sha256, alg, not_before, not_after, der, status, revoked_at, reason, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      row.serial,
      row.caId,
      row.credentialId,
      row.replaces,
      row.subject,
      JSON.stringify(row.san),
      row.spkiSha256,
      row.alg,
      row.notBefore,
      row.notAfter,
      row.der,
      row.status,
      row.revokedAt,
      row.reason,
      row.createdAt,
    ],
  );
}

export async function estCertificateBySerial(c: SqlConn, serial: Uint8Array): Promise<EstCertificateRow | null> {
  const r = await c.get('SELECT * FROM est_certificate WHERE serial = ?', [serial]);
  return r ? certificateRow(r) : null;
}

export async function listEstCertificates(c: SqlConn, after: { createdAt: number; serial: Uint8Array } | null, limit: number): Promise<EstCertificateRow[]> {
  const rows = after
    ? await c.all('SELECT * FROM est_certificate WHERE created_at < ? OR (created_at = ? AND serial < ?) ORDER BY created_at DESC, serial DESC LIMIT ?', [
        after.createdAt,
        after.createdAt,
        after.serial,
        limit,
      ])
    : await c.all('SELECT * FROM est_certificate ORDER BY created_at DESC, serial DESC LIMIT ?', [limit]);
  return rows.map(certificateRow);
}

export async function setEstCertificateStatus(c: SqlConn, serial: Uint8Array, status: 'revoked' | 'superseded', reason: string, now: number): Promise<boolean> {
  const { changes } = await c.run(`UPDATE est_certificate SET status = ?, revoked_at = ?, reason = ? WHERE serial = ? AND status = 'good'`, [status, now, reason, serial]);
  return changes === 1;
}

export async function revokedEstCertificates(c: SqlConn, caId: string, now: number): Promise<Pick<CertificateRow, 'serial' | 'revokedAt' | 'reason'>[]> {
  const rows = await c.all(`SELECT serial, revoked_at, reason FROM est_certificate WHERE ca_id = ? AND status = 'revoked' AND not_after > ? ORDER BY serial`, [caId, now]);
  return rows.map((r) => ({ serial: r['serial'] as Uint8Array, revokedAt: numOrNull(r, 'revoked_at'), reason: (r['reason'] ?? null) as string | null }));
}
