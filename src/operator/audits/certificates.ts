/**
 * operator/audits/certificates: the certificate and CA checks — cert-expiring (a card's active,
 * good certificate expires within the window, or has expired), revoked-cert-served (a revoked,
 * unexpired certificate whose key is still the card's active identity on an unlocked card: the
 * registry's view, learnt from the card's own R-MAC'd GetCardInfo, so the card presents it in every
 * handshake; the card-signed audit log's TLS-session entries on that slot after the revocation are
 * counted as evidence), ca-expiring (the issuing CA, the operator's TLS CA or a trusted manufacturer
 * CA expires within the window). imports audits/types, store/types, gp/admin/audit, bytes/.
 */
import { toHex } from '../../bytes/index.js';
import { AuditEvent } from '../../protocol/index.js';
import { parseAuditEntry } from '../../gp/admin/audit.js';
import type { FindingReport, FindingSeverity, OperatorStore } from '../store/types.js';
import { CheckName, iso, type AuditCheck, type AuditContext } from './types.js';

const HOUR = 3_600_000;

export const certExpiring: AuditCheck = {
  name: CheckName.certExpiring,
  async run({ store, now, config }) {
    const rows = await store.auditCertificatesExpiring(now + config.certExpiringWithinMs, config.maxPerCheck);
    const reports: FindingReport[] = rows.map((c) => {
      const left = c.notAfter - now;
      const severity: FindingSeverity = left <= 0 ? 'critical' : left <= 24 * HOUR ? 'high' : 'medium';
      return {
        check: CheckName.certExpiring,
        subject: toHex(c.serial),
        cardId: c.cardId,
        severity,
        detail: { serial: toHex(c.serial), notAfter: iso(c.notAfter), expired: left <= 0, hoursLeft: Math.floor(left / HOUR), slot: c.slot, windowDays: config.certExpiringWithinMs / (24 * HOUR) },
      };
    });
    return { reports, truncated: rows.length >= config.maxPerCheck };
  },
};

/** TLS sessions the card logged (event 05) on `slot` at card time ≥ `since` (ms), among its last stored entries. */
async function sessionsSince(store: OperatorStore, cardId: string, slot: number, since: number): Promise<{ count: number; lastSeq: number | null; lastAt: string | null }> {
  const head = await store.auditHeadOf(cardId);
  if (!head) return { count: 0, lastSeq: null, lastAt: null };
  let count = 0;
  let lastSeq: number | null = null;
  let lastAt: string | null = null;
  for (const e of await store.auditEntriesOf(cardId, Math.max(0, head.seq - 256), 256)) {
    if (parseInt(e.type, 16) !== AuditEvent.tlsSession) continue;
    let parsed;
    try {
      parsed = parseAuditEntry(e.body);
    } catch {
      continue; // stored entries were verified; a damaged one is the audit-log checks' business
    }
    if (parsed.detail[0] !== slot || parsed.time === 0 || parsed.time * 1000 < since) continue;
    count++;
    lastSeq = parsed.seq;
    lastAt = iso(parsed.time * 1000);
  }
  return { count, lastSeq, lastAt };
}

export const revokedCertServed: AuditCheck = {
  name: CheckName.revokedCertServed,
  async run({ store, now, config }) {
    const rows = await store.auditRevokedCertificatesServed(now, config.maxPerCheck);
    const reports: FindingReport[] = [];
    for (const c of rows) {
      const evidence = await sessionsSince(store, c.cardId, c.slot, c.revokedAt ?? 0);
      reports.push({
        check: CheckName.revokedCertServed,
        subject: toHex(c.serial),
        cardId: c.cardId,
        severity: 'critical',
        detail: {
          serial: toHex(c.serial),
          revokedAt: c.revokedAt === null ? null : iso(c.revokedAt),
          reason: c.reason,
          slot: c.slot,
          cardState: c.lifecycle,
          source: 'registry: the key is the card\'s active identity (last GetCardInfo) and the card is not locked',
          sessionsAfterRevocation: evidence.count,
          lastSessionSeq: evidence.lastSeq,
          lastSessionAt: evidence.lastAt,
        },
      });
    }
    return { reports, truncated: rows.length >= config.maxPerCheck };
  },
};

export const caExpiring: AuditCheck = {
  name: CheckName.caExpiring,
  async run({ store, now, config }: AuditContext) {
    const until = now + config.caExpiringWithinMs;
    const reports: FindingReport[] = [];
    const add = (id: string, kind: string, name: string, notAfter: number, critical: boolean): void => {
      if (notAfter >= until) return;
      const expired = notAfter <= now;
      reports.push({
        check: CheckName.caExpiring,
        subject: `${kind}:${id}`,
        cardId: null,
        severity: expired ? 'critical' : critical ? 'high' : 'medium',
        detail: { kind, id, name, notAfter: iso(notAfter), expired, daysLeft: Math.floor((notAfter - now) / (24 * HOUR)) },
      });
    };
    for (const role of ['issuing', 'tls']) {
      const ca = await store.caByRole(role);
      if (ca) add(ca.id, role, `${role} CA`, ca.notAfter, true);
    }
    for (const m of await store.listManufacturerCas()) add(m.id, 'manufacturer', m.name, m.notAfter, false);
    return { reports, truncated: false };
  },
};
