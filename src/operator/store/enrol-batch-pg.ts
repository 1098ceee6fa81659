/**
 * operator/store/enrol-batch-pg: the enrolment's batched statements on PostgreSQL as fixed-text,
 * named prepared statements over arrays (issue #17, enrolments/s, third round) — imports
 * store/driver, store/types, store/rows, store/enrol-batch (types).
 *
 * - `openEnrolmentsPg`: the nonce issue of N enrolments, one `INSERT … SELECT FROM unnest(arrays)
 *   CROSS JOIN card` (7 array parameters whatever N, instead of 7 × N placeholders).
 * - `persistEnrolmentsPg`: the whole persist step of N enrolments as ONE statement, hence one round
 *   trip and no BEGIN/COMMIT (a single statement is atomic): data-modifying CTEs over the batch's
 *   arrays — the identities already holding the keys (`bound`); the batch shape whose answers would
 *   depend on its order (a key no identity holds, from two cards: `conflict`, then nothing at all is
 *   written and `EnrolmentBatchConflict` is thrown); the single-use nonces consumed by a guarded
 *   `UPDATE enrolment … WHERE status = 'open' … RETURNING id` for the enrolments whose key is not
 *   bound to another card (`consumed`) — and every write below reads `consumed`, so an enrolment
 *   whose nonce another transaction used (the UPDATE waits for that row's lock, then re-checks
 *   `status = 'open'` at READ COMMITTED and skips it) writes nothing; then the new identities (one
 *   per new key, the first enrolment's), the certificates, the cards `manifest` → `enrolled` and the
 *   events in batch order. The foreign keys are checked at the end of the statement. The statement
 *   answers one row per enrolment: its nonce consumed or not, and the identity holding its key if
 *   one did. Each enrolment gets the answer its own transaction would give (as store/enrol-batch.ts).
 * A unique index hit by another node's concurrent write (the same key inserted meanwhile) fails the
 * statement as a whole: nothing of the batch is written and the caller replays it one by one.
 * The statement texts never change, so they are named (PgDriver `prepare`): parsed and planned once
 * per pooled connection. They list their columns (no `*`): a prepared statement's result type must
 * not change under it when another node migrates.
 */
import type { SqlConn, SqlRow } from './driver.js';
import type { EnrolmentRow, IdentityRow } from './types.js';
import { identityRow } from './rows.js';
import { EnrolmentBatchConflict, type EnrolmentPersist, type EnrolmentPersistOutcome, type NewEnrolment } from './enrol-batch.js';

const buf = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
const hex = (u: Uint8Array): string => buf(u).toString('hex');

const OPEN_SQL = `INSERT INTO enrolment (id, card_id, job_id, mode, nonce_hash, status, error_code, expires_at, started_at, finished_at)
 SELECT v.id, card.id, v.job_id, v.mode, v.nonce_hash, 'open', NULL, v.expires_at, v.started_at, NULL
 FROM unnest(?::text[], ?::bytea[], ?::text[], ?::text[], ?::bytea[], ?::bigint[], ?::bigint[]) AS v(id, uid, job_id, mode, nonce_hash, expires_at, started_at)
 CROSS JOIN card WHERE card.uid = v.uid AND card.lifecycle <> 'terminated'
 RETURNING id, card_id`;

export async function openEnrolmentsPg(c: SqlConn, items: readonly NewEnrolment[]): Promise<(EnrolmentRow | null)[]> {
  if (items.length === 0) return [];
  const rows = await c.all(
    OPEN_SQL,
    [
      items.map((i) => i.row.id),
      items.map((i) => i.uid),
      items.map((i) => i.row.jobId),
      items.map((i) => i.row.mode),
      items.map((i) => i.row.nonceHash),
      items.map((i) => i.row.expiresAt),
      items.map((i) => i.row.startedAt),
    ],
    { name: 'setls_enrol_open_v1' },
  );
  const cardOf = new Map(rows.map((r: SqlRow) => [r['id'] as string, r['card_id'] as string]));
  return items.map(({ row: r }) => {
    const cardId = cardOf.get(r.id);
    return cardId === undefined ? null : { ...r, cardId };
  });
}

