/**
 * operator/store/enrol-reads: the enrolment's two per-request reads for many enrolments at once
 * (issue #17, enrolments/s) — cards by UID and enrolments by nonce hash, one `SELECT … IN (…)` for a
 * batch, each key answered with its row or null (duplicates allowed). Plain reads outside any
 * transaction, as the single-key reads they batch (SqlStore.cardByUid / enrolmentByNonceHash); both
 * columns are UNIQUE. imports store/driver.
 */
import type { SqlConn, SqlRow } from './driver.js';

const hex = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('hex');

async function byUniqueBytes(c: SqlConn, table: 'card' | 'enrolment', column: 'uid' | 'nonce_hash', keys: readonly Uint8Array[]): Promise<(SqlRow | null)[]> {
  if (keys.length === 0) return [];
  const distinct = [...new Map(keys.map((k) => [hex(k), k])).values()];
  const rows = await c.all(`SELECT * FROM ${table} WHERE ${column} IN (${distinct.map(() => '?').join(', ')})`, distinct);
  const found = new Map(rows.map((r) => [hex(r[column] as Uint8Array), r]));
  return keys.map((k) => found.get(hex(k)) ?? null);
}

/** The cards of `uids` (null: no such card), in order. */
export function cardsByUids(c: SqlConn, uids: readonly Uint8Array[]): Promise<(SqlRow | null)[]> {
  return byUniqueBytes(c, 'card', 'uid', uids);
}

/** The enrolments of `hashes` (SHA-256 of their nonces; null: none), in order. */
export function enrolmentsByNonceHashes(c: SqlConn, hashes: readonly Uint8Array[]): Promise<(SqlRow | null)[]> {
  return byUniqueBytes(c, 'enrolment', 'nonce_hash', hashes);
}
