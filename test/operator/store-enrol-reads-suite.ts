/**
 * The OperatorStore contract of the batched enrolment reads (store/enrol-reads.ts), run by
 * store-suite.ts on every back end (SQLite and PostgreSQL): cards by UID and enrolments by nonce hash
 * for many keys in one call, each key answered in order with the row the single-key read gives, or
 * null (unknown keys, duplicates, an empty list); and both reads of many completions in one call
 * (cardsAndEnrolments: one statement on PostgreSQL), each answered independently.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import type { CardRow, NewCard, OperatorStore } from '../../src/operator/store/types.js';
import { storeRunner, type StoreFactory } from './store-factory.js';

const T0 = 1_700_000_000_000;

async function cardsOf(s: OperatorStore, n: number): Promise<CardRow[]> {
  const out: CardRow[] = [];
  for (let i = 0; i < n; i++) {
    const c: NewCard = {
      id: randomUUID(),
      uid: new Uint8Array(randomBytes(16)),
      batchId: null,
      attestCertDer: Uint8Array.of(0x30, i),
      attestSpkiSha256: new Uint8Array(32).fill(i),
      lifecycle: 'manifest',
      kvn: 0x30,
      transportKeyId: null,
      labels: { n: String(i) },
      profile: {},
      createdAt: T0,
    };
    await s.insertCard(c);
    out.push((await s.cardByUid(c.uid))!);
  }
  return out;
}

export function enrolReadsCases(factory: StoreFactory): void {
  const withStore = storeRunner(factory);

  test('cardsByUids / enrolmentsByNonceHashes: many keys in one call, in order, the single-key rows, null for unknown keys, duplicates answered twice', () =>
    withStore(async (s) => {
      const cards = await cardsOf(s, 3);
      const unknown = new Uint8Array(16).fill(0xee);
      const got = await s.cardsByUids([cards[2]!.uid, unknown, cards[0]!.uid, cards[2]!.uid]);
      assert.deepEqual(got, [cards[2], null, cards[0], cards[2]]);
      assert.deepEqual(await s.cardsByUids([]), []);

      const hashes = [new Uint8Array(randomBytes(32)), new Uint8Array(randomBytes(32))];
      const ids: string[] = [];
      for (const [i, h] of hashes.entries()) {
        const id = randomUUID();
        ids.push(id);
        await s.insertEnrolment({ id, cardId: cards[i]!.id, jobId: null, mode: 'admin', nonceHash: h, status: 'open', errorCode: null, expiresAt: T0 + 600_000, startedAt: T0, finishedAt: null });
      }
      const rows = await s.enrolmentsByNonceHashes([hashes[1]!, new Uint8Array(32), hashes[0]!, hashes[1]!]);
      assert.deepEqual(rows, [await s.enrolmentByNonceHash(hashes[1]!), null, await s.enrolmentByNonceHash(hashes[0]!), await s.enrolmentByNonceHash(hashes[1]!)]);
      assert.deepEqual(rows.map((r) => r?.id ?? null), [ids[1], null, ids[0], ids[1]]);
      assert.deepEqual(await s.enrolmentsByNonceHashes([]), []);
    }));

  test('cardsAndEnrolments: each key answered in order with the single-key card and enrolment rows, each null on its own; duplicates answered twice', () =>
    withStore(async (s) => {
      const cards = await cardsOf(s, 3);
      const hashes = [new Uint8Array(randomBytes(32)), new Uint8Array(randomBytes(32))];
      for (const [i, h] of hashes.entries()) {
        await s.insertEnrolment({ id: randomUUID(), cardId: cards[i]!.id, jobId: 'j', mode: 'admin', nonceHash: h, status: 'open', errorCode: null, expiresAt: T0 + 600_000, startedAt: T0, finishedAt: null });
      }
      const unknownUid = new Uint8Array(16).fill(0xee);
      const unknownHash = new Uint8Array(32).fill(0xdd);
      const got = await s.cardsAndEnrolments([
        { uid: cards[0]!.uid, nonceHash: hashes[0]! },
        { uid: unknownUid, nonceHash: hashes[1]! }, // a nonce whatever the UID: both answered on their own
        { uid: cards[2]!.uid, nonceHash: unknownHash },
        { uid: unknownUid, nonceHash: unknownHash },
        { uid: cards[1]!.uid, nonceHash: hashes[0]! }, // another card's nonce: the row as it is
        { uid: cards[0]!.uid, nonceHash: hashes[0]! },
      ]);
      const e0 = await s.enrolmentByNonceHash(hashes[0]!);
      const e1 = await s.enrolmentByNonceHash(hashes[1]!);
      assert.deepEqual(got, [
        { card: cards[0], enrolment: e0 },
        { card: null, enrolment: e1 },
        { card: cards[2], enrolment: null },
        { card: null, enrolment: null },
        { card: cards[1], enrolment: e0 },
        { card: cards[0], enrolment: e0 },
      ]);
      assert.deepEqual(await s.cardsAndEnrolments([]), []);
    }));
}
