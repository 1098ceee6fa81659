/**
 * operator/audits/audit-log: the card audit-log checks, over what read-audit verified and stored
 * (executors/audit.ts: entries and the signed head) and how the card's read-audit jobs ended.
 * - audit-log-gap: entries missing from the stored log between its oldest entry and the signed
 *   head (the card's 64-entry log overflowed between reads, or entries were withheld), or the last
 *   telling read-audit failed ERR_OP_AUDIT_GAP (a rolled-back or rewritten log). Fixed when the
 *   missing entries are read after all (read-audit with fromSeq, while the card still keeps them) or
 *   a later read succeeds with no hole left; otherwise accepted by a person.
 * - audit-log-bad-signature: the last telling read-audit failed ERR_OP_AUDIT_SIGNATURE (a head not
 *   signed by the card's attestation key, or not for this card and read), the stored head is not
 *   marked verified, or the stored entries no longer chain to the signed head hash (the stored copy
 *   was altered after verification). Checked over the last 64 stored entries of each card.
 * imports audits/types, store/types, gp/admin/audit, bytes/, errors.
 */
import { ctEqual, toHex } from '../../bytes/index.js';
import { chainHash } from '../../gp/admin/audit.js';
import { OpErrorCode } from '../errors.js';
import type { AuditJobRow, AuditLogSummaryRow, FindingReport, JsonObject, OperatorStore } from '../store/types.js';
import { CheckName, iso, type AuditCheck } from './types.js';

const CHAIN_WINDOW = 64;
const MAX_RANGES = 20;

function jobDetail(j: AuditJobRow): JsonObject {
  return { job: j.jobId, errorCode: j.errorCode, errorMessage: j.errorMessage, finishedAt: j.finishedAt === null ? null : iso(j.finishedAt) };
}

/** The missing sequence ranges between the oldest stored entry and the head (at most MAX_RANGES). */
async function missingRanges(store: OperatorStore, s: AuditLogSummaryRow): Promise<[number, number][]> {
  const out: [number, number][] = [];
  let expect = s.minSeq ?? s.headSeq + 1;
  let after = expect - 1;
  for (;;) {
    const page = await store.auditEntriesOf(s.cardId, after, 1000);
    for (const e of page) {
      if (e.seq > expect) out.push([expect, e.seq - 1]);
      expect = e.seq + 1;
      if (out.length >= MAX_RANGES) return out;
    }
    if (page.length < 1000) break;
    after = page.at(-1)!.seq;
  }
  if (s.minSeq !== null && expect <= s.headSeq) out.push([expect, s.headSeq]);
  return out;
}

export const auditLogGap: AuditCheck = {
  name: CheckName.auditLogGap,
  async run({ store, config }) {
    const limit = config.maxPerCheck;
    const byCard = new Map<string, FindingReport & { detail: JsonObject }>();
    const summaries = await store.auditLogSummaries(limit);
    for (const s of summaries) {
      if (s.count === 0 || s.minSeq === null || s.maxSeq === null) continue;
      if (s.maxSeq - s.minSeq + 1 === s.count && s.maxSeq >= s.headSeq) continue;
      const missing = await missingRanges(store, s);
      if (missing.length === 0) continue;
      byCard.set(s.cardId, {
        check: CheckName.auditLogGap,
        subject: toHex(s.uid),
        cardId: s.cardId,
        severity: 'high',
        detail: { missing, missingEntries: missing.reduce((n, [a, b]) => n + b - a + 1, 0), headSeq: s.headSeq, oldestStored: s.minSeq },
      });
    }
    const failures = await store.auditLogReadFailures([OpErrorCode.auditGap], limit);
    for (const j of failures) {
      const have = byCard.get(j.cardId);
      if (have) have.detail['lastRead'] = jobDetail(j);
      else byCard.set(j.cardId, { check: CheckName.auditLogGap, subject: toHex(j.uid), cardId: j.cardId, severity: 'high', detail: { lastRead: jobDetail(j) } });
    }
    return { reports: [...byCard.values()], truncated: summaries.length >= limit || failures.length >= limit };
  },
};

/** Whether the stored entries up to the head chain to the signed head hash (null: nothing to check). */
async function storedChainBreak(store: OperatorStore, s: AuditLogSummaryRow): Promise<string | null> {
  if (s.count === 0 || s.maxSeq !== s.headSeq) return null; // a gap is the other check's
  const entries = await store.auditEntriesOf(s.cardId, Math.max(0, s.headSeq - CHAIN_WINDOW), CHAIN_WINDOW);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const after = chainHash(e.prevHash, e.body);
    const next = entries[i + 1];
    if (next && next.seq === e.seq + 1 && !ctEqual(after, next.prevHash)) return `entry ${next.seq} does not continue the chain of entry ${e.seq}`;
    if (!next && e.seq === s.headSeq && !ctEqual(after, s.headHash)) return `the stored entries do not chain to the signed head ${s.headSeq}`;
  }
  return null;
}

export const auditLogBadSignature: AuditCheck = {
  name: CheckName.auditLogBadSignature,
  async run({ store, config }) {
    const limit = config.maxPerCheck;
    const byCard = new Map<string, FindingReport & { detail: JsonObject }>();
    const summaries = await store.auditLogSummaries(limit);
    for (const s of summaries) {
      const problem = !s.verified ? 'the stored head is not marked verified' : await storedChainBreak(store, s);
      if (problem === null) continue;
      byCard.set(s.cardId, {
        check: CheckName.auditLogBadSignature,
        subject: toHex(s.uid),
        cardId: s.cardId,
        severity: 'critical',
        detail: { stored: problem, headSeq: s.headSeq, headReceivedAt: iso(s.headReceivedAt) },
      });
    }
    const failures = await store.auditLogReadFailures([OpErrorCode.auditSignature], limit);
    for (const j of failures) {
      const have = byCard.get(j.cardId);
      if (have) have.detail['lastRead'] = jobDetail(j);
      else byCard.set(j.cardId, { check: CheckName.auditLogBadSignature, subject: toHex(j.uid), cardId: j.cardId, severity: 'critical', detail: { lastRead: jobDetail(j) } });
    }
    return { reports: [...byCard.values()], truncated: summaries.length >= limit || failures.length >= limit };
  },
};
