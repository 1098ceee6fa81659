/**
 * operator/store/enrol-reads: the enrolment's two per-request reads for many enrolments at once
 * (issue #17, enrolments/s) — cards by UID and enrolments by nonce hash, one statement for a batch,
 * each key answered with its row or null (duplicates allowed). Plain reads outside any transaction,
 * as the single-key reads they batch (SqlStore.cardByUid / enrolmentByNonceHash); both columns are
 * UNIQUE. SQLite: `SELECT … IN (?, …)`; PostgreSQL: `= ANY(?::bytea[])`, one array parameter, a fixed
 * text sent as a named prepared statement (parsed and planned once per connection). The columns are
 * listed (no `*`): a prepared statement's result type must not change under it when another node
 * migrates. `cardsAndEnrolments`: both for many enrolments in ONE statement on PostgreSQL (unnest of
 * two arrays, each card and enrolment left-joined by its unique key, in order; one round trip where
 * there were two), the two statements above on SQLite (in-process: nothing to save). imports store/driver.
 */
import type { Dialect, SqlConn, SqlRow } from './driver.js';

const hex = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('hex');

const COLUMNS = {
  card: 'id, uid, batch_id, attest_cert_der, attest_spki_sha256, lifecycle, kvn, transport_key_id, seq_counter, labels, profile, host_id, last_seen_at, deny_list_number, time_anchor_counter, created_at, updated_at, attest_key_spki, attest_anchor_sha256, attest_valid_from, attest_valid_to',
  enrolment: 'id, card_id, job_id, mode, nonce_hash, status, error_code, expires_at, started_at, finished_at',
} as const;

async function byUniqueBytes(c: SqlConn, d: Dialect, table: 'card' | 'enrolment', column: 'uid' | 'nonce_hash', keys: readonly Uint8Array[]): Promise<(SqlRow | null)[]> {
  if (keys.length === 0) return [];
  const distinct = [...new Map(keys.map((k) => [hex(k), k])).values()];
  const rows =
    d.name === 'postgres'
      ? await c.all(`SELECT ${COLUMNS[table]} FROM ${table} WHERE ${column} = ANY(?::bytea[])`, [distinct], { name: `setls_enrol_read_${table}_v2` })
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

/** One completion's keys: its card's UID and the SHA-256 of the nonce it attested. */
export interface CardAndEnrolmentKey {
  readonly uid: Uint8Array;
  readonly nonceHash: Uint8Array;
}

const prefixed = (p: string, cols: string): string =>
  cols
    .split(', ')
    .map((c) => `${p}.${c} AS ${p}_${c}`)
    .join(', ');

const BOTH_SQL = `SELECT ${prefixed('c', COLUMNS.card)}, ${prefixed('e', COLUMNS.enrolment)}
 FROM unnest(?::bytea[], ?::bytea[]) WITH ORDINALITY AS v(uid, nonce_hash, ord)
 LEFT JOIN card c ON c.uid = v.uid LEFT JOIN enrolment e ON e.nonce_hash = v.nonce_hash
 ORDER BY v.ord`;

function unprefixed(r: SqlRow, p: 'c' | 'e', table: 'card' | 'enrolment'): SqlRow | null {
  if (r[`${p}_id`] === null || r[`${p}_id`] === undefined) return null;
  const out: { [k: string]: SqlRow[string] } = {};
  for (const c of COLUMNS[table].split(', ')) out[c] = r[`${p}_${c}`] ?? null;
  return out;
}

/** For each key, in order: the card of its UID and the enrolment of its nonce hash (each null when none). */
export async function cardsAndEnrolments(c: SqlConn, d: Dialect, keys: readonly CardAndEnrolmentKey[]): Promise<{ card: SqlRow | null; enrolment: SqlRow | null }[]> {
  if (keys.length === 0) return [];
  if (d.name !== 'postgres') {
    const cards = await cardsByUids(c, d, keys.map((k) => k.uid));
    const enrolments = await enrolmentsByNonceHashes(c, d, keys.map((k) => k.nonceHash));
    return keys.map((_, i) => ({ card: cards[i]!, enrolment: enrolments[i]! }));
  }
  const rows = await c.all(BOTH_SQL, [keys.map((k) => k.uid), keys.map((k) => k.nonceHash)], { name: 'setls_enrol_read_both_v2' });
  if (rows.length !== keys.length) throw new Error(`read answered ${rows.length} rows for ${keys.length} keys`);
  return rows.map((r) => ({ card: unprefixed(r, 'c', 'card'), enrolment: unprefixed(r, 'e', 'enrolment') }));
}
