// The audit checks on a fleet made the real way (software cards of test/operator/helpers.ts:
// manifest import, attested enrolment by the operator's EnrolmentService, revocation through the
// RevocationService, jobs through the store's runner API), on SQLite AND on PostgreSQL: on a clean
// fleet no check reports anything; for EACH check, an injected case is reported exactly once, a
// second run does not duplicate it (its last_seen moves, first_seen stays), nothing else is
// reported, and the finding is resolved `auto` by the first run after the fix.
// The operator's clock is the test's (OpenOptions.now), so thresholds are crossed without waiting.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toHex } from '../../src/bytes/index.js';
import { chainHash, encodeAuditEntry, AUDIT_GENESIS } from '../../src/gp/admin/audit.js';
import { initOperator } from '../../src/operator/init.js';
import { Operator } from '../../src/operator/operator.js';
import { DefaultAttestationVerifier, SETLS_ATTESTATION_V1 } from '../../src/operator/pki/attestation.js';
import { importManifest } from '../../src/operator/services/manifests.js';
import type { AuditEntryRow, FindingRow } from '../../src/operator/store/types.js';
import { CHECK_NAMES, type CheckName } from '../../src/operator/audits/index.js';
import { makeCsr, makeManufacturer, SoftCard, tempDir, type Manufacturer } from './helpers.js';
import { createTempDb, pgUnavailable, type TempDb } from './pg-helpers.js';
import { skipOrFail } from '../ci.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

interface Fleet {
  op: Operator;
  clock: { t: number };
  m: Manufacturer;
  cards: SoftCard[];
  close(): Promise<void>;
}

async function makeFleet(pgUrl?: string): Promise<Fleet> {
  const m = await makeManufacturer('Fleet maker');
  const t = tempDir('setls-audits-');
  const dir = join(t.dir, 'op');
  await initOperator({ dir, manufacturerCaPems: [m.caPem], ...(pgUrl ? { store: pgUrl } : {}) });
  // thresholds small enough to cross by moving the clock
  const cfg = JSON.parse(readFileSync(join(dir, 'operator.json'), 'utf8'));
  cfg.audits = { cardNotSeenHours: 2, factoryKeysGraceHours: 1, lockStuckMinutes: 15, certExpiringDays: 7, caExpiringDays: 90 };
  writeFileSync(join(dir, 'operator.json'), JSON.stringify(cfg));
  const clock = { t: Date.now() };
  const op = await Operator.open({ dir, ...(pgUrl ? { store: pgUrl } : {}), verifier: new DefaultAttestationVerifier(SETLS_ATTESTATION_V1), now: () => clock.t });
  const fleet: Fleet = {
    op,
    clock,
    m,
    cards: [],
    async close() {
      await op.close();
      t.cleanup();
    },
  };
  for (let i = 0; i < 4; i++) fleet.cards.push(await enrolNew(fleet));
  return fleet;
}

/** Imports a new card and enrols it as the enrol job does (attested key, certificate, then KVN 31 and a heartbeat). */
async function enrolNew(f: Fleet, opts: { days?: number; keepFactoryKeys?: boolean } = {}): Promise<SoftCard> {
  const card = await SoftCard.create(f.m);
  await importManifest(f.op.store, { cards: [card.manifestEntry()] }, 'test', f.clock.t);
  await enrol(f, card, opts);
  return card;
}

async function enrol(f: Fleet, card: SoftCard, opts: { days?: number; keepFactoryKeys?: boolean } = {}): Promise<string> {
  const { keys, spki } = await SoftCard.identityKey();
  const n = await f.op.enrolment.issueNonce(card.uid, null);
  const res = await f.op.enrolment.complete({ uid: card.uid, evidence: card.attest(spki, n.nonce), csrDer: await makeCsr(keys), expectedEnrolmentId: n.enrolmentId, ...(opts.days ? { days: opts.days } : {}) });
  const row = (await f.op.store.cardByUid(card.uid))!;
  await f.op.store.updateIdentity(res.identity.id, { state: 'active' }, f.clock.t); // ActivateIdentity
  await f.op.store.updateCard(row.id, { lifecycle: 'active', ...(opts.keepFactoryKeys ? {} : { kvn: 0x31 }), lastSeenAt: f.clock.t }, f.clock.t);
  return toHex(res.certificate.serial);
}

