/**
 * operator/store/expiring-cards: "cards whose certificate ends before T" as one index range —
 * the cards whose EARLIEST good certificate ends before T, soonest first, in (not_after, card id)
 * order with a keyset cursor on that pair. The range is the partial index
 * certificate_good_not_after_card (not_after, card_id) WHERE status = 'good' (migration 10), which
 * gives the order itself (no sort); a certificate is emitted only when no good certificate of the
 * same card sorts before it (by not_after, then serial) — one probe of certificate_good_card_not_after
 * (migration 6) per row — so a card with several good certificates appears once. Lifecycle and
 * label filters are a lookup of the row's card (by primary key) per row. A page costs its own rows (plus the rows the
 * card filters reject), whatever the registry size; listCards({ expiringBefore }) walks cards in
 * UID order and probes each one (≈ 50 / fraction expiring per page). imports store/driver,
 * store/sql-store (types), store/types (types), store/label-filter.
 */
import type { SqlConn, SqlRow, SqlValue } from './driver.js';
import type { DialectSql } from './sql-store.js';
import type { CardLifecycle } from './types.js';
import { labelTerm } from './label-filter.js';

export interface ExpiringCardsFilter {
  /** Cards whose earliest good certificate ends strictly before this time (ms). */
  readonly before: number;
  readonly lifecycle?: CardLifecycle;
  /** `key` (label present) or `key=value`. */
  readonly label?: string;
}

/** The position after which the next page starts (the last row of the previous page). */
export interface ExpiringCardsCursor {
  readonly notAfter: number;
  readonly cardId: string;
}

/** One row: the card row as stored, and its earliest good certificate's not_after. */
export interface ExpiringCardRow {
  readonly row: SqlRow;
  readonly notAfter: number;
}

export async function listExpiringCards(c: SqlConn, sql: DialectSql, f: ExpiringCardsFilter, after: ExpiringCardsCursor | null, limit: number): Promise<ExpiringCardRow[]> {
  const where: string[] = ["x.status = 'good'", 'x.not_after < ?'];
  const params: SqlValue[] = [f.before];
  if (after) {
    // the first term is the index range's lower bound; the second skips the tie already served
    where.push('x.not_after >= ?', '(x.not_after > ? OR x.card_id > ?)');
    params.push(after.notAfter, after.notAfter, after.cardId);
  }
  // no good certificate of the same card sorts before this one: this is the card's earliest
  where.push(
    `NOT EXISTS (SELECT 1 FROM certificate e WHERE e.card_id = x.card_id AND e.status = 'good' AND e.not_after <= x.not_after AND (e.not_after < x.not_after OR e.serial < x.serial))`,
  );
  // the card filters as a per-row lookup of the certificate's card (a scalar subquery, which neither
  // store turns into a join): PostgreSQL has no statistics on a JSON key and, joining, chose to read
  // every card and sort the window (0.4 s at 10^5 cards); this way the index order is kept and the
  // walk stops after a page
  const cardTerms: string[] = [];
  if (f.lifecycle) {
    cardTerms.push('k.lifecycle = ?');
    params.push(f.lifecycle);
  }
  if (f.label) cardTerms.push(labelTerm(sql, 'k.labels', f.label, params));
  if (cardTerms.length) where.push(`(SELECT 1 FROM card k WHERE k.id = x.card_id AND ${cardTerms.join(' AND ')}) = 1`);
  params.push(limit);
  // CROSS JOIN: SQLite keeps the certificate range as the outer loop (PostgreSQL treats it as an inner join)
  const rows = await c.all(
    `SELECT card.*, x.not_after AS expiring_not_after FROM certificate x CROSS JOIN card WHERE card.id = x.card_id AND ${where.join(' AND ')} ORDER BY x.not_after, x.card_id LIMIT ?`,
    params,
  );
  return rows.map((r) => ({ row: r, notAfter: Number(r['expiring_not_after']) }));
}
