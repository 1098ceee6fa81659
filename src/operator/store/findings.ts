/**
 * operator/store/findings: the SQL of the audits (issue #16) — findings (one live finding per check
 * and subject, enforced by the partial unique index `finding_live`, so two operator nodes running
 * audits at once never open the same finding twice), the audit run lease, and the bounded fleet
 * queries the checks run. Portable SQL (SQLite 3.24+ and PostgreSQL), over one `SqlConn`; `SqlStore`
 * delegates to it. imports store/driver, store/types.
 *
 * recordFinding: UPDATE the live row; when there is none, INSERT … ON CONFLICT DO NOTHING (a
 * concurrent insert of the same (check, subject) on another node makes ours a no-op: PostgreSQL
 * waits for the other transaction and then does nothing), then UPDATE again.
 */
import type { SqlConn, SqlRow, SqlValue } from './driver.js';
import type {
  AuditCardRow,
  AuditCertRow,
  AuditJobRow,
  AuditLogSummaryRow,
  AuditSharedKeyRow,
  CardLifecycle,
  FindingFilter,
  FindingRecorded,
  FindingReport,
  FindingResolution,
  FindingRow,
  JobStatus,
  JsonObject,
} from './types.js';

const str = (r: SqlRow, k: string): string => r[k] as string;
const strn = (r: SqlRow, k: string): string | null => (r[k] ?? null) as string | null;
const num = (r: SqlRow, k: string): number => Number(r[k]);
const numn = (r: SqlRow, k: string): number | null => (r[k] === null || r[k] === undefined ? null : Number(r[k]));
const bytes = (r: SqlRow, k: string): Uint8Array => r[k] as Uint8Array;

const LIVE = `(status = 'open' OR suppressing = 1)`;

function findingRow(r: SqlRow): FindingRow {
  return {
    id: str(r, 'id'),
    check: str(r, 'check_name'),
    cardId: strn(r, 'card_id'),
    cardUid: (r['card_uid'] ?? null) as Uint8Array | null,
    subject: str(r, 'subject'),
    severity: str(r, 'severity') as FindingRow['severity'],
    status: str(r, 'status') as FindingRow['status'],
    detail: r['detail'] === null || r['detail'] === undefined ? {} : (JSON.parse(r['detail'] as string) as JsonObject),
    firstSeenAt: num(r, 'first_seen_at'),
    lastSeenAt: num(r, 'last_seen_at'),
    resolvedAt: numn(r, 'resolved_at'),
    resolution: strn(r, 'resolution') as FindingResolution | null,
    resolvedBy: strn(r, 'resolved_by'),
    suppressing: num(r, 'suppressing') === 1,
  };
}

const SELECT_FINDING = 'SELECT f.*, c.uid AS card_uid FROM finding f LEFT JOIN card c ON c.id = f.card_id';

function certRow(r: SqlRow): AuditCertRow {
  return {
    serial: bytes(r, 'serial'),
    cardId: str(r, 'card_id'),
    uid: bytes(r, 'uid'),
    identityId: str(r, 'identity_id'),
    slot: num(r, 'slot'),
    notAfter: num(r, 'not_after'),
    revokedAt: numn(r, 'revoked_at'),
    reason: strn(r, 'reason'),
    lifecycle: str(r, 'lifecycle') as CardLifecycle,
  };
}

function cardRow(r: SqlRow): AuditCardRow {
  return {
    cardId: str(r, 'id'),
    uid: bytes(r, 'uid'),
    lifecycle: str(r, 'lifecycle') as CardLifecycle,
    kvn: num(r, 'kvn'),
    lastSeenAt: numn(r, 'last_seen_at'),
    hostId: strn(r, 'host_id'),
    createdAt: num(r, 'created_at'),
    enrolledAt: numn(r, 'enrolled_at'),
  };
}

function jobRow(r: SqlRow): AuditJobRow {
  return {
    cardId: str(r, 'card_id'),
    uid: bytes(r, 'uid'),
    lifecycle: str(r, 'lifecycle') as CardLifecycle,
    jobId: str(r, 'id'),
    kind: str(r, 'kind'),
    status: str(r, 'status') as JobStatus,
    errorCode: strn(r, 'error_code'),
    errorMessage: strn(r, 'error_message'),
    createdAt: num(r, 'created_at'),
    finishedAt: numn(r, 'finished_at'),
  };
}