async function cardId(f: Fleet, card: SoftCard): Promise<string> {
  return (await f.op.store.cardByUid(card.uid))!.id;
}

/** Every enrolled/active card heard from now, except `silent` (what the relay's heartbeats record). */
async function heartbeats(f: Fleet, silent: readonly SoftCard[] = []): Promise<void> {
  const quiet = new Set(silent.map((c) => c.uidHex));
  for (const c of await f.op.store.listCards({}, null, 1000)) {
    if (quiet.has(toHex(c.uid)) || c.lifecycle === 'terminated') continue;
    await f.op.store.updateCard(c.id, { lastSeenAt: f.clock.t }, f.clock.t);
  }
}

async function openFindings(f: Fleet): Promise<FindingRow[]> {
  return f.op.store.listFindings({ status: 'open' }, null, 1000);
}

/** One audit run a minute later (after the heartbeats of every card but `silent`). */
async function run(f: Fleet, silent: readonly SoftCard[] = []) {
  f.clock.t += MIN;
  await heartbeats(f, silent);
  const r = (await f.op.audits.run())!;
  for (const name of CHECK_NAMES) assert.equal(r.checks[name]?.error, undefined, `${name}: ${r.checks[name]?.error}`);
  return r;
}

/** The injected case is reported exactly once, nothing else; a second run keeps the same finding with a later last_seen. */
async function expectOnly(f: Fleet, check: CheckName, subject: string, opts: { silent?: readonly SoftCard[]; card?: SoftCard | null } = {}): Promise<FindingRow> {
  const r1 = await run(f, opts.silent);
  const open1 = await openFindings(f);
  assert.deepEqual(open1.map((x) => [x.check, x.subject]), [[check, subject]], `only the injected ${check}`);
  assert.equal(r1.checks[check]!.new, 1);
  assert.equal(r1.checks[check]!.open, 1);
  const first = open1[0]!;
  if (opts.card !== undefined) assert.equal(first.cardUid ? toHex(first.cardUid) : null, opts.card ? opts.card.uidHex : null);
  const r2 = await run(f, opts.silent);
  const open2 = await openFindings(f);
  assert.equal(open2.length, 1, 'not duplicated by the second run');
  assert.equal(open2[0]!.id, first.id);
  assert.equal(open2[0]!.firstSeenAt, first.firstSeenAt);
  assert.ok(open2[0]!.lastSeenAt > first.lastSeenAt, 'last_seen moves');
  assert.equal(r2.checks[check]!.new, 0);
  for (const name of CHECK_NAMES) assert.equal(r2.checks[name]!.new, 0);
  return open2[0]!;
}

/** The first run after the fix resolves it `auto`, and nothing is open. */
async function expectResolved(f: Fleet, finding: FindingRow, silent: readonly SoftCard[] = []): Promise<void> {
  const r = await run(f, silent);
  assert.equal(r.checks[finding.check]!.resolved, 1, `${finding.check} resolved by the run`);
  const now = (await f.op.store.findingById(finding.id))!;
  assert.equal(now.status, 'resolved');
  assert.equal(now.resolution, 'auto');
  assert.deepEqual((await openFindings(f)).map((x) => [x.check, x.subject]), []);
}

/** A card's audit log as the card would make it: entries 1..n chained from genesis. */
function makeLog(cardIdValue: string, n: number, at: number): { rows: AuditEntryRow[]; heads: Uint8Array[] } {
  const rows: AuditEntryRow[] = [];
  const heads: Uint8Array[] = [];
  let h: Uint8Array = AUDIT_GENESIS;
  for (let seq = 1; seq <= n; seq++) {
    const body = encodeAuditEntry({ seq, time: Math.floor(at / 1000), event: 0x02, detail: Uint8Array.of(0xbf, 0x20) });
    rows.push({ cardId: cardIdValue, seq, type: '02', body, prevHash: h, receivedAt: at });
    h = chainHash(h, body);
    heads.push(h);
  }
  return { rows, heads };
}

async function failedReadAudit(f: Fleet, card: SoftCard, code: string): Promise<void> {
  await readAudit(f, card, { status: 'failed', errorCode: code, errorMessage: `test: ${code}` });
}

