/**
 * The audit log through ReadAuditLog: entries for admin sessions and every state-changing command,
 * hash-chained, the head signed by the factory attestation key; pages that verify and chain to
 * each other; a bounded log that drops its oldest entries but keeps the chain; and what a host
 * that withholds, removes, reorders or edits entries gets caught on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { toHex } from '../../../src/bytes/index.js';
import {
  AdminRequest,
  AuditEvent,
  chainHash,
  Fn,
  IsdLimits,
  parseAuditLogResponse,
  verifyAuditPage,
  type AuditEntry,
  type AuditPage,
} from '../../../src/gp/admin/index.js';
import type { AdminClient } from '../../../src/gp/admin/index.js';
import { auditTlsSession } from '../../../src/card/applets/isd/index.js';
import { adminSession, sealedCard, UID, type Fixture } from './helpers.js';

async function readAll(s: AdminClient, fx: Fixture, max: number = IsdLimits.maxAuditRead): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  let from = 1;
  let known: Uint8Array | undefined;
  for (;;) {
    const nonce = randomBytes(16);
    const page = parseAuditLogResponse(await s.call(AdminRequest.readAuditLog({ from, max, nonce })));
    const v = verifyAuditPage(page, { attestationCert: fx.manifest.attestationChain[0]!, uid: UID, nonce, ...(known ? { knownBefore: known, expectFirstSeq: from } : {}) });
    out.push(...v.entries);
    if (v.complete) return out;
    known = v.hashAfter;
    from = v.entries[v.entries.length - 1]!.seq + 1;
  }
}

test('the log records the factory seal, sessions and functions; pages verify and chain; the head is signed', async () => {
  const { card, fx } = await sealedCard();
  const s = await adminSession(card, fx.factoryKeys);
  await s.call(AdminRequest.putRevocationList({ number: 1, serials: [] }));
  await s.setStatus(0x40, 0x80, card.platform.applets()[0]!.aid);
  auditTlsSession(card.platform, { slot: 1, cipherSuite: 0x1301, exported: false, sessionHash: new Uint8Array(16).fill(1), clientCertHash: new Uint8Array(16) });
  const entries = await readAll(s, fx, 2);
  assert.deepEqual(
    entries.map((e) => e.seq),
    entries.map((_, i) => i + 1),
  );
  assert.deepEqual(
    entries.map((e) => e.event),
    [AuditEvent.factorySealed, AuditEvent.adminSessionOpened, AuditEvent.adminSessionOpened, AuditEvent.functionExecuted, AuditEvent.setStatus, AuditEvent.tlsSession],
  );
  assert.equal(toHex(entries[3]!.detail.subarray(0, 2)), Fn.putRevocationList.toString(16));
  assert.equal(toHex(entries[2]!.detail), '3033' + (card.platform.record().sequenceCounter - 1).toString(16).padStart(6, '0') + '00', 'KVN 30, level 33, counter, channel 0');
  assert.equal(entries[5]!.detail.length, 36);
});

test('reading is not logged; a read from beyond the head returns no entry and the head', async () => {
  const { card, fx } = await sealedCard();
  const s = await adminSession(card, fx.factoryKeys);
  const seq = card.platform.record().audit.seq;
  const page = parseAuditLogResponse(await s.call(AdminRequest.readAuditLog({ from: seq + 5 })));
  const v = verifyAuditPage(page, { attestationCert: fx.manifest.attestationChain[0]!, uid: UID });
  assert.equal(v.entries.length, 0);
  assert.ok(v.complete);
  await s.call(AdminRequest.getCardInfo());
  assert.equal(card.platform.record().audit.seq, seq);
});

test('a bounded log: the oldest entries drop off, the chain and the sequence numbers go on', async () => {
  const { card, fx } = await sealedCard();
  const s = await adminSession(card, fx.factoryKeys);
  for (let n = 1; n <= IsdLimits.auditEntriesKept + 10; n++) await s.call(AdminRequest.putRevocationList({ number: n, serials: [] }));
  const rec = card.platform.record();
  assert.equal(rec.audit.entries.length, IsdLimits.auditEntriesKept);
  const entries = await readAll(s, fx);
  assert.equal(entries.length, IsdLimits.auditEntriesKept);
  assert.equal(entries[0]!.seq, rec.audit.seq - IsdLimits.auditEntriesKept + 1, 'a reader from 1 sees where the kept log starts (AUDIT_GAP)');
});

test('a host that removes, reorders or edits entries, or replays an old head, is caught', async () => {
  const { card, fx } = await sealedCard();
  const s = await adminSession(card, fx.factoryKeys);
  for (let n = 1; n <= 3; n++) await s.call(AdminRequest.putRevocationList({ number: n, serials: [] }));
  const nonce = randomBytes(16);
  const page = parseAuditLogResponse(await s.call(AdminRequest.readAuditLog({ nonce })));
  const opts = { attestationCert: fx.manifest.attestationChain[0]!, uid: UID, nonce };
  verifyAuditPage(page, opts);
  const variant = (p: Partial<AuditPage>): AuditPage => ({ ...page, ...p });
  const e = page.entries;
  assert.throws(() => verifyAuditPage(variant({ entries: [...e.slice(0, 2), ...e.slice(3)] }), opts), /ERR_ADMIN_AUDIT|expected|chain/, 'removed');
  assert.throws(() => verifyAuditPage(variant({ entries: [e[1]!, e[0]!, ...e.slice(2)] }), opts), /ERR_ADMIN_AUDIT|expected|chain/, 'reordered');
  const edited = e[2]!.slice();
  edited[edited.length - 1] = edited[edited.length - 1]! ^ 1;
  assert.throws(() => verifyAuditPage(variant({ entries: [...e.slice(0, 2), edited, ...e.slice(3)] }), opts), /ERR_ADMIN|chain|canonical/, 'edited');
  // withholding the newest entry (with a consistent hash) cannot pass for the whole log: the signed head is further on
  const kept = e.slice(0, -1);
  const short = verifyAuditPage(variant({ entries: kept, hashAfter: kept.reduce((h, x) => chainHash(h, x), page.hashBefore) }), opts);
  assert.equal(short.complete, false, 'withheld tail');
  assert.equal(short.head.seq, card.platform.record().audit.seq);
  assert.throws(() => verifyAuditPage(page, { ...opts, nonce: randomBytes(16) }), /nonce/, 'an old head replayed for a new nonce');
  assert.throws(() => verifyAuditPage(page, { ...opts, knownBefore: new Uint8Array(32).fill(9) }), /gap or rewrite/);
  const sig = page.signature.slice();
  sig[10] = sig[10]! ^ 1;
  assert.throws(() => verifyAuditPage(variant({ signature: sig }), opts), /signature/);
});
