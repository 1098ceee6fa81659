/**
 * The OperatorStore contract, as a suite parameterised by a store factory: every back end (SQLite
 * now, PostgreSQL for issue #17) runs exactly these tests (`storeSuite('postgres', factory)`).
 * Each test gets a fresh, migrated, empty store.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { CardRow, NewCard, OperatorStore } from '../../src/operator/store/types.js';
import { SCHEMA_VERSION } from '../../src/operator/store/index.js';
import { estStoreCases } from './store-est-suite.js';
import { fleetCases } from './store-suite-fleet.js';
import { campaignStoreSuite } from './campaign-store-suite.js';
import { enrolBatchCases } from './store-enrol-batch-suite.js';
import { enrolReadsCases } from './store-enrol-reads-suite.js';

import type { StoreFactory } from './store-factory.js';
export type { StoreFactory } from './store-factory.js';

const T0 = 1_700_000_000_000;

function uid(n: number): Uint8Array {
  const u = new Uint8Array(16);
  new DataView(u.buffer).setUint32(12, n);
  return u;
}

async function withStore(f: StoreFactory, fn: (s: OperatorStore, h: { reopen?: () => Promise<OperatorStore> }) => Promise<void>): Promise<void> {
  const { store, dispose, reopen } = await f.create();
  try {
    await fn(store, { reopen });
  } finally {
    await dispose();
  }
}

async function addCaAndBatch(s: OperatorStore): Promise<{ caId: string; batchId: string }> {
  const caId = randomUUID();
  await s.putCa({ id: caId, role: 'issuing', certDer: Uint8Array.of(0x30, 1), keyRef: 'file:ca.key', notAfter: T0 + 1e10, createdAt: T0 });
  const mId = randomUUID();
  await s.addManufacturerCa({ id: mId, name: 'm', certDer: Uint8Array.of(0x30, 2), fingerprint: 'f1', notAfter: T0 + 1e10, createdAt: T0 });
  const batchId = randomUUID();
  await s.addManifestBatch({ id: batchId, manufacturerCaId: mId, name: 'b', count: 0, importedBy: 'test', importedAt: T0 });
  return { caId, batchId };
}

function newCard(n: number, batchId: string, extra: Partial<NewCard> = {}): NewCard {
  return {
    id: randomUUID(),
    uid: uid(n),
    batchId,
    attestCertDer: Uint8Array.of(0x30, n & 0xff),
    attestSpkiSha256: new Uint8Array(32).fill(n & 0xff),
    lifecycle: 'manifest',
    kvn: 0x30,
    transportKeyId: null,
    labels: {},
    profile: {},
    createdAt: T0 + n,
    ...extra,
  };
}

async function addJob(s: OperatorStore, card: CardRow, kind = 'lock', extra: { maxAttempts?: number; deadlineAt?: number | null; idem?: string | null; at?: number } = {}) {
  return s.insertJob({
    id: randomUUID(),
    cardId: card.id,
    kind,
    params: { a: 1 },
    maxAttempts: extra.maxAttempts ?? 3,
    deadlineAt: extra.deadlineAt ?? null,
    idempotencyKey: extra.idem ?? null,
    createdBy: 'test',
    createdAt: extra.at ?? T0,
  });
}

export function storeSuite(name: string, factory: StoreFactory): void {
  describe(`OperatorStore contract (${name})`, () => {
    fleetCases(factory); // console (issue #16): store-suite-fleet.ts
    test('migrations run once and record the schema version; reopening keeps the data', async () => {
      await withStore(factory, async (s, h) => {
        assert.equal(await s.schemaVersion(), SCHEMA_VERSION);
        await s.setMeta('k', 'v1');
        await s.setMeta('k', 'v2');
        assert.equal(await s.getMeta('k'), 'v2');
        assert.equal(await s.getMeta('absent'), null);
        if (h.reopen) {
          const again = await h.reopen();
          assert.equal(await again.schemaVersion(), SCHEMA_VERSION);
          assert.equal(await again.getMeta('k'), 'v2');
        }
      });
    });

    test('cards: bytes come back as plain Uint8Array, JSON as objects, times as epoch ms; UID unique', async () => {
      await withStore(factory, async (s) => {
        const { batchId } = await addCaAndBatch(s);
        const c = newCard(1, batchId, { labels: { site: 'lyon', tier: 'gold' }, profile: { dnsNames: ['a.example'] } });
        await s.insertCard(c);
        const got = (await s.cardByUid(uid(1)))!;
        assert.equal(Object.getPrototypeOf(got.uid), Uint8Array.prototype);
        assert.deepEqual(got.uid, uid(1));
        assert.deepEqual(got.labels, { site: 'lyon', tier: 'gold' });
        assert.deepEqual(got.profile, { dnsNames: ['a.example'] });
        assert.equal(got.createdAt, T0 + 1);
        assert.equal(got.lifecycle, 'manifest');
        await assert.rejects(s.insertCard({ ...newCard(1, batchId), id: randomUUID() }));
        assert.equal(await s.cardByUid(uid(99)), null);
        await s.updateCard(c.id, { lifecycle: 'locked', kvn: 0x31 }, T0 + 50);
        const upd = (await s.cardById(c.id))!;
        assert.equal(upd.lifecycle, 'locked');
        assert.equal(upd.kvn, 0x31);
        assert.equal(upd.updatedAt, T0 + 50);
        assert.deepEqual(await s.countCardsByLifecycle(), { locked: 1 });
      });
    });

    test("cards: what manifest import verified (attestFacts) round-trips, also through the enrolment's batched read; added once to a row without", async () => {
      await withStore(factory, async (s) => {
        const { batchId } = await addCaAndBatch(s);
        const facts = { keySpki: Uint8Array.of(0x30, 0x59, 1, 2, 3), anchorSha256: new Uint8Array(32).fill(7), validFrom: T0 - 1000, validTo: T0 + 9e9 };
        await s.insertCard(newCard(1, batchId, { attestFacts: facts }));
        await s.insertCard(newCard(2, batchId));
        const got = (await s.cardByUid(uid(1)))!;
        assert.deepEqual(got.attestFacts, facts);
        assert.equal(Object.getPrototypeOf(got.attestFacts!.keySpki), Uint8Array.prototype);
        const [read] = await s.cardsAndEnrolments([{ uid: uid(1), nonceHash: new Uint8Array(32) }]);
        assert.deepEqual(read!.card!.attestFacts, facts, 'the batched read (one statement with the enrolments on PostgreSQL) carries them');
        const bare = (await s.cardByUid(uid(2)))!;
        assert.equal(bare.attestFacts, null);
        assert.equal(await s.addCardAttestFacts(bare.id, facts), true);
        assert.deepEqual((await s.cardById(bare.id))!.attestFacts, facts);
        assert.equal(await s.addCardAttestFacts(bare.id, { ...facts, validTo: T0 }), false, 'never overwritten');
        assert.equal((await s.cardById(bare.id))!.attestFacts!.validTo, facts.validTo);
      });
    });

    test('card listing: keyset pagination by UID, filters by state, label and expiring certificates', async () => {
      await withStore(factory, async (s) => {
        const { batchId, caId } = await addCaAndBatch(s);
        for (let i = 1; i <= 25; i++) await s.insertCard(newCard(i, batchId, { lifecycle: i % 5 === 0 ? 'locked' : 'manifest', labels: i % 2 ? { site: 'lyon' } : { site: 'nice' } }));
        const seen: string[] = [];
        let after: Uint8Array | null = null;
        for (;;) {
          const page: CardRow[] = await s.listCards({}, after, 10);
          for (const c of page) seen.push(Buffer.from(c.uid).toString('hex'));
          if (page.length < 10) break;
          after = page[page.length - 1]!.uid;
        }
        assert.equal(seen.length, 25);
        assert.deepEqual(seen, [...seen].sort());
        assert.equal(new Set(seen).size, 25);
        assert.equal((await s.listCards({ lifecycle: 'locked' }, null, 100)).length, 5);
        assert.equal((await s.listCards({ label: 'site=nice' }, null, 100)).length, 12);
        assert.equal((await s.listCards({ label: 'site' }, null, 100)).length, 25);
        assert.equal((await s.listCards({ label: 'absent' }, null, 100)).length, 0);
        // expiring: a good certificate of card 3 ends before the bound, a revoked one of card 4 does not count
        const c3 = (await s.cardByUid(uid(3)))!;
        const c4 = (await s.cardByUid(uid(4)))!;
        for (const [card, status, serial] of [[c3, 'good', 1], [c4, 'revoked', 2]] as const) {
          const idn = { id: randomUUID(), cardId: card.id, slot: 1, alg: 'p256', spkiDer: Uint8Array.of(serial), spkiSha256: new Uint8Array(32).fill(serial), state: 'active', attestedAt: T0, createdAt: T0 };
          await s.insertIdentity(idn);
          await s.insertCertificate({
            serial: Uint8Array.of(0x40, serial), identityId: idn.id, cardId: card.id, caId, jobId: null, enrolmentId: null, subject: 'CN=x', san: {},
            notBefore: T0, notAfter: T0 + 1000, der: Uint8Array.of(0x30), status, revokedAt: status === 'revoked' ? T0 : null, reason: null, createdAt: T0,
          });
        }
        const exp = await s.listCards({ expiringBefore: T0 + 2000 }, null, 100);
        assert.deepEqual(exp.map((c) => c.id), [c3.id]);
      });
    });

    test('identities: one SPKI hash binds to one identity (unique index)', async () => {
      await withStore(factory, async (s) => {
        const { batchId } = await addCaAndBatch(s);
        const a = newCard(1, batchId);
        const b = newCard(2, batchId);
        await s.insertCard(a);
        await s.insertCard(b);
        const h = new Uint8Array(32).fill(7);
        await s.insertIdentity({ id: randomUUID(), cardId: a.id, slot: 1, alg: 'p256', spkiDer: Uint8Array.of(1), spkiSha256: h, state: 'generated', attestedAt: T0, createdAt: T0 });
        await assert.rejects(s.insertIdentity({ id: randomUUID(), cardId: b.id, slot: 1, alg: 'p256', spkiDer: Uint8Array.of(1), spkiSha256: h, state: 'generated', attestedAt: T0, createdAt: T0 }));
        assert.equal((await s.identityBySpkiHash(h))!.cardId, a.id);
        assert.equal((await s.identitiesOfCard(b.id)).length, 0);
      });
    });

    test('certificates: revoke once, CRL entries exclude expired ones, cRLNumber only goes up', async () => {
      await withStore(factory, async (s) => {
        const { batchId, caId } = await addCaAndBatch(s);
        const card = newCard(1, batchId);
        await s.insertCard(card);
        const idn = { id: randomUUID(), cardId: card.id, slot: 1, alg: 'p256', spkiDer: Uint8Array.of(1), spkiSha256: new Uint8Array(32).fill(1), state: 'active', attestedAt: T0, createdAt: T0 };
        await s.insertIdentity(idn);
        const mk = (serial: number, notAfter: number) => ({
          serial: Uint8Array.of(0x40, serial), identityId: idn.id, cardId: card.id, caId, jobId: 'job-1', enrolmentId: null, subject: 'CN=x', san: { dnsNames: ['a'] },
          notBefore: T0, notAfter, der: Uint8Array.of(0x30, serial), status: 'good' as const, revokedAt: null, reason: null, createdAt: T0,
        });
        await s.insertCertificate(mk(1, T0 + 10_000));
        await s.insertCertificate(mk(2, T0 + 10));
        assert.equal(await s.revokeCertificate(Uint8Array.of(0x40, 1), 'keyCompromise', T0 + 5), true);
        assert.equal(await s.revokeCertificate(Uint8Array.of(0x40, 1), 'keyCompromise', T0 + 6), false, 'second revoke refused');
        assert.equal(await s.revokeCertificate(Uint8Array.of(0x40, 2), 'superseded', T0 + 5), true);
        const entries = await s.revokedCertificates(caId, T0 + 100);
        assert.deepEqual(entries.map((e) => Buffer.from(e.serial).toString('hex')), ['4001'], 'the expired revoked certificate is left out');
        assert.equal(entries[0]!.reason, 'keyCompromise');
        assert.equal((await s.certificatesOfJob('job-1')).length, 2);
        const n1 = await s.nextCrlNumber(caId);
        const n2 = await s.tx((t) => t.nextCrlNumber(caId));
        assert.equal(n2, n1 + 1);
        assert.equal(await s.storeCrl(caId, n2, Uint8Array.of(2), T0, T0 + 1), true);
        assert.equal(await s.storeCrl(caId, n1, Uint8Array.of(1), T0, T0 + 1), false, 'an older CRL never replaces a newer one');
        const ca = (await s.getCa(caId))!;
        assert.equal(ca.crlBuiltNumber, n2);
        assert.deepEqual(ca.crlDer, Uint8Array.of(2));
      });
    });

    test('enrolment nonces: stored as hash, finished once (single use)', async () => {
      await withStore(factory, async (s) => {
        const { batchId } = await addCaAndBatch(s);
        const card = newCard(1, batchId);
        await s.insertCard(card);
        const h = new Uint8Array(32).fill(9);
        const id = randomUUID();
        await s.insertEnrolment({ id, cardId: card.id, jobId: null, mode: 'admin', nonceHash: h, status: 'open', errorCode: null, expiresAt: T0 + 1, startedAt: T0, finishedAt: null });
        assert.equal((await s.enrolmentByNonceHash(h))!.status, 'open');
        assert.equal(await s.finishEnrolment(id, 'succeeded', null, T0), true);
        assert.equal(await s.finishEnrolment(id, 'succeeded', null, T0), false);
        assert.equal((await s.enrolmentByNonceHash(h))!.status, 'succeeded');
      });
    });

    test('transactions: a throw rolls everything back; a commit is visible outside', async () => {
      await withStore(factory, async (s) => {
        const { batchId } = await addCaAndBatch(s);
        await assert.rejects(
          s.tx(async (t) => {
            await t.insertCard(newCard(1, batchId));
            assert.ok(await t.cardByUid(uid(1)), 'visible inside the transaction');
            throw new Error('boom');
          }),
          /boom/,
        );
        assert.equal(await s.cardByUid(uid(1)), null, 'rolled back');
        await s.tx(async (t) => t.insertCard(newCard(2, batchId)));
        assert.ok(await s.cardByUid(uid(2)));
      });
    });

    test('jobs: claim honours per-card order and leases; fencing by owner and attempt', async () => {
      await withStore(factory, async (s) => {
        const { batchId } = await addCaAndBatch(s);
        const a = newCard(1, batchId);
        const b = newCard(2, batchId);
        await s.insertCard(a);
        await s.insertCard(b);
        const a1 = await addJob(s, (await s.cardById(a.id))!, 'lock');
        const a2 = await addJob(s, (await s.cardById(a.id))!, 'unlock');
        const b1 = await addJob(s, (await s.cardById(b.id))!, 'lock');
        assert.ok(a2.seq > a1.seq && b1.seq > a2.seq);
        const kinds = ['lock', 'unlock'];
        const c1 = (await s.claimJob({ owner: 'r1', now: T0, leaseMs: 1000, kinds }))!;
        assert.equal(c1.id, a1.id);
        assert.equal(c1.status, 'in_progress');
        assert.equal(c1.attempt, 1);
        assert.equal(c1.leaseUntil, T0 + 1000);
        // a2 waits behind a1 (same card); b1 is free
        const c2 = (await s.claimJob({ owner: 'r2', now: T0, leaseMs: 1000, kinds }))!;
        assert.equal(c2.id, b1.id);
        assert.equal(await s.claimJob({ owner: 'r2', now: T0, leaseMs: 1000, kinds }), null);
        // kinds filter
        assert.equal(await s.claimJob({ owner: 'r3', now: T0 + 5000, leaseMs: 1000, kinds: ['terminate'] }), null);
        // lease expiry: another owner takes a1 over with attempt 2; the first owner is fenced off
        const again = (await s.claimJob({ owner: 'r3', now: T0 + 1001, leaseMs: 1000, kinds }))!;
        assert.equal(again.id, a1.id);
        assert.equal(again.attempt, 2);
        assert.equal(await s.renewLease(a1.id, 'r1', 1, T0 + 9999, T0 + 1002), false);
        assert.equal(await s.saveProgress(a1.id, 'r1', 1, { step: 3 }, T0 + 1002), false);
        assert.equal(await s.finishJob(a1.id, 'r1', 1, { status: 'succeeded', now: T0 + 1002 }), false);
        assert.equal(await s.saveProgress(a1.id, 'r3', 2, { step: 4 }, T0 + 1002), true);
        assert.equal(await s.finishJob(a1.id, 'r3', 2, { status: 'succeeded', result: { ok: true }, now: T0 + 1003 }), true);
        const done = (await s.jobById(a1.id))!;
        assert.equal(done.status, 'succeeded');
        assert.deepEqual(done.result, { ok: true });
        assert.deepEqual(done.progress, { step: 4 });
        assert.equal(done.leaseOwner, null);
        // now a2 is claimable
        assert.equal((await s.claimJob({ owner: 'r3', now: T0 + 1004, leaseMs: 1000, kinds }))!.id, a2.id);
        assert.deepEqual(await s.countJobsByStatus(), { succeeded: 1, in_progress: 2 });
      });
    });

    test('jobs: requeue with back-off, expiry of abandoned and overdue jobs, cancel, idempotency key unique', async () => {
      await withStore(factory, async (s) => {
        const { batchId } = await addCaAndBatch(s);
        const a = newCard(1, batchId);
        await s.insertCard(a);
        const card = (await s.cardById(a.id))!;
        const j = await addJob(s, card, 'lock', { maxAttempts: 1, idem: 'tok/k1' });
        await assert.rejects(addJob(s, card, 'lock', { idem: 'tok/k1' }), 'idempotency key unique');
        assert.equal((await s.jobByIdempotencyKey('tok/k1'))!.id, j.id);
        const c = (await s.claimJob({ owner: 'r', now: T0, leaseMs: 100, kinds: ['lock'] }))!;
        assert.equal(await s.requeueJob(c.id, 'r', 1, T0 + 500, 'ERR_X', 'transient', T0 + 1), true);
        assert.equal(await s.claimJob({ owner: 'r', now: T0 + 499, leaseMs: 100, kinds: ['lock'] }), null, 'not before its back-off');
        const c2 = (await s.claimJob({ owner: 'r', now: T0 + 500, leaseMs: 100, kinds: ['lock'] }))!;
        assert.equal(c2.attempt, 2);
        // the holder dies; attempts exhausted (2 > max 1): not claimable, listed for expiry
        assert.equal(await s.claimJob({ owner: 'q', now: T0 + 700, leaseMs: 100, kinds: ['lock'] }), null);
        const exp = await s.jobsToExpire(T0 + 700, 10);
        assert.deepEqual(exp.map((x) => x.id), [j.id]);
        assert.equal(await s.expireJob(j.id, 2, { status: 'failed', errorCode: 'ERR_OP_JOB_ABANDONED', now: T0 + 700 }), true);
        assert.equal((await s.jobById(j.id))!.status, 'failed');
        // overdue queued job times out; a queued job can be canceled, a finished one not
        const late = await addJob(s, card, 'lock', { deadlineAt: T0 + 800 });
        assert.deepEqual((await s.jobsToExpire(T0 + 801, 10)).map((x) => x.id), [late.id]);
        const k = await addJob(s, card, 'unlock');
        assert.equal(await s.cancelJob(k.id, T0), true);
        assert.equal(await s.cancelJob(k.id, T0), false);
        assert.equal(await s.cancelJob(j.id, T0), false);
        // listing newest first with keyset on seq
        const all = await s.listJobs({ cardId: card.id }, null, 10);
        assert.deepEqual(all.map((x) => x.seq), [...all.map((x) => x.seq)].sort((p, q) => q - p));
        const page2 = await s.listJobs({ cardId: card.id }, all[0]!.seq, 10);
        assert.equal(page2.length, all.length - 1);
        assert.equal((await s.listJobs({ status: 'canceled' }, null, 10)).length, 1);
      });
    });

    test('API tokens (hash only) and idempotency reservations', async () => {
      await withStore(factory, async (s) => {
        await s.insertApiToken({ id: 't1', name: 'n', role: 'viewer', secretHash: new Uint8Array(32).fill(1), createdAt: T0, lastUsedAt: null, revokedAt: null });
        assert.equal((await s.apiTokenById('t1'))!.role, 'viewer');
        assert.equal(await s.revokeApiToken('t1', T0), true);
        assert.equal(await s.revokeApiToken('t1', T0), false);
        assert.equal(await s.reserveIdempotency({ principal: 't1', key: 'k', requestHash: Uint8Array.of(1), createdAt: T0 }), null);
        const again = (await s.reserveIdempotency({ principal: 't1', key: 'k', requestHash: Uint8Array.of(2), createdAt: T0 }))!;
        assert.equal(again.status, 0);
        assert.deepEqual(again.requestHash, Uint8Array.of(1));
        await s.completeIdempotency('t1', 'k', 202, { body: { x: 1 } });
        const done = (await s.reserveIdempotency({ principal: 't1', key: 'k', requestHash: Uint8Array.of(1), createdAt: T0 }))!;
        assert.equal(done.status, 202);
        assert.deepEqual(done.response, { body: { x: 1 } });
        // another principal has its own key space
        assert.equal(await s.reserveIdempotency({ principal: 't2', key: 'k', requestHash: Uint8Array.of(1), createdAt: T0 }), null);
        await s.releaseIdempotency('t2', 'k');
        assert.equal(await s.reserveIdempotency({ principal: 't2', key: 'k', requestHash: Uint8Array.of(1), createdAt: T0 }), null);
      });
    });

    test('per-card counters only go up (allocated before use; atLeast jumps ahead)', async () => {
      await withStore(factory, async (s) => {
        const { batchId } = await addCaAndBatch(s);
        const c = newCard(1, batchId);
        await s.insertCard(c);
        assert.equal((await s.cardById(c.id))!.denyListNumber, 0);
        assert.equal(await s.allocateCardCounter(c.id, 'denyListNumber'), 1);
        assert.equal(await s.allocateCardCounter(c.id, 'denyListNumber'), 2);
        assert.equal(await s.allocateCardCounter(c.id, 'denyListNumber', 10), 10);
        assert.equal(await s.allocateCardCounter(c.id, 'denyListNumber', 3), 11);
        assert.equal(await s.allocateCardCounter(c.id, 'timeAnchorCounter'), 1);
        const row = (await s.cardById(c.id))!;
        assert.deepEqual([row.denyListNumber, row.timeAnchorCounter], [11, 1]);
        await assert.rejects(s.allocateCardCounter('nope', 'denyListNumber'));
      });
    });

    test('identities: state and deletion due; certificates superseded (not revoked, not on the CRL)', async () => {
      await withStore(factory, async (s) => {
        const { caId, batchId } = await addCaAndBatch(s);
        const c = newCard(1, batchId);
        await s.insertCard(c);
        const id = randomUUID();
        await s.insertIdentity({ id, cardId: c.id, slot: 1, alg: 'p256', spkiDer: Uint8Array.of(1), spkiSha256: new Uint8Array(32).fill(7), state: 'active', attestedAt: T0, createdAt: T0 });
        await s.updateIdentity(id, { state: 'retired', deleteAfter: T0 + 1000 }, T0);
        assert.deepEqual(await s.identitiesDueForDeletion(T0 + 999, 10), []);
        const due = await s.identitiesDueForDeletion(T0 + 1000, 10);
        assert.deepEqual(due.map((i) => [i.id, i.state, i.deleteAfter, i.updatedAt]), [[id, 'retired', T0 + 1000, T0]]);
        await s.updateIdentity(id, { state: 'deleted', deleteAfter: null }, T0 + 2000);
        assert.deepEqual(await s.identitiesDueForDeletion(T0 + 5000, 10), []);
        const serial = Uint8Array.of(9, 9);
        await s.insertCertificate({ serial, identityId: id, cardId: c.id, caId, jobId: null, enrolmentId: null, subject: 'CN=x', san: {}, notBefore: T0, notAfter: T0 + 1e9, der: Uint8Array.of(0x30), status: 'good', revokedAt: null, reason: null, createdAt: T0 });
        assert.equal(await s.supersedeCertificate(serial, T0), true);
        assert.equal(await s.supersedeCertificate(serial, T0), false);
        assert.equal((await s.certificateBySerial(serial))!.status, 'superseded');
        assert.equal(await s.revokeCertificate(serial, 'keyCompromise', T0), false, 'a superseded certificate is not revoked again');
        assert.deepEqual(await s.revokedCertificates(caId, T0), []);
      });
    });

    test('device hosts: one credential hash per host, replaced by a new one; last seen', async () => {
      await withStore(factory, async (s) => {
        await s.putHostCredential({ id: 'dev-1', name: 'dev-1', credentialHash: new Uint8Array(32).fill(1), createdAt: T0 });
        await s.putHostCredential({ id: 'dev-1', name: 'dev one', credentialHash: new Uint8Array(32).fill(2), createdAt: T0 + 5 });
        const h = (await s.hostById('dev-1'))!;
        assert.deepEqual([h.name, h.credentialHash, h.createdAt, h.revokedAt], ['dev one', new Uint8Array(32).fill(2), T0, null]);
        await s.touchHost('dev-1', '127.0.0.1', T0 + 9);
        assert.equal((await s.hostById('dev-1'))!.lastSeenAt, T0 + 9);
        assert.equal(await s.hostById('nope'), null);
        assert.deepEqual((await s.listHosts()).map((x) => x.id), ['dev-1']);
      });
    });

    test('card audit logs: entries once per sequence number, the head replaced', async () => {
      await withStore(factory, async (s) => {
        const { batchId } = await addCaAndBatch(s);
        const c = newCard(1, batchId);
        await s.insertCard(c);
        const e = (seq: number) => ({ cardId: c.id, seq, type: '02', body: Uint8Array.of(seq), prevHash: new Uint8Array(32), receivedAt: T0 });
        await s.insertAuditEntries([e(1), e(2)]);
        await s.insertAuditEntries([e(2), e(3)]);
        assert.deepEqual((await s.auditEntriesOf(c.id, 0, 10)).map((x) => x.seq), [1, 2, 3]);
        assert.deepEqual((await s.auditEntriesOf(c.id, 1, 1)).map((x) => x.seq), [2]);
        assert.equal(await s.auditHeadOf(c.id), null);
        await s.putAuditHead({ cardId: c.id, seq: 3, headHash: new Uint8Array(32).fill(3), signature: Uint8Array.of(1), verified: true, time: 7, receivedAt: T0 });
        await s.putAuditHead({ cardId: c.id, seq: 4, headHash: new Uint8Array(32).fill(4), signature: Uint8Array.of(2), verified: true, time: 8, receivedAt: T0 });
        const h = (await s.auditHeadOf(c.id))!;
        assert.deepEqual([h.seq, h.headHash[0], h.verified, h.time], [4, 4, true, 8]);
      });
    });

    test('a job may be queued for later (notBefore)', async () => {
      await withStore(factory, async (s) => {
        const { batchId } = await addCaAndBatch(s);
        const c = newCard(1, batchId);
        await s.insertCard(c);
        await s.insertJob({ id: randomUUID(), cardId: c.id, kind: 'lock', params: {}, maxAttempts: 1, deadlineAt: null, idempotencyKey: null, createdBy: 't', createdAt: T0, notBefore: T0 + 100 });
        assert.equal(await s.claimJob({ owner: 'a', now: T0 + 99, leaseMs: 10, kinds: ['lock'] }), null);
        assert.ok(await s.claimJob({ owner: 'a', now: T0 + 100, leaseMs: 10, kinds: ['lock'] }));
      });
    });

    test('agent routing: a job whose card\'s agent recently polled another node is left to that node', async () => {
      await withStore(factory, async (s) => {
        const { batchId } = await addCaAndBatch(s);
        const c = newCard(1, batchId);
        const free = newCard(2, batchId);
        await s.insertCard(c);
        await s.insertCard(free);
        await s.putHostCredential({ id: 'dev-1', name: 'dev-1', credentialHash: new Uint8Array(32).fill(1), createdAt: T0 });
        await s.updateCard(c.id, { hostId: 'dev-1' }, T0);
        await s.touchHost('dev-1', null, T0 + 10, 'node-a');
        const h = (await s.hostById('dev-1'))!;
        assert.deepEqual([h.nodeId, h.nodeSeenAt], ['node-a', T0 + 10]);
        const job = (cardId: string) => s.insertJob({ id: randomUUID(), cardId, kind: 'lock', params: {}, maxAttempts: 1, deadlineAt: null, idempotencyKey: null, createdBy: 't', createdAt: T0 });
        const routed = await job(c.id);
        const other = await job(free.id);
        const claim = (node: string, attachedAfter: number) => s.claimJob({ owner: node, now: T0 + 20, leaseMs: 1000, kinds: ['lock'], node: { id: node, attachedAfter } });
        // node B: the card's agent polls A (seen at T0+10, after T0): only the card without a host
        assert.equal((await claim('node-b', T0))!.id, other.id);
        assert.equal(await claim('node-b', T0), null, "node B leaves the routed card's job to node A");
        // node A claims it; or anyone once A's attachment is older than the window
        const rows = await s.listJobs({}, null, 10);
        assert.equal(rows.find((r) => r.id === routed.id)!.status, 'queued');
        assert.equal((await claim('node-b', T0 + 10))!.id, routed.id, 'a stale attachment routes nothing');
        await s.touchHost('dev-1', null, T0 + 30);
        assert.equal((await s.hostById('dev-1'))!.nodeId, 'node-a', 'a poll without a node keeps the attachment');
      });
    });

    test('concurrent claims from two store handles never hand out the same job', async () => {
      await withStore(factory, async (s, h) => {
        const { batchId } = await addCaAndBatch(s);
        const cards: CardRow[] = [];
        for (let i = 1; i <= 20; i++) {
          const c = newCard(i, batchId);
          await s.insertCard(c);
          cards.push((await s.cardById(c.id))!);
        }
        for (const c of cards) await addJob(s, c, 'lock');
        const other = h.reopen ? await h.reopen() : s;
        const claimed: string[] = [];
        const claimer = async (st: OperatorStore, owner: string) => {
          for (;;) {
            const j = await st.claimJob({ owner, now: T0, leaseMs: 10_000, kinds: ['lock'] });
            if (!j) return;
            claimed.push(j.id);
          }
        };
        await Promise.all([claimer(s, 'a'), claimer(other, 'b'), claimer(s, 'c')]);
        assert.equal(claimed.length, 20);
        assert.equal(new Set(claimed).size, 20);
      });
    });
    estStoreCases(factory);
    enrolBatchCases(factory); // enrolment throughput (issue #17): store-enrol-batch-suite.ts
    enrolReadsCases(factory); // enrolment reads in batches (issue #17): store-enrol-reads-suite.ts
  });
  campaignStoreSuite(name, factory);
}