const IDENTITY_COLUMNS = 'id, card_id, slot, alg, spki_der, spki_sha256, state, attested_at, created_at, delete_after, updated_at';

const PERSIST_SQL = `WITH v AS (
  SELECT * FROM unnest(
    ?::text[], ?::text[], ?::boolean[], ?::bigint[],
    ?::text[], ?::text[], ?::bigint[], ?::text[], ?::bytea[], ?::bytea[], ?::text[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[],
    ?::bytea[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::bigint[], ?::bytea[], ?::text[], ?::bigint[], ?::text[], ?::bigint[],
    ?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[]
  ) WITH ORDINALITY AS v(
    enrolment_id, card_id, was_manifest, now,
    i_id, i_card_id, i_slot, i_alg, i_spki_der, i_spki_sha256, i_state, i_attested_at, i_created_at, i_delete_after, i_updated_at,
    c_serial, c_card_id, c_ca_id, c_job_id, c_enrolment_id, c_subject, c_san, c_not_before, c_not_after, c_der, c_status, c_revoked_at, c_reason, c_created_at,
    e_at, e_actor, e_kind, e_card_id, e_subject, e_details, ord)
), bound AS (
  SELECT ${IDENTITY_COLUMNS} FROM identity WHERE spki_sha256 IN (SELECT i_spki_sha256 FROM v)
), conflict AS (
  SELECT 1 FROM v WHERE NOT EXISTS (SELECT 1 FROM bound WHERE bound.spki_sha256 = v.i_spki_sha256)
  GROUP BY v.i_spki_sha256 HAVING count(DISTINCT v.card_id) > 1
), consumed AS (
  UPDATE enrolment SET status = 'succeeded', error_code = NULL, finished_at = v.now
  FROM v LEFT JOIN bound ON bound.spki_sha256 = v.i_spki_sha256
  WHERE enrolment.id = v.enrolment_id AND enrolment.status = 'open'
    AND (bound.id IS NULL OR bound.card_id = v.card_id) AND NOT EXISTS (SELECT 1 FROM conflict)
  RETURNING enrolment.id
), live AS (
  SELECT v.*, bound.id AS bound_id FROM v JOIN consumed ON consumed.id = v.enrolment_id LEFT JOIN bound ON bound.spki_sha256 = v.i_spki_sha256
), new_identity AS (
  INSERT INTO identity (${IDENTITY_COLUMNS})
  SELECT DISTINCT ON (i_spki_sha256) i_id, i_card_id, i_slot, i_alg, i_spki_der, i_spki_sha256, i_state, i_attested_at, i_created_at, i_delete_after, i_updated_at
  FROM live WHERE bound_id IS NULL ORDER BY i_spki_sha256, ord
  RETURNING id, spki_sha256
), cert AS (
  INSERT INTO certificate (serial, identity_id, card_id, ca_id, job_id, enrolment_id, subject, san, not_before, not_after, der, status, revoked_at, reason, created_at)
  SELECT c_serial, COALESCE(live.bound_id, new_identity.id), c_card_id, c_ca_id, c_job_id, c_enrolment_id, c_subject, CAST(c_san AS JSONB), c_not_before, c_not_after, c_der, c_status, c_revoked_at, c_reason, c_created_at
  FROM live LEFT JOIN new_identity ON new_identity.spki_sha256 = live.i_spki_sha256
), enrolled AS (
  UPDATE card SET lifecycle = 'enrolled', updated_at = (SELECT max(now) FROM live)
  WHERE lifecycle = 'manifest' AND id IN (SELECT card_id FROM live WHERE was_manifest)
), ev AS (
  INSERT INTO event (at, actor, kind, card_id, subject, details)
  SELECT e_at, e_actor, e_kind, e_card_id, e_subject, CAST(e_details AS JSONB) FROM live ORDER BY ord
)
SELECT v.ord, consumed.id IS NOT NULL AS consumed, EXISTS (SELECT 1 FROM conflict) AS conflict,
  bound.id, bound.card_id, bound.slot, bound.alg, bound.spki_der, bound.spki_sha256, bound.state, bound.attested_at, bound.created_at, bound.delete_after, bound.updated_at
FROM v LEFT JOIN consumed ON consumed.id = v.enrolment_id LEFT JOIN bound ON bound.spki_sha256 = v.i_spki_sha256
ORDER BY v.ord`;

