/**
 * The OperatorStore contract of the batched enrolment writes (store/enrol-batch.ts), run by
 * store-suite.ts on every back end (SQLite and PostgreSQL): N nonces in one statement, written only
 * for cards that exist and are not terminated; N persist steps in one transaction, each answered as
 * its own transaction would be (a used nonce is a replay, a key bound to another card is refused and
 * its nonce stays open, a card's existing identity is reused, the refused ones write nothing); the
 * batch shapes that depend on order inside the batch throw EnrolmentBatchConflict and write nothing;
 * two stores (two nodes) persisting one nonce at once commit it once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import type { CardRow, IdentityRow, NewCard, OperatorStore } from '../../src/operator/store/types.js';
import { storeRunner, type StoreFactory } from './store-factory.js';
import { EnrolmentBatchConflict, type EnrolmentPersist, type NewEnrolment } from '../../src/operator/store/enrol-batch.js';


const T0 = 1_700_000_000_000;

export async function setup(s: OperatorStore, n: number): Promise<{ caId: string; cards: CardRow[] }> {
  const caId = randomUUID();
  await s.putCa({ id: caId, role: 'issuing', certDer: Uint8Array.of(0x30, 1), keyRef: 'file:ca.key', notAfter: T0 + 1e10, createdAt: T0 });
  const mId = randomUUID();
  await s.addManufacturerCa({ id: mId, name: 'm', certDer: Uint8Array.of(0x30, 2), fingerprint: 'f1', notAfter: T0 + 1e10, createdAt: T0 });
  const batchId = randomUUID();
  await s.addManifestBatch({ id: batchId, manufacturerCaId: mId, name: 'b', count: n, importedBy: 'test', importedAt: T0 });
  const cards: CardRow[] = [];
  for (let i = 0; i < n; i++) {
    const c: NewCard = {
      id: randomUUID(),
      uid: new Uint8Array(randomBytes(16)),
      batchId,
      attestCertDer: Uint8Array.of(0x30, i),
      attestSpkiSha256: new Uint8Array(32).fill(i),
      lifecycle: 'manifest',
      kvn: 0x30,
      transportKeyId: null,
      labels: {},
      profile: {},
      createdAt: T0,
    };
    await s.insertCard(c);
    cards.push((await s.cardByUid(c.uid))!);
  }
  return { caId, cards };
}

export function nonce(uid: Uint8Array, at = T0): NewEnrolment {
  return {
    uid,
    row: { id: randomUUID(), jobId: null, mode: 'admin', nonceHash: new Uint8Array(randomBytes(32)), status: 'open', errorCode: null, expiresAt: at + 600_000, startedAt: at, finishedAt: null },
  };
}

export function persist(caId: string, card: CardRow, enrolmentId: string, spkiSha256: Uint8Array, now = T0 + 10): EnrolmentPersist {
  const identity: IdentityRow = {
    id: randomUUID(),
    cardId: card.id,
    slot: 1,
    alg: 'p256',
    spkiDer: Uint8Array.of(0x30, 0x59),
    spkiSha256,
    state: 'generated',
    attestedAt: now,
    createdAt: now,
  };
  const serial = new Uint8Array(randomBytes(16));
  return {
    enrolmentId,
    cardId: card.id,
    cardWasManifest: card.lifecycle === 'manifest',
    now,
    identity,
    certificate: {
      serial,
      cardId: card.id,
      caId,
      jobId: null,
      enrolmentId,
      subject: 'CN=x',
      san: { dnsNames: ['a.example'], ipAddresses: [] },
      notBefore: now,
      notAfter: now + 1e9,
      der: Uint8Array.of(0x30, 0),
      status: 'good',
      revokedAt: null,
      reason: null,
      createdAt: now,
    },
    event: { at: now, actor: 'test', kind: 'certificate.issued', cardId: card.id, subject: Buffer.from(serial).toString('hex'), details: { enrolment: enrolmentId } },
  };
}

async function issued(s: OperatorStore, n: NewEnrolment): Promise<string> {
  const [row] = await s.openEnrolments([n]);
  assert.ok(row);
  return row.id;
}

export function enrolBatchCases(factory: StoreFactory): void {
  const withStore = storeRunner(factory);

  test('openEnrolments: one statement for many; unknown and terminated UIDs get null and write nothing', () =>
    withStore(async (s) => {
      const { cards } = await setup(s, 4);
      await s.updateCard(cards[2]!.id, { lifecycle: 'terminated' }, T0);
      const items = [nonce(cards[0]!.uid), nonce(new Uint8Array(16).fill(0xee)), nonce(cards[2]!.uid), nonce(cards[1]!.uid), nonce(cards[3]!.uid)];
      const rows = await s.openEnrolments(items);
      assert.deepEqual(
        rows.map((r) => r?.cardId ?? null),
        [cards[0]!.id, null, null, cards[1]!.id, cards[3]!.id],
      );
      for (const [i, it] of items.entries()) {
        const stored = await s.enrolmentByNonceHash(it.row.nonceHash);
        if (rows[i]) {
          assert.equal(stored?.id, it.row.id);
          assert.equal(stored?.status, 'open');
          assert.equal(stored?.expiresAt, it.row.expiresAt);
        } else assert.equal(stored, null, `nothing written for item ${i}`);
      }
      assert.deepEqual(await s.openEnrolments([]), []);
    }));

  test('persistEnrolments: each answered as alone — replay, key bound elsewhere (nonce left open), identity reused; refused ones write nothing', () =>
    withStore(async (s) => {
      const { caId, cards } = await setup(s, 4);
      const [a, b, c, d] = cards as [CardRow, CardRow, CardRow, CardRow];
      // card b already holds key K (an earlier enrolment); card c's nonce was used already
      const keyK = new Uint8Array(32).fill(0x4b);
      const eb0 = await issued(s, nonce(b.uid));
      const first = await s.persistEnrolments([persist(caId, b, eb0, keyK)]);
      assert.equal(first[0]!.ok, true);
      const ec = await issued(s, nonce(c.uid));
      assert.equal(await s.finishEnrolment(ec, 'refused', 'ERR_X', T0), true);

      const ea = await issued(s, nonce(a.uid));
      const eb = await issued(s, nonce(b.uid));
      const ed = await issued(s, nonce(d.uid));
      const ed2 = await issued(s, nonce(d.uid));
      const keyD = new Uint8Array(32).fill(0x44);
      const items = [
        persist(caId, a, ea, new Uint8Array(32).fill(0x41)), // ok
        persist(caId, c, ec, new Uint8Array(32).fill(0x43)), // replay
        persist(caId, d, ed, keyK), // key bound to card b
        persist(caId, b, eb, keyK), // b again with its own key: reuses its identity
        persist(caId, d, ed2, keyD), // ok
      ];
      const out = await s.persistEnrolments(items);
      assert.deepEqual(
        out.map((o) => (o.ok ? 'ok' : o.refusal)),
        ['ok', 'nonce_replay', 'key_bound_elsewhere', 'ok', 'ok'],
      );
      const reused = out[3]!;
      assert.ok(reused.ok && first[0]!.ok);
      assert.equal(reused.identity.id, first[0]!.identity.id, "b's existing identity is reused");
      assert.equal(reused.certificate.identityId, first[0]!.identity.id);
      // the reused identity is the row as the store's own reader gives it (numbers as numbers)
      assert.deepEqual(reused.identity, (await s.identitiesOfCard(b.id))[0]);
      assert.equal(typeof reused.identity.createdAt, 'number');
      // what was written, and what was not
      assert.equal((await s.certificatesOfCard(a.id)).length, 1);
      assert.equal((await s.certificatesOfCard(c.id)).length, 0, 'the replay wrote nothing');
      assert.deepEqual((await s.certificatesOfCard(d.id)).map((x) => x.enrolmentId), [ed2], 'the bound-elsewhere one wrote nothing');
      assert.equal((await s.identitiesOfCard(b.id)).length, 1);
      assert.equal((await s.identitiesOfCard(d.id)).length, 1);
      assert.equal((await s.certificatesOfCard(b.id)).length, 2);
      const enrol = async (card: CardRow) => (await s.listEvents(card.id, 50)).filter((e) => e.kind === 'certificate.issued').length;
      assert.equal(await enrol(a), 1);
      assert.equal(await enrol(c), 0);
      assert.equal(await enrol(d), 1);
      for (const card of [a, b, d]) assert.equal((await s.cardById(card.id))!.lifecycle, 'enrolled');
      assert.equal((await s.cardById(c.id))!.lifecycle, 'manifest');
      // the nonces: consumed for the ones that passed, still open for the bound-elsewhere one
      const consumed = await s.persistEnrolments([persist(caId, a, ea, new Uint8Array(32).fill(0x61))]);
      assert.deepEqual(consumed.map((o) => (o.ok ? 'ok' : o.refusal)), ['nonce_replay'], 'a consumed nonce is single use');
      const still = await s.persistEnrolments([persist(caId, d, ed, new Uint8Array(32).fill(0x62))]);
      assert.deepEqual(still.map((o) => (o.ok ? 'ok' : o.refusal)), ['ok'], 'the refused key left its nonce open');
    }));

  test('persistEnrolments: one enrolment twice, or one new key from two cards, in a batch: EnrolmentBatchConflict, nothing written', () =>
    withStore(async (s) => {
      const { caId, cards } = await setup(s, 2);
      const [a, b] = cards as [CardRow, CardRow];
      const ea = await issued(s, nonce(a.uid));
      const eb = await issued(s, nonce(b.uid));
      await assert.rejects(
        s.persistEnrolments([persist(caId, a, ea, new Uint8Array(32).fill(1)), persist(caId, a, ea, new Uint8Array(32).fill(2))]),
        EnrolmentBatchConflict,
      );
      const k = new Uint8Array(32).fill(3);
      await assert.rejects(s.persistEnrolments([persist(caId, a, ea, k), persist(caId, b, eb, k)]), EnrolmentBatchConflict);
      assert.equal((await s.certificatesOfCard(a.id)).length, 0);
      assert.equal((await s.certificatesOfCard(b.id)).length, 0);
      // both nonces still open: each alone succeeds once
      assert.equal((await s.persistEnrolments([persist(caId, a, ea, k)]))[0]!.ok, true);
      assert.deepEqual((await s.persistEnrolments([persist(caId, b, eb, k)])).map((o) => (o.ok ? 'ok' : o.refusal)), ['key_bound_elsewhere']);
    }));

  test('persistEnrolments from two stores (two nodes) at once, one nonce in both batches: committed once', () =>
    withStore(async (s, reopen) => {
      assert.ok(reopen, 'the factory opens a second store on the same database');
      const other = await reopen();
      const { caId, cards } = await setup(s, 3);
      const [x, a, b] = cards as [CardRow, CardRow, CardRow];
      const ex = await issued(s, nonce(x.uid));
      const ea = await issued(s, nonce(a.uid));
      const eb = await issued(s, nonce(b.uid));
      const [oa, ob] = await Promise.all([
        s.persistEnrolments([persist(caId, x, ex, new Uint8Array(32).fill(0x78)), persist(caId, a, ea, new Uint8Array(32).fill(0x61))]),
        other.persistEnrolments([persist(caId, x, ex, new Uint8Array(32).fill(0x79)), persist(caId, b, eb, new Uint8Array(32).fill(0x62))]),
      ]);
      const xs = [oa[0]!, ob[0]!].map((o) => (o.ok ? 'ok' : o.refusal)).sort();
      assert.deepEqual(xs, ['nonce_replay', 'ok'], 'the shared nonce is consumed by one node only');
      assert.equal(oa[1]!.ok && ob[1]!.ok, true, 'the others commit');
      assert.equal((await s.certificatesOfCard(x.id)).length, 1, 'one certificate for the shared nonce');
      assert.equal((await s.identitiesOfCard(x.id)).length, 1);
      assert.equal((await s.listEvents(x.id, 50)).filter((e) => e.kind === 'certificate.issued').length, 1);
    }));
}
