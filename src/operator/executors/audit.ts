/**
 * operator/executors/audit: read-audit — read the card's audit log from the last entry the registry
 * verified, check every page (the head signed by the card's attestation key — the one in the
 * manifest — over a fresh nonce; consecutive numbers; the hash chain from what was verified before
 * to the signed head), and store the entries and the head. imports executors/common, admin/,
 * gp/admin, store.
 *
 *   [IU, EA, GetCardInfo, ReadAuditLog(from, 16, nonce)] then, when more entries wait,
 *   [IU, EA, ReadAuditLog(from + 16k, 16, nonce)…] — two round trips at most (the card keeps 64).
 *
 * Failures, for issue #16's findings: ERR_OP_AUDIT_SIGNATURE (the head does not verify with the
 * attestation certificate, or is not for this card and nonce), ERR_OP_AUDIT_GAP (entries missing
 * since the last verified one — the card keeps the last 64 — or a chain that does not continue from
 * the verified hash: a rewrite or a rollback). On a gap the entries that do verify up to the signed
 * head are stored first, so the gap is reported once, with its numbers in the message.
 * The first read of a card has nothing to continue from: it starts at the oldest entry kept.
 */
import { randomBytes } from 'node:crypto';
import { toHex } from '../../bytes/index.js';
import { chainHash, parseAuditEntry, parseAuditHead, verifyAuditPage, type AuditPage, type VerifiedAuditPage } from '../../gp/admin/audit.js';
import { publicKeyOf, verifySha256 } from '../../gp/admin/attestation.js';
import { IsdLimits } from '../../gp/admin/constants.js';
import { AdminRequest, parseAuditLogResponse } from '../../gp/admin/requests.js';
import { Op, type AdminOp } from '../admin/ops.js';
import { OpErrorCode } from '../errors.js';
import { JobError, type JobExecutor } from '../jobs/runner.js';
import { FIRST_OPERATOR_KVN } from '../keys/master-keys.js';
import type { AuditEntryRow } from '../store/types.js';
import { CardAdmin, parsed, withCard, type ExecutorDeps } from './common.js';

const PAGE = IsdLimits.maxAuditRead;

