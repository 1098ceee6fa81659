/**
 * operator/store/enrol-reads: the enrolment's two per-request reads for many enrolments at once
 * (issue #17, enrolments/s) — cards by UID and enrolments by nonce hash, one statement for a batch,
 * each key answered with its row or null (duplicates allowed). Plain reads outside any transaction,
 * as the single-key reads they batch (SqlStore.cardByUid / enrolmentByNonceHash); both columns are
 * UNIQUE. SQLite: `SELECT … IN (?, …)`; PostgreSQL: `= ANY(?::bytea[])`, one array parameter, a fixed
 * text sent as a named prepared statement (parsed and planned once per connection). The columns are
 * listed (no `*`): a prepared statement's result type must not change under it when another node
 * migrates. imports store/driver.
 */
import type { Dialect, SqlConn, SqlRow } from './driver.js';

const hex = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('hex');

const COLUMNS = {
  card: 'id, uid, batch_id, attest_cert_der, attest_spki_sha256, lifecycle, kvn, transport_key_id, seq_counter, labels, profile, host_id, last_seen_at, deny_list_number, time_anchor_counter, created_at, updated_at',
  enrolment: 'id, card_id, job_id, mode, nonce_hash, status, error_code, expires_at, started_at, finished_at',
} as const;

async function byUniqueBytes(c: SqlConn, d: Dialect, table: 'card' | 'enrolment', column: 'uid' | 'nonce_hash', keys: readonly Uint8Array[]): Promise<(SqlRow | null)[]> {
  if (keys.length === 0) return [];
  const distinct = [...new Map(keys.map((k) => [hex(k), k])).values()];
  const rows =
    d.name === 'postgres'
      ? await c.all(`SELECT ${COLUMNS[table]} FROM ${table} WHERE ${column} = ANY(?::bytea[])`, [distinct], { name: `setls_enrol_read_${table}_v1` })
      : await c.all(`SELECT ${COLUMNS[table]} FROM ${table} WHERE ${column} IN (${distinct.map(() => '?').join(', ')})`, distinct);
  const found = new Map(rows.map((r) => [hex(r[column] as Uint8Array), r]));
  return keys.map((k) => found.get(hex(k)) ?? null);
}

/** The cards of `uids` (null: no such card), in order. */
export function cardsByUids(c: SqlConn, d: Dialect, uids: readonly Uint8Array[]): Promise<(SqlRow | null)[]> {
  return byUniqueBytes(c, d, 'card', 'uid', uids);
}

/** The enrolments of `hashes` (SHA-256 of their nonces; null: none), in order. */
export function enrolmentsByNonceHashes(c: SqlConn, d: Dialect, hashes: readonly Uint8Array[]): Promise<(SqlRow | null)[]> {
  return byUniqueBytes(c, d, 'enrolment', 'nonce_hash', hashes);
}