/** A read-audit job run through the store's runner API (claim, finish) with this outcome. */
async function readAudit(f: Fleet, card: SoftCard, outcome: { status: 'failed' | 'succeeded'; errorCode?: string; errorMessage?: string }): Promise<void> {
  await jobRun(f, card, 'read-audit', outcome);
}

async function jobRun(f: Fleet, card: SoftCard, kind: string, outcome: { status: 'failed' | 'succeeded' | 'timed_out'; errorCode?: string; errorMessage?: string } | null): Promise<string> {
  const s = f.op.store;
  const job = await s.insertJob({ id: randomUUID(), cardId: await cardId(f, card), kind, params: {}, maxAttempts: 3, deadlineAt: null, idempotencyKey: null, createdBy: 'test', createdAt: f.clock.t });
  if (!outcome) return job.id;
  const claimed = (await s.claimJob({ owner: 'test-runner', now: f.clock.t, leaseMs: 60_000, kinds: [kind] }))!;
  assert.equal(claimed.id, job.id);
  assert.ok(await s.finishJob(job.id, 'test-runner', claimed.attempt, { status: outcome.status, errorCode: outcome.errorCode ?? null, errorMessage: outcome.errorMessage ?? null, now: f.clock.t }));
  return job.id;
}

function scenario(name: string, pg: boolean): void {
  describe(`audit checks on a fleet (${name})`, () => {
    let f: Fleet;
    let db: TempDb | undefined;
    let skip: string | undefined;
    before(async () => {
      if (pg) {
        skip = await pgUnavailable();
        if (skip) return;
        db = await createTempDb();
      }
      f = await makeFleet(db?.url);
    });
    after(async () => {
      await f?.close();
      await db?.drop();
    });
    const it = (title: string, fn: () => Promise<void>) =>
      test(title, async (t) => {
        if (!skipOrFail(t, skip)) return;
        await fn();
      });

    it('a clean fleet: every check runs and nothing is reported', async () => {
      const r = await run(f);
      assert.deepEqual(Object.keys(r.checks).sort(), [...CHECK_NAMES].sort());
      for (const name of CHECK_NAMES) assert.deepEqual(r.checks[name], { open: 0, new: 0, resolved: 0 }, name);
      assert.deepEqual(await openFindings(f), []);
    });

    it('cert-expiring: a 3-day certificate; fixed by its renewal (new certificate, old superseded)', async () => {
      const card = await enrolNew(f, { days: 3 });
      const serial = toHex((await f.op.store.certificatesOfCard(await cardId(f, card)))[0]!.serial);
      const finding = await expectOnly(f, 'cert-expiring', serial, { card });
      assert.equal(finding.severity, 'medium');
      assert.equal(finding.detail['expired'], false);
      // renewal, as rekey does it: a new key and certificate, the old identity retired, its certificate superseded
      const s = f.op.store;
      const cid = await cardId(f, card);
      const old = (await s.identitiesOfCard(cid))[0]!;
      assert.equal(old.state, 'active');
      await enrol(f, card);
      await s.updateIdentity(old.id, { state: 'retired' }, f.clock.t);
      assert.ok(await s.supersedeCertificate((await s.certificatesOfCard(cid))[0]!.serial, f.clock.t));
      await expectResolved(f, finding);
    });

    it('revoked-cert-served: revoked while the key is still the active identity of an active card; fixed by locking the card', async () => {
      const card = f.cards[0]!;
      const cid = await cardId(f, card);
      const cert = (await f.op.store.certificatesOfCard(cid))[0]!;
      await f.op.revocation.revoke(cert.serial, 'keyCompromise', 'test');
      const finding = await expectOnly(f, 'revoked-cert-served', toHex(cert.serial), { card });
      assert.equal(finding.severity, 'critical');
      assert.equal(finding.detail['reason'], 'keyCompromise');
      await f.op.store.updateCard(cid, { lifecycle: 'locked' }, f.clock.t); // what a delivered lock records
      await expectResolved(f, finding);
    });

    it('shared-key: a second card presenting the same attestation key (a clone); fixed when the clone is terminated', async () => {
      const orig = (await f.op.store.cardByUid(f.cards[1]!.uid))!;
      const cloneId = randomUUID();
      await f.op.store.insertCard({
        id: cloneId, uid: Uint8Array.from({ length: 16 }, (_, i) => 0xc0 + i), batchId: orig.batchId, attestCertDer: orig.attestCertDer,
        attestSpkiSha256: orig.attestSpkiSha256, lifecycle: 'manifest', kvn: 0x30, transportKeyId: null, labels: {}, profile: {}, createdAt: f.clock.t,
      });
      const finding = await expectOnly(f, 'shared-key', toHex(orig.attestSpkiSha256), { card: null });
      assert.deepEqual((finding.detail['holders'] as { card: string; as: string }[]).map((h) => h.as), ['attestation', 'attestation']);
      await f.op.store.updateCard(cloneId, { lifecycle: 'terminated' }, f.clock.t);
      await expectResolved(f, finding);
    });

    it('factory-keys-unrotated: enrolled (zero-touch) but still on KVN 30 after the grace period; fixed by the key rotation', async () => {
      const card = await enrolNew(f, { keepFactoryKeys: true });
      assert.deepEqual(await openFindings(f), []);
      f.clock.t += 2 * HOUR; // past the 1 h grace
      const finding = await expectOnly(f, 'factory-keys-unrotated', card.uidHex, { card });
      assert.equal(finding.detail['kvn'], '30');
      await f.op.store.updateCard(await cardId(f, card), { kvn: 0x31 }, f.clock.t);
      await expectResolved(f, finding);
    });

    it('card-not-seen: no heartbeat for 3 h (threshold 2 h); fixed when its agent reports it again', async () => {
      const card = f.cards[2]!;
      await run(f);
      f.clock.t += 3 * HOUR;
      const finding = await expectOnly(f, 'card-not-seen', card.uidHex, { silent: [card], card });
      assert.equal(finding.severity, 'low');
      await expectResolved(f, finding); // heartbeats of every card, this one too
    });

    it('lock-not-delivered: a lock that failed (agent away); fixed by a lock that succeeds', async () => {
      const card = f.cards[3]!;
      const job = await jobRun(f, card, 'lock', { status: 'failed', errorCode: 'ERR_OP_AGENT_UNAVAILABLE', errorMessage: 'no agent' });
      const finding = await expectOnly(f, 'lock-not-delivered', card.uidHex, { card });
      assert.equal(finding.detail['job'], job);
      assert.equal(finding.detail['jobStatus'], 'failed');
      await jobRun(f, card, 'lock', { status: 'succeeded' });
      await f.op.store.updateCard(await cardId(f, card), { lifecycle: 'locked' }, f.clock.t);
      await expectResolved(f, finding);
    });

    it('lock-not-delivered: a lock still queued 20 min after it was asked; fixed when it is canceled and the card unlocked on purpose', async () => {
      const card = f.cards[1]!;
      const job = await jobRun(f, card, 'lock', null);
      assert.deepEqual((await run(f)).checks['lock-not-delivered']!.new, 0, 'not yet: asked a minute ago');
      f.clock.t += 20 * MIN;
      const finding = await expectOnly(f, 'lock-not-delivered', card.uidHex, { card });
      assert.equal(finding.detail['jobStatus'], 'queued');
      assert.ok(await f.op.store.cancelJob(job, f.clock.t));
      await expectResolved(f, finding);
    });

    it('audit-log-gap: entries missing between what was verified before and the signed head (a failed read-audit stored what followed); fixed when they are read', async () => {
      const card = f.cards[1]!;
      const cid = await cardId(f, card);
      const log = makeLog(cid, 10, f.clock.t);
      await f.op.store.insertAuditEntries(log.rows.slice(0, 5));
      await f.op.store.putAuditHead({ cardId: cid, seq: 5, headHash: log.heads[4]!, signature: Uint8Array.of(1), verified: true, time: 0, receivedAt: f.clock.t });
      await readAudit(f, card, { status: 'succeeded' });
      assert.deepEqual((await run(f)).checks['audit-log-gap']!.open, 0, 'a complete stored log');
      // the next read found 6..8 gone: it stored 9..10 and the head at 10, and failed ERR_OP_AUDIT_GAP
      await f.op.store.insertAuditEntries(log.rows.slice(8));
      await f.op.store.putAuditHead({ cardId: cid, seq: 10, headHash: log.heads[9]!, signature: Uint8Array.of(2), verified: true, time: 0, receivedAt: f.clock.t });
      await failedReadAudit(f, card, 'ERR_OP_AUDIT_GAP');
      const finding = await expectOnly(f, 'audit-log-gap', card.uidHex, { card });
      assert.deepEqual(finding.detail['missing'], [[6, 8]]);
      assert.equal((finding.detail['lastRead'] as { errorCode: string }).errorCode, 'ERR_OP_AUDIT_GAP');
      // read-audit fromSeq 6 while the card still keeps them: stored, and the read succeeds
      await f.op.store.insertAuditEntries(log.rows.slice(5, 8));
      await readAudit(f, card, { status: 'succeeded' });
      await expectResolved(f, finding);
    });

    it('audit-log-bad-signature: a read-audit refused for its head signature, and a stored log that no longer chains to its signed head; fixed by a good read / the genuine copy', async () => {
      const card = f.cards[2]!;
      const cid = await cardId(f, card);
      await failedReadAudit(f, card, 'ERR_OP_AUDIT_SIGNATURE');
      const finding = await expectOnly(f, 'audit-log-bad-signature', card.uidHex, { card });
      assert.equal((finding.detail['lastRead'] as { errorCode: string }).errorCode, 'ERR_OP_AUDIT_SIGNATURE');
      await readAudit(f, card, { status: 'succeeded' });
      await expectResolved(f, finding);
      // the stored copy altered after verification: its head hash no longer matches the entries
      const log = makeLog(cid, 4, f.clock.t);
      await f.op.store.insertAuditEntries(log.rows);
      await f.op.store.putAuditHead({ cardId: cid, seq: 4, headHash: log.heads[2]!, signature: Uint8Array.of(3), verified: true, time: 0, receivedAt: f.clock.t });
      const stored = await expectOnly(f, 'audit-log-bad-signature', card.uidHex, { card });
      assert.match(String(stored.detail['stored']), /do not chain to the signed head 4/);
      await f.op.store.putAuditHead({ cardId: cid, seq: 4, headHash: log.heads[3]!, signature: Uint8Array.of(3), verified: true, time: 0, receivedAt: f.clock.t });
      await expectResolved(f, stored);
    });

    it('ca-expiring: a manufacturer CA that anchors a card and expires in 30 days; fixed when no card depends on it any more', async () => {
      const old = await makeManufacturer('Old maker', { notAfter: new Date(f.clock.t + 30 * DAY) });
      await f.op.trustManufacturer(old.caPem);
      assert.deepEqual((await run(f)).checks['ca-expiring']!.new, 0, 'anchors no card yet: not reported');
      const card = await SoftCard.create(old);
      await importManifest(f.op.store, { cards: [card.manifestEntry()] }, 'test', f.clock.t);
      const mId = (await f.op.store.listManufacturerCas()).find((x) => x.name.startsWith('Old maker'))!.id;
      const finding = await expectOnly(f, 'ca-expiring', `manufacturer:${mId}`, { card: null });
      assert.equal(finding.detail['cards'], 1);
      assert.equal(finding.detail['daysLeft'], 29);
      await f.op.store.updateCard(await cardId(f, card), { lifecycle: 'terminated' }, f.clock.t);
      await expectResolved(f, finding);
    });

    it('the issuing CA within the window (the clock 9.9 years on) is high; every finding of the run is new once', async () => {
      // only the CA checks: the fleet's certificates would all be expired by then
      f.clock.t += Math.round(9.9 * 365 * DAY);
      const r = (await f.op.audits.run({ only: ['ca-expiring'] }))!;
      const open = await f.op.store.listFindings({ check: 'ca-expiring', status: 'open' }, null, 10);
      const issuing = open.filter((x) => x.detail['kind'] === 'issuing');
      assert.equal(issuing.length, 1);
      assert.equal(issuing[0]!.severity, 'high');
      assert.equal(r.checks['ca-expiring']!.new, open.length);
    });
  });
}

scenario('sqlite', false);
scenario('postgres', true);