export function readAuditExecutor(deps: ExecutorDeps): JobExecutor {
  return async (job, ctx) => {
    const admin = new CardAdmin(deps, job, ctx, [FIRST_OPERATOR_KVN]);
    return withCard(admin, async () => {
      const store = admin.store;
      const card = admin.card;
      const head = await store.auditHeadOf(card.id);
      const fromParam = typeof job.params['fromSeq'] === 'number' ? (job.params['fromSeq'] as number) : undefined;
      // Continue from the last verified entry; `fromSeq` (below it) re-reads, still anchored to it.
      const known = head && (fromParam === undefined || fromParam > head.seq) ? { seq: head.seq, hash: head.headHash } : undefined;
      const from = known ? known.seq + 1 : Math.max(1, fromParam ?? 1);
      const nonce = new Uint8Array(randomBytes(32));
      const read = (f: number): AdminOp => Op.call(AdminRequest.readAuditLog({ from: f, max: PAGE, nonce }), { label: 'ReadAuditLog' });
      const pages: AuditPage[] = [];
      const readBatch = async (ops: AdminOp[]): Promise<void> => {
        for (const r of await admin.run(ops)) pages.push(parsed('ReadAuditLog', () => parseAuditLogResponse(r.data)));
      };
      await readBatch([read(from)]);
      // More entries than one page: the rest in one more round trip (its own session adds one entry,
      // hence the page after the head too); again, boundedly, if the log grew meanwhile.
      for (let batch = 0; batch < 4; batch++) {
        const last = pages.at(-1)!;
        const lastSeq = last.entries.length ? parseAuditEntry(last.entries.at(-1)!).seq : undefined;
        const headSeq = parsed('audit head', () => parseAuditHead(last.headStatement)).seq;
        if (lastSeq === undefined || lastSeq >= headSeq) break;
        const more: AdminOp[] = [];
        for (let f = lastSeq + 1; f <= headSeq + 1; f += PAGE) more.push(read(f));
        await readBatch(more);
      }

      const cert = card.attestCertDer;
      let before = known?.hash;
      let expect = known ? known.seq + 1 : undefined;
      const verified: VerifiedAuditPage[] = [];
      let gap: string | undefined;
      for (const page of pages) {
        if (!verifySha256(publicKeyOf(cert), page.headStatement, page.signature)) {
          throw new JobError(OpErrorCode.auditSignature, 'the audit head is not signed by the attestation key of this card (manifest certificate)');
        }
        const h = parsed('audit head', () => parseAuditHead(page.headStatement));
        if (!Buffer.from(h.uid).equals(Buffer.from(card.uid)) || !h.nonce || !Buffer.from(h.nonce).equals(Buffer.from(nonce))) {
          throw new JobError(OpErrorCode.auditSignature, 'the signed audit head is not for this card and this read (UID or nonce): a replayed head');
        }
        if (known && h.seq < known.seq) throw new JobError(OpErrorCode.auditGap, `the card's log ends at ${h.seq}, before entry ${known.seq} verified earlier: a rolled-back log`);
        const first = page.entries.length ? parseAuditEntry(page.entries[0]!).seq : undefined;
        if (expect !== undefined && first !== undefined && first !== expect) {
          gap = `entries ${expect}..${first - 1} are missing (the card keeps the last ${IsdLimits.auditEntriesKept}; the log was read last at ${expect - 1})`;
          before = undefined; // verify what follows the gap on its own, up to the signed head
        }
        try {
          const v = verifyAuditPage(page, { attestationCert: cert, uid: card.uid, nonce, ...(before ? { knownBefore: before } : {}), ...(gap === undefined && expect !== undefined ? { expectFirstSeq: expect } : {}) });
          verified.push(v);
          before = v.hashAfter;
          expect = (v.entries.at(-1)?.seq ?? (expect ?? 1) - 1) + 1;
        } catch (e) {
          throw new JobError(OpErrorCode.auditGap, `the audit chain does not continue from what was verified (a rewritten log): ${(e as Error).message}`);
        }
      }
      const last = verified.at(-1)!;
      if (!last.complete) throw new JobError(OpErrorCode.auditGap, `the pages end at entry ${expect! - 1}, before the signed head ${last.head.seq}`);
      const now = admin.operator.now();
      const rows: AuditEntryRow[] = [];
      for (let p = 0; p < verified.length; p++) {
        let prev = pages[p]!.hashBefore;
        for (let i = 0; i < verified[p]!.entries.length; i++) {
          const e = verified[p]!.entries[i]!;
          const body = pages[p]!.entries[i]!;
          rows.push({ cardId: card.id, seq: e.seq, type: e.event.toString(16).padStart(2, '0'), body, prevHash: prev, receivedAt: now });
          prev = chainHash(prev, body);
        }
      }
      await store.tx(async (t) => {
        await t.insertAuditEntries(rows);
        await t.putAuditHead({ cardId: card.id, seq: last.head.seq, headHash: last.head.head, signature: pages.at(-1)!.signature, verified: true, time: last.head.time, receivedAt: now });
        await t.addEvent({ at: now, actor: `job:${job.id}`, kind: gap ? 'audit.gap' : 'audit.read', cardId: card.id, subject: String(last.head.seq), details: { entries: rows.length, ...(gap ? { gap } : {}) } });
      });
      if (gap) throw new JobError(OpErrorCode.auditGap, `audit log of card ${toHex(card.uid)}: ${gap}; the ${rows.length} entries after it verify and are stored`);
      return admin.result({ entries: rows.length, firstSeq: rows[0]?.seq ?? null, headSeq: last.head.seq, headSha256: toHex(last.head.head), cardTime: last.head.time, baseline: known === undefined });
    });
  };
}