const ENROLLED_AT = '(SELECT MIN(x.created_at) FROM certificate x WHERE x.card_id = card.id)';

export class FindingsSql {
  constructor(private readonly c: SqlConn) {}

  async record(r: FindingReport, seenAt: number, newId: string): Promise<FindingRecorded> {
    const update = async (): Promise<FindingRecorded | null> => {
      const { changes } = await this.c.run(
        `UPDATE finding SET last_seen_at = ?, severity = ?, detail = ?, card_id = ? WHERE check_name = ? AND subject = ? AND ${LIVE}`,
        [seenAt, r.severity, JSON.stringify(r.detail), r.cardId, r.check, r.subject],
      );
      if (changes === 0) return null;
      const row = await this.c.get(`SELECT status FROM finding WHERE check_name = ? AND subject = ? AND ${LIVE}`, [r.check, r.subject]);
      return row && str(row, 'status') === 'open' ? 'seen' : 'suppressed';
    };
    const seen = await update();
    if (seen) return seen;
    const { changes } = await this.c.run(
      `INSERT INTO finding (id, check_name, card_id, subject, severity, status, detail, first_seen_at, last_seen_at, suppressing)
       VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, 0) ON CONFLICT DO NOTHING`,
      [newId, r.check, r.cardId, r.subject, r.severity, JSON.stringify(r.detail), seenAt, seenAt],
    );
    if (changes === 1) return 'new';
    return (await update()) ?? 'seen';
  }

  async resolveUnseen(check: string, seenSince: number, now: number): Promise<number> {
    const { changes } = await this.c.run(
      `UPDATE finding SET status = 'resolved', resolved_at = ?, resolution = 'auto', resolved_by = 'audit' WHERE check_name = ? AND status = 'open' AND last_seen_at < ?`,
      [now, check, seenSince],
    );
    await this.c.run('UPDATE finding SET suppressing = 0 WHERE check_name = ? AND suppressing = 1 AND last_seen_at < ?', [check, seenSince]);
    return changes;
  }

  async resolve(id: string, resolution: Exclude<FindingResolution, 'auto'>, by: string, now: number): Promise<boolean> {
    const { changes } = await this.c.run(
      `UPDATE finding SET status = 'resolved', resolved_at = ?, resolution = ?, resolved_by = ?, suppressing = ? WHERE id = ? AND status = 'open'`,
      [now, resolution, by, resolution === 'fixed' ? 0 : 1, id],
    );
    return changes === 1;
  }

  async byId(id: string): Promise<FindingRow | null> {
    const r = await this.c.get(`${SELECT_FINDING} WHERE f.id = ?`, [id]);
    return r ? findingRow(r) : null;
  }

  async list(filter: FindingFilter, after: { firstSeenAt: number; id: string } | null, limit: number): Promise<FindingRow[]> {
    const where: string[] = [];
    const params: SqlValue[] = [];
    if (filter.check) {
      where.push('f.check_name = ?');
      params.push(filter.check);
    }
    if (filter.status) {
      where.push('f.status = ?');
      params.push(filter.status);
    }
    if (filter.cardId) {
      where.push('f.card_id = ?');
      params.push(filter.cardId);
    }
    if (after) {
      where.push('(f.first_seen_at < ? OR (f.first_seen_at = ? AND f.id < ?))');
      params.push(after.firstSeenAt, after.firstSeenAt, after.id);
    }
    params.push(limit);
    const sql = `${SELECT_FINDING} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY f.first_seen_at DESC, f.id DESC LIMIT ?`;
    return (await this.c.all(sql, params)).map(findingRow);
  }

