/**
 * operator/store/enrol-batch: the enrolment's two writes for many enrolments at once, in a few
 * statements whatever their number (issue #17, enrolments/s) — imports store/driver, store/types, store/rows.
 *
 * - `openEnrolments`: the nonce issue of N enrolments as ONE statement (INSERT … SELECT FROM a
 *   VALUES list CROSS JOIN card, RETURNING): a row is written only for a UID that is a card that is
 *   not terminated; the others get null (the caller reads the card to tell which refusal it is).
 *   CROSS JOIN: SQLite then keeps the VALUES list as the outer loop and looks each UID up in card's
 *   index — with statistics (ANALYZE) it otherwise scanned every card against an automatic index on
 *   the list (0.3 ms per nonce at 20 000 cards, growing with the fleet; enrol-batch-plan.test.ts).
 *   PostgreSQL plans it freely, the same way (a nested loop over the list, card by its uid index).
 * - `persistEnrolments`: the persist step of N enrolments inside the caller's transaction, as at most
 *   six statements: the identities already holding the keys (one SELECT), the single-use nonces
 *   consumed (one guarded UPDATE … RETURNING: an enrolment no longer open is a replay), then the new
 *   identities, the certificates, the cards' manifest → enrolled and the events (one multi-row
 *   statement each), for the enrolments that passed only. Each enrolment gets its own answer, the
 *   same one the sequential transactions would give; the two batch shapes whose answers would depend
 *   on the order inside the batch (one enrolment twice; one key no identity holds, from two cards) throw
 *   `EnrolmentBatchConflict` before anything is written, and the caller runs them one by one.
 * Uses RETURNING (SQLite ≥ 3.35: better-sqlite3 12 bundles 3.5x; PostgreSQL): the only statements of
 * the store that do, so the rest stays portable to older SQLite. The store runs these on SQLite; on
 * PostgreSQL it runs store/enrol-batch-pg.ts (each step ONE statement over arrays, the persist step
 * without BEGIN/COMMIT), which gives the same answers; the typed placeholders below keep these valid
 * SQL there too, but nothing runs them on PostgreSQL any more.
 */
import type { Dialect, SqlConn, SqlRow, SqlValue } from './driver.js';
import type { CertificateRow, EnrolmentRow, EventRow, IdentityRow } from './types.js';
import { identityRow } from './rows.js';

/** One nonce to issue: the enrolment row without its card, and the card's UID. */
export interface NewEnrolment {
  readonly uid: Uint8Array;
  readonly row: Omit<EnrolmentRow, 'cardId'>;
}

/** One enrolment's persist step (everything already checked and signed). */
export interface EnrolmentPersist {
  readonly enrolmentId: string;
  readonly cardId: string;
  /** The card was `manifest` when read: it becomes `enrolled`. */
  readonly cardWasManifest: boolean;
  readonly now: number;
  /** Inserted when no identity holds the key yet; else the card's existing identity is used. */
  readonly identity: IdentityRow;
  readonly certificate: Omit<CertificateRow, 'identityId'>;
  readonly event: Omit<EventRow, 'id'>;
}

export type EnrolmentPersistOutcome =
  | { readonly ok: true; readonly identity: IdentityRow; readonly certificate: CertificateRow }
  | { readonly ok: false; readonly refusal: 'nonce_replay' | 'key_bound_elsewhere' };

/** The batch cannot be decided exactly as one (see the header): run its enrolments one by one. */
export class EnrolmentBatchConflict extends Error {}

const json = (v: unknown): string => JSON.stringify(v);
const hex = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('hex');
const marks = (n: number): string => Array.from({ length: n }, () => '?').join(', ');

/** A typed placeholder: PostgreSQL cannot infer the type of a parameter inside VALUES. */
function p(d: Dialect, type: 'bytes' | 'int64' | 'text'): string {
  return d.name === 'postgres' ? `CAST(? AS ${d.types[type]})` : '?';
}

export async function openEnrolments(c: SqlConn, d: Dialect, items: readonly NewEnrolment[]): Promise<(EnrolmentRow | null)[]> {
  if (items.length === 0) return [];
  const row = `(${p(d, 'text')}, ${p(d, 'bytes')}, ${p(d, 'text')}, ${p(d, 'text')}, ${p(d, 'bytes')}, ${p(d, 'int64')}, ${p(d, 'int64')})`;
  const params: SqlValue[] = [];
  for (const { uid, row: r } of items) params.push(r.id, uid, r.jobId, r.mode, r.nonceHash, r.expiresAt, r.startedAt);
  const rows = await c.all(
    `INSERT INTO enrolment (id, card_id, job_id, mode, nonce_hash, status, error_code, expires_at, started_at, finished_at)
     SELECT v.column1, card.id, v.column3, v.column4, v.column5, 'open', NULL, v.column6, v.column7, NULL
     FROM (VALUES ${items.map(() => row).join(', ')}) AS v CROSS JOIN card WHERE card.uid = v.column2 AND card.lifecycle <> 'terminated'
     RETURNING id, card_id`,
    params,
  );
  const cardOf = new Map(rows.map((r: SqlRow) => [r['id'] as string, r['card_id'] as string]));
  return items.map(({ row: r }) => {
    const cardId = cardOf.get(r.id);
    return cardId === undefined ? null : { ...r, cardId };
  });
}

