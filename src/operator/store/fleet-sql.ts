/**
 * operator/store/fleet-sql: the console's fleet query (issue #16) — cards by lifecycle, label and
 * UID prefix in UID order with keyset pagination. A UID prefix is a range on the `uid` column
 * (`uid >= low AND uid < high`, bytes compare as unsigned on SQLite and PostgreSQL), so with or
 * without a lifecycle it walks an index (`card.uid` unique, `card_lifecycle_uid`) and never scans
 * the registry. A label filter reads the `labels` JSON from the (uid, labels) index (migration 7):
 * a text match on the key first (cheap), the JSON field test only on the rows that pass it.
 * imports store/driver, store/types, store/label-filter.
 */
import type { SqlConn, SqlRow, SqlValue } from './driver.js';
import type { CardLifecycle } from './types.js';
import { labelTerm, type JsonFieldDialect } from './label-filter.js';

export interface FleetFilter {
  readonly lifecycle?: CardLifecycle;
  /** `key` (label present) or `key=value`. */
  readonly label?: string;
  /** Lower-case hex, 1..64 digits (an odd count is a prefix on the half byte). */
  readonly uidPrefix?: string;
}

/** The UID range of a hex prefix: [low, high) — high null when the prefix is all f. */
export function uidPrefixRange(prefix: string): { low: Uint8Array; high: Uint8Array | null } {
  if (!/^[0-9a-f]{1,64}$/.test(prefix)) throw new RangeError('uid prefix must be lower-case hex');
  const lowHex = prefix.length % 2 === 0 ? prefix : `${prefix}0`;
  const highHex = prefix.length % 2 === 0 ? prefix : `${prefix}f`;
  const low = Uint8Array.from(Buffer.from(lowHex, 'hex'));
  const high = Uint8Array.from(Buffer.from(highHex, 'hex'));
  // The first byte string after every string starting with `high`: increment it, dropping trailing ff.
  let end = high.length;
  while (end > 0 && high[end - 1] === 0xff) end--;
  if (end === 0) return { low, high: null };
  const next = high.slice(0, end);
  next[end - 1]! += 1;
  return { low, high: next };
}

export type FleetDialect = JsonFieldDialect;

/** One page of card rows (raw; the caller maps them), at most `limit`, after the UID `after`. */
export async function fleetPage(c: SqlConn, sql: FleetDialect, filter: FleetFilter, after: Uint8Array | null, limit: number): Promise<SqlRow[]> {
  const where: string[] = [];
  const params: SqlValue[] = [];
  // With a label, the conditions run in a subquery over `f` that only needs (uid, labels,
  // lifecycle): SQLite scans the narrow covering index card_uid_labels (migration 7) instead of the
  // card rows (10⁵ cards, a rare label: 560 → 15 ms), and reads whole rows for the page only.
  const t = filter.label ? 'f' : 'card';
  if (filter.lifecycle) {
    where.push(`${t}.lifecycle = ?`);
    params.push(filter.lifecycle);
  }
  if (filter.uidPrefix) {
    const { low, high } = uidPrefixRange(filter.uidPrefix);
    where.push(`${t}.uid >= ?`);
    params.push(low);
    if (high) {
      where.push(`${t}.uid < ?`);
      params.push(high);
    }
  }
  if (filter.label) {
    const eq = filter.label.indexOf('=');
    const key = eq < 0 ? filter.label : filter.label.slice(0, eq);
    // a cheap superset test first (the key's JSON text is in the column's text), the JSON field only
    // on the rows that pass it. Keys are [A-Za-z0-9_.-]: nothing to escape; '_' only widens LIKE.
    where.push(`CAST(f.labels AS TEXT) LIKE ?`);
    params.push(`%${JSON.stringify(key)}%`);
    where.push(labelTerm(sql, 'f.labels', filter.label, params));
  }
  if (after) {
    where.push(`${t}.uid > ?`);
    params.push(after);
  }
  params.push(limit);
  const cond = where.length ? `WHERE ${where.join(' AND ')}` : '';
  return filter.label
    ? c.all(`SELECT * FROM card WHERE card.uid IN (SELECT f.uid FROM card f ${cond} ORDER BY f.uid LIMIT ?) ORDER BY card.uid`, params)
    : c.all(`SELECT * FROM card ${cond} ORDER BY card.uid LIMIT ?`, params);
}