  async countOpenByCheck(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of await this.c.all(`SELECT check_name, COUNT(*) AS n FROM finding WHERE status = 'open' GROUP BY check_name`)) out[str(r, 'check_name')] = num(r, 'n');
    return out;
  }

  async countEnrolments(): Promise<{ mode: string; status: string; count: number }[]> {
    return (await this.c.all('SELECT mode, status, COUNT(*) AS n FROM enrolment GROUP BY mode, status ORDER BY mode, status')).map((r) => ({
      mode: str(r, 'mode'),
      status: str(r, 'status'),
      count: num(r, 'n'),
    }));
  }

  async acquireLease(name: string, owner: string, now: number, leaseMs: number, minIntervalMs: number): Promise<boolean> {
    // One statement: a fresh row is inserted; an existing one is taken only when its lease expired
    // and its last run is old enough — two nodes never both get it.
    const { changes } = await this.c.run(
      `INSERT INTO audit_lease (name, owner, lease_until, last_run_at) VALUES (?, ?, ?, 0)
       ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
       WHERE audit_lease.lease_until <= ? AND audit_lease.last_run_at <= ?`,
      [name, owner, now + leaseMs, now, now - minIntervalMs],
    );
    return changes === 1;
  }

  async releaseLease(name: string, owner: string, finishedAt: number): Promise<void> {
    await this.c.run('UPDATE audit_lease SET lease_until = 0, last_run_at = ? WHERE name = ? AND owner = ?', [finishedAt, name, owner]);
  }

  // ---- the checks' fleet queries (each bounded by `limit`)

  async certificatesExpiring(before: number, limit: number): Promise<AuditCertRow[]> {
    return (
      await this.c.all(
        `SELECT x.serial, x.card_id, card.uid, x.identity_id, i.slot, x.not_after, x.revoked_at, x.reason, card.lifecycle
         FROM certificate x JOIN card ON card.id = x.card_id JOIN identity i ON i.id = x.identity_id
         WHERE x.status = 'good' AND x.not_after < ? AND i.state NOT IN ('retired', 'deleted') AND card.lifecycle <> 'terminated'
         ORDER BY x.not_after, x.serial LIMIT ?`,
        [before, limit],
      )
    ).map(certRow);
  }

  async revokedServed(now: number, limit: number): Promise<AuditCertRow[]> {
    return (
      await this.c.all(
        `SELECT x.serial, x.card_id, card.uid, x.identity_id, i.slot, x.not_after, x.revoked_at, x.reason, card.lifecycle
         FROM certificate x JOIN card ON card.id = x.card_id JOIN identity i ON i.id = x.identity_id
         WHERE x.status = 'revoked' AND x.not_after > ? AND i.state NOT IN ('retired', 'deleted') AND card.lifecycle IN ('enrolled', 'active')
         ORDER BY x.revoked_at, x.serial LIMIT ?`,
        [now, limit],
      )
    ).map(certRow);
  }

  async sharedKeys(limit: number): Promise<AuditSharedKeyRow[]> {
    const keys = `SELECT i.spki_sha256 AS spki, i.card_id AS card_id, 'identity' AS src FROM identity i WHERE i.state <> 'deleted'
                  UNION ALL SELECT card.attest_spki_sha256, card.id, 'attestation' FROM card WHERE card.lifecycle <> 'terminated'`;
    const groups = await this.c.all(`SELECT k.spki FROM (${keys}) k GROUP BY k.spki HAVING COUNT(DISTINCT k.card_id) > 1 ORDER BY k.spki LIMIT ?`, [limit]);
    const out: AuditSharedKeyRow[] = [];
    for (const g of groups) {
      const spki = bytes(g, 'spki');
      const holders = await this.c.all(
        `SELECT k.card_id, card.uid, k.src FROM (${keys}) k JOIN card ON card.id = k.card_id WHERE k.spki = ? ORDER BY card.uid, k.src`,
        [spki],
      );
      out.push({ spkiSha256: spki, holders: holders.map((h) => ({ cardId: str(h, 'card_id'), uid: bytes(h, 'uid'), as: str(h, 'src') as 'identity' | 'attestation' })) });
    }
    return out;
  }

  async cardsWithKvn(kvn: number, enrolledBefore: number, limit: number): Promise<AuditCardRow[]> {
    return (
      await this.c.all(
        `SELECT card.*, ${ENROLLED_AT} AS enrolled_at FROM card
         WHERE card.kvn = ? AND card.lifecycle IN ('enrolled', 'active', 'locked') AND COALESCE(${ENROLLED_AT}, card.updated_at) < ?
         ORDER BY card.uid LIMIT ?`,
        [kvn, enrolledBefore, limit],
      )
    ).map(cardRow);
  }

  async cardsNotSeen(before: number, limit: number): Promise<AuditCardRow[]> {
    return (
      await this.c.all(
        `SELECT card.*, ${ENROLLED_AT} AS enrolled_at FROM card
         WHERE card.lifecycle IN ('enrolled', 'active') AND COALESCE(card.last_seen_at, card.created_at) < ?
         ORDER BY card.uid LIMIT ?`,
        [before, limit],
      )
    ).map(cardRow);
  }

  async logReadFailures(codes: readonly string[], limit: number): Promise<AuditJobRow[]> {
    if (codes.length === 0) return [];
    const marks = codes.map(() => '?').join(', ');
    // the card's last read-audit that said something about the log: a success or one of these failures
    const telling = `(k.status = 'succeeded' OR (k.status = 'failed' AND k.error_code IN (${marks})))`;
    return (
      await this.c.all(
        `SELECT j.*, card.uid, card.lifecycle FROM job j JOIN card ON card.id = j.card_id
         WHERE j.kind = 'read-audit' AND j.status = 'failed' AND j.error_code IN (${marks}) AND card.lifecycle <> 'terminated'
           AND NOT EXISTS (SELECT 1 FROM job k WHERE k.card_id = j.card_id AND k.kind = 'read-audit' AND k.seq > j.seq AND ${telling})
         ORDER BY card.uid LIMIT ?`,
        [...codes, ...codes, limit],
      )
    ).map(jobRow);
  }

  async logSummaries(limit: number): Promise<AuditLogSummaryRow[]> {
    return (
      await this.c.all(
        `SELECT h.card_id, card.uid, h.seq AS head_seq, h.head_hash, h.verified, h.received_at,
                (SELECT MIN(e.seq) FROM card_audit_entry e WHERE e.card_id = h.card_id) AS min_seq,
                (SELECT MAX(e.seq) FROM card_audit_entry e WHERE e.card_id = h.card_id) AS max_seq,
                (SELECT COUNT(*) FROM card_audit_entry e WHERE e.card_id = h.card_id) AS n
         FROM card_audit_head h JOIN card ON card.id = h.card_id
         WHERE card.lifecycle <> 'terminated'
         ORDER BY card.uid LIMIT ?`,
        [limit],
      )
    ).map((r) => ({
      cardId: str(r, 'card_id'),
      uid: bytes(r, 'uid'),
      headSeq: num(r, 'head_seq'),
      headHash: bytes(r, 'head_hash'),
      verified: num(r, 'verified') === 1,
      headReceivedAt: num(r, 'received_at'),
      minSeq: numn(r, 'min_seq'),
      maxSeq: numn(r, 'max_seq'),
      count: num(r, 'n'),
    }));
  }

  async locksNotDelivered(stuckBefore: number, limit: number): Promise<AuditJobRow[]> {
    return (
      await this.c.all(
        `SELECT j.*, card.uid, card.lifecycle FROM job j JOIN card ON card.id = j.card_id
         WHERE j.kind = 'lock' AND card.lifecycle <> 'terminated'
           AND (j.status IN ('failed', 'timed_out') OR (j.status IN ('queued', 'in_progress') AND j.created_at < ?))
           AND NOT EXISTS (SELECT 1 FROM job k WHERE k.card_id = j.card_id AND k.kind IN ('lock', 'unlock', 'terminate') AND k.seq > j.seq AND k.status <> 'canceled')
         ORDER BY card.uid LIMIT ?`,
        [stuckBefore, limit],
      )
    ).map(jobRow);
  }

  async cardsByManufacturer(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of await this.c.all(
      `SELECT b.manufacturer_ca_id AS m, COUNT(*) AS n FROM card JOIN manifest_batch b ON b.id = card.batch_id WHERE card.lifecycle <> 'terminated' GROUP BY b.manufacturer_ca_id`,
    )) {
      out[str(r, 'm')] = num(r, 'n');
    }
    return out;
  }
}