/** Runs in the caller's transaction (a throw rolls it back: nothing of the batch is written). */
export async function persistEnrolments(c: SqlConn, d: Dialect, items: readonly EnrolmentPersist[]): Promise<EnrolmentPersistOutcome[]> {
  if (items.length === 0) return [];
  // Shapes whose answers depend on the order inside the batch: decided one by one by the caller.
  const ids = new Set<string>();
  for (const it of items) {
    if (ids.has(it.enrolmentId)) throw new EnrolmentBatchConflict('one enrolment twice in a batch');
    ids.add(it.enrolmentId);
  }

  const out: (EnrolmentPersistOutcome | undefined)[] = new Array(items.length);
  // 1. keys already bound: to another card → refused (its nonce stays open: the caller refuses it)
  const keys = [...new Set(items.map((it) => hex(it.identity.spkiSha256)))].map((k) => new Uint8Array(Buffer.from(k, 'hex')));
  const bound = new Map<string, IdentityRow>();
  for (const r of await c.all(`SELECT * FROM identity WHERE spki_sha256 IN (${marks(keys.length)})`, keys)) {
    const row = identityRow(r);
    bound.set(hex(row.spkiSha256), row);
  }
  // A key no identity holds yet, presented by two cards: which one gets it depends on the order.
  const cardOfNewKey = new Map<string, string>();
  for (const it of items) {
    const k = hex(it.identity.spkiSha256);
    if (bound.has(k)) continue;
    const other = cardOfNewKey.get(k);
    if (other !== undefined && other !== it.cardId) throw new EnrolmentBatchConflict('one new key from two cards in a batch');
    cardOfNewKey.set(k, it.cardId);
  }
  const live: number[] = [];
  items.forEach((it, i) => {
    const b = bound.get(hex(it.identity.spkiSha256));
    if (b && b.cardId !== it.cardId) out[i] = { ok: false, refusal: 'key_bound_elsewhere' };
    else live.push(i);
  });

  // 2. the single-use nonces: consumed now, or already used (a replay)
  if (live.length > 0) {
    const params: SqlValue[] = [];
    for (const i of live) params.push(items[i]!.enrolmentId, items[i]!.now);
    for (const i of live) params.push(items[i]!.enrolmentId);
    const done = new Set(
      (
        await c.all(
          `UPDATE enrolment SET status = 'succeeded', error_code = NULL,
             finished_at = CASE id ${live.map(() => `WHEN ${p(d, 'text')} THEN ${p(d, 'int64')}`).join(' ')} END
           WHERE status = 'open' AND id IN (${marks(live.length)}) RETURNING id`,
          params,
        )
      ).map((r) => r['id'] as string),
    );
    for (const i of live.splice(0)) {
      if (done.has(items[i]!.enrolmentId)) live.push(i);
      else out[i] = { ok: false, refusal: 'nonce_replay' };
    }
  }
  if (live.length === 0) return out as EnrolmentPersistOutcome[];

  // 3. identities (the card's existing one for its key, or the new one, once per key), certificates
  const newIdentities: IdentityRow[] = [];
  for (const i of live) {
    const it = items[i]!;
    const k = hex(it.identity.spkiSha256);
    let identity = bound.get(k);
    if (!identity) {
      identity = it.identity;
      bound.set(k, identity);
      newIdentities.push(identity);
    }
    out[i] = { ok: true, identity, certificate: { ...it.certificate, identityId: identity.id } };
  }
  // 3–5: new identities, certificates, manifest cards → enrolled, events: one statement each
  const writes: { sql: string; params: SqlValue[] }[] = [];
  if (newIdentities.length > 0) {
    const params: SqlValue[] = [];
    for (const r of newIdentities) {
      params.push(r.id, r.cardId, r.slot, r.alg, r.spkiDer, r.spkiSha256, r.state, r.attestedAt, r.createdAt, r.deleteAfter ?? null, r.updatedAt ?? null);
    }
    writes.push({
      sql: `INSERT INTO identity (id, card_id, slot, alg, spki_der, spki_sha256, state, attested_at, created_at, delete_after, updated_at) VALUES ${newIdentities.map(() => `(${marks(11)})`).join(', ')}`,
      params,
    });
  }
  const certs = live.map((i) => (out[i] as { certificate: CertificateRow }).certificate);
  const certParams: SqlValue[] = [];
  for (const r of certs) {
    certParams.push(r.serial, r.identityId, r.cardId, r.caId, r.jobId, r.enrolmentId, r.subject, json(r.san), r.notBefore, r.notAfter, r.der, r.status, r.revokedAt, r.reason, r.createdAt);
  }
  writes.push({
    sql: `INSERT INTO certificate (serial, identity_id, card_id, ca_id, job_id, enrolment_id, subject, san, not_before, not_after, der, status, revoked_at, reason, created_at)
     VALUES ${certs.map(() => `(${marks(15)})`).join(', ')}`,
    params: certParams,
  });

  // 4. cards read as manifest become enrolled (guarded: a card changed meanwhile keeps its state)
  const manifestCards = [...new Set(live.filter((i) => items[i]!.cardWasManifest).map((i) => items[i]!.cardId))];
  if (manifestCards.length > 0) {
    const now = Math.max(...live.map((i) => items[i]!.now));
    writes.push({ sql: `UPDATE card SET lifecycle = 'enrolled', updated_at = ? WHERE lifecycle = 'manifest' AND id IN (${marks(manifestCards.length)})`, params: [now, ...manifestCards] });
  }

  // 5. events, in batch order
  const evParams: SqlValue[] = [];
  for (const i of live) {
    const e = items[i]!.event;
    evParams.push(e.at, e.actor, e.kind, e.cardId, e.subject, json(e.details));
  }
  writes.push({ sql: `INSERT INTO event (at, actor, kind, card_id, subject, details) VALUES ${live.map(() => `(${marks(6)})`).join(', ')}`, params: evParams });

  for (const w of writes) await c.run(w.sql, w.params);
  return out as EnrolmentPersistOutcome[];
}
