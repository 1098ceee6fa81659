/**
 * operator/audits/cards: the card-state checks — lock-not-delivered (the card's last lock / unlock /
 * terminate job is a lock that failed or timed out, or is still unfinished N minutes after it was
 * asked: the card may still serve while the operator believes it asked it to stop) and
 * card-not-seen (an enrolled or active card no device agent has reported — heartbeat, `last_seen_at`
 * — for longer than the threshold; never seen counts from its import). imports audits/types,
 * store/types, bytes/.
 */
import { toHex } from '../../bytes/index.js';
import type { FindingReport } from '../store/types.js';
import { CheckName, iso, type AuditCheck } from './types.js';

export const lockNotDelivered: AuditCheck = {
  name: CheckName.lockNotDelivered,
  async run({ store, now, config }) {
    const rows = await store.auditLocksNotDelivered(now - config.lockStuckMs, config.maxPerCheck);
    const reports: FindingReport[] = rows.map((j) => ({
      check: CheckName.lockNotDelivered,
      subject: toHex(j.uid),
      cardId: j.cardId,
      severity: 'high',
      detail: {
        job: j.jobId,
        jobStatus: j.status,
        errorCode: j.errorCode,
        errorMessage: j.errorMessage,
        requestedAt: iso(j.createdAt),
        minutesSinceRequest: Math.floor((now - j.createdAt) / 60_000),
        cardState: j.lifecycle,
      },
    }));
    return { reports, truncated: rows.length >= config.maxPerCheck };
  },
};

export const cardNotSeen: AuditCheck = {
  name: CheckName.cardNotSeen,
  async run({ store, now, config }) {
    const rows = await store.auditCardsNotSeen(now - config.cardNotSeenMs, config.maxPerCheck);
    const reports: FindingReport[] = rows.map((c) => ({
      check: CheckName.cardNotSeen,
      subject: toHex(c.uid),
      cardId: c.cardId,
      severity: 'low',
      detail: {
        lastSeenAt: c.lastSeenAt === null ? null : iso(c.lastSeenAt),
        never: c.lastSeenAt === null,
        hostId: c.hostId,
        hoursUnseen: Math.floor((now - (c.lastSeenAt ?? c.createdAt)) / 3_600_000),
        cardState: c.lifecycle,
      },
    }));
    return { reports, truncated: rows.length >= config.maxPerCheck };
  },
};
