/**
 * operator/store/expiring: "which certificates end soon" as one index range — good certificates
 * with from ≤ not_after < before, in (not_after, serial) order, keyset-paginated. Served by the
 * index certificate_status_not_after (status, not_after) of migration 1: a page costs its own rows
 * whatever the registry size (bench/scale.ts, docs/operator-scale.md), where listCards' expiring
 * filter walks cards in UID order and probes each. imports store/driver.
 */
import type { SqlConn } from './driver.js';

export interface ExpiringCertificate {
  readonly serial: Uint8Array;
  readonly cardId: string;
  readonly notAfter: number;
}

/** The position after which the next page starts (the last row of the previous page). */
export interface ExpiringCursor {
  readonly notAfter: number;
  readonly serial: Uint8Array;
}

export async function listExpiringCertificates(c: SqlConn, from: number, before: number, after: ExpiringCursor | null, limit: number): Promise<ExpiringCertificate[]> {
  const params: (number | Uint8Array)[] = [from, before];
  let keyset = '';
  if (after) {
    keyset = ' AND (not_after > ? OR (not_after = ? AND serial > ?))';
    params.push(after.notAfter, after.notAfter, after.serial);
  }
  params.push(limit);
  const rows = await c.all(
    `SELECT serial, card_id, not_after FROM certificate WHERE status = 'good' AND not_after >= ? AND not_after < ?${keyset} ORDER BY not_after, serial LIMIT ?`,
    params,
  );
  return rows.map((r) => ({ serial: r['serial'] as Uint8Array, cardId: r['card_id'] as string, notAfter: Number(r['not_after']) }));
}