/** The whole persist step as one autocommitted statement (see the header). */
export async function persistEnrolmentsPg(c: SqlConn, items: readonly EnrolmentPersist[]): Promise<EnrolmentPersistOutcome[]> {
  if (items.length === 0) return [];
  const ids = new Set<string>();
  for (const it of items) {
    if (ids.has(it.enrolmentId)) throw new EnrolmentBatchConflict('one enrolment twice in a batch');
    ids.add(it.enrolmentId);
  }
  const col = <T>(f: (it: EnrolmentPersist) => T): T[] => items.map(f);
  const rows = await c.all(
    PERSIST_SQL,
    [
      col((it) => it.enrolmentId),
      col((it) => it.cardId),
      col((it) => it.cardWasManifest),
      col((it) => it.now),
      col((it) => it.identity.id),
      col((it) => it.identity.cardId),
      col((it) => it.identity.slot),
      col((it) => it.identity.alg),
      col((it) => it.identity.spkiDer),
      col((it) => it.identity.spkiSha256),
      col((it) => it.identity.state),
      col((it) => it.identity.attestedAt),
      col((it) => it.identity.createdAt),
      col((it) => it.identity.deleteAfter ?? null),
      col((it) => it.identity.updatedAt ?? null),
      col((it) => it.certificate.serial),
      col((it) => it.certificate.cardId),
      col((it) => it.certificate.caId),
      col((it) => it.certificate.jobId),
      col((it) => it.certificate.enrolmentId),
      col((it) => it.certificate.subject),
      col((it) => JSON.stringify(it.certificate.san)),
      col((it) => it.certificate.notBefore),
      col((it) => it.certificate.notAfter),
      col((it) => it.certificate.der),
      col((it) => it.certificate.status),
      col((it) => it.certificate.revokedAt),
      col((it) => it.certificate.reason),
      col((it) => it.certificate.createdAt),
      col((it) => it.event.at),
      col((it) => it.event.actor),
      col((it) => it.event.kind),
      col((it) => it.event.cardId),
      col((it) => it.event.subject),
      col((it) => JSON.stringify(it.event.details)),
    ],
    { name: 'setls_enrol_persist_v1' },
  );
  if (rows.length !== items.length) throw new Error(`persist answered ${rows.length} rows for ${items.length} enrolments`);
  if ((rows[0]!['conflict'] as unknown) === true) throw new EnrolmentBatchConflict('one new key from two cards in a batch');

  // The answers, as store/enrol-batch.ts gives them: the bound identity reused (or refused), else
  // the first consumed enrolment's identity for each new key.
  const held = new Map<string, IdentityRow>();
  for (const r of rows) if (r['id'] !== null) held.set(hex(r['spki_sha256'] as Uint8Array), identityRow(r));
  return items.map((it, i) => {
    const r = rows[i]!;
    const k = hex(it.identity.spkiSha256);
    const b = r['id'] !== null ? held.get(k)! : undefined;
    if (b && b.cardId !== it.cardId) return { ok: false, refusal: 'key_bound_elsewhere' } as const;
    if ((r['consumed'] as unknown) !== true) return { ok: false, refusal: 'nonce_replay' } as const;
    let identity = held.get(k);
    if (!identity) {
      identity = it.identity;
      held.set(k, identity);
    }
    return { ok: true, identity, certificate: { ...it.certificate, identityId: identity.id } } as const;
  });
}
