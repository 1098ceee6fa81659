/**
 * store/group-commit.ts on SQLite and on PostgreSQL: transactions queued while one commits share
 * one store transaction; a failing one rolls back alone (the batch is replayed one by one) and fails
 * with its own error; the batch size is bounded. Also: concurrent enrolments through
 * EnrolmentService commit in shared transactions and a replayed nonce in the same batch is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { openPgStore, openSqliteStore } from '../../src/operator/store/index.js';
import type { NewCard, OperatorStore } from '../../src/operator/store/types.js';
import { GroupCommit } from '../../src/operator/store/group-commit.js';
import { importManifest } from '../../src/operator/services/manifests.js';
import { createTempDb, pgUnavailable } from './pg-helpers.js';
import { skipOrFail } from '../ci.js';
import { makeCsr, makeManufacturer, makeOperator, SoftCard, tempDir } from './helpers.js';

function card(): NewCard {
  return {
    id: randomUUID(),
    uid: new Uint8Array(randomBytes(16)),
    batchId: null,
    attestCertDer: Uint8Array.of(0x30, 0),
    attestSpkiSha256: new Uint8Array(randomBytes(32)),
    lifecycle: 'manifest',
    kvn: 0x30,
    transportKeyId: null,
    labels: {},
    profile: {},
    createdAt: Date.now(),
  };
}

/** `store` with its transactions counted (each with how many cards it inserted). */
function counted(store: OperatorStore): { store: OperatorStore; txs: number[] } {
  const txs: number[] = [];
  const wrapped = new Proxy(store, {
    get(target, prop, recv) {
      if (prop !== 'tx') return Reflect.get(target, prop, recv);
      return async (fn: (t: OperatorStore) => Promise<unknown>) =>
        target.tx(async (t) => {
          let n = 0;
          const inner = new Proxy(t, { get: (tt, p, r) => (p === 'insertCard' ? (c: NewCard) => (n++, tt.insertCard(c)) : Reflect.get(tt, p, r)) });
          const out = await fn(inner);
          txs.push(n);
          return out;
        });
    },
  });
  return { store: wrapped, txs };
}

async function behaviour(s: OperatorStore): Promise<void> {
  const { store, txs } = counted(s);
  const gc = new GroupCommit(store, 8);
  // 20 at once: the first commits alone, the rest in batches of at most 8
  const cards = Array.from({ length: 20 }, card);
  await Promise.all(cards.map((c) => gc.run((t) => t.insertCard(c))));
  for (const c of cards) assert.ok(await s.cardByUid(c.uid), 'every card committed');
  assert.ok(txs.length < 20, `shared transactions (${txs.length} for 20)`);
  assert.ok(Math.max(...txs) <= 8, 'batches bounded');
  assert.ok(gc.batches >= 1);

  // one failure among concurrent ones: it fails alone, its write rolled back; the others commit
  txs.length = 0;
  const more = Array.from({ length: 6 }, card);
  const bad = card();
  const outcomes = await Promise.allSettled([
    ...more.slice(0, 3).map((c) => gc.run((t) => t.insertCard(c))),
    gc.run(async (t) => {
      await t.insertCard(bad);
      throw new Error('refused');
    }),
    ...more.slice(3).map((c) => gc.run((t) => t.insertCard(c))),
  ]);
  assert.deepEqual(outcomes.map((o) => o.status), ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
  assert.equal((outcomes[3] as PromiseRejectedResult).reason.message, 'refused');
  assert.equal(await s.cardByUid(bad.uid), null, 'the failing function wrote nothing');
  for (const c of more) assert.ok(await s.cardByUid(c.uid));
  assert.ok(gc.replays >= 1, 'the batch was replayed one by one');
}

test('group commit on SQLite: shared transactions, a failure fails alone, bounded batches', async () => {
  const tmp = tempDir();
  const s = await openSqliteStore(`${tmp.dir}/op.db`);
  try {
    await behaviour(s);
  } finally {
    await s.close();
    tmp.cleanup();
  }
});

const unavailable = await pgUnavailable();
test('group commit on PostgreSQL: the same', async (t) => {
  if (!skipOrFail(t, unavailable)) return;
  const db = await createTempDb();
  const s = await openPgStore(db.url);
  try {
    await behaviour(s);
  } finally {
    await s.close();
    await db.drop();
  }
});

test('concurrent enrolments persist through group commit; the same nonce twice in one batch is refused once', async () => {
  const m = await makeManufacturer();
  const env = await makeOperator([m]);
  try {
    const op = env.op;
    const cards = await Promise.all(Array.from({ length: 6 }, () => SoftCard.create(m)));
    await importManifest(op.store, { cards: cards.map((c) => c.manifestEntry()) }, 'test');
    const inputs = [];
    for (const c of cards) {
      const k = await SoftCard.identityKey();
      const n = await op.enrolment.issueNonce(c.uid);
      inputs.push({ uid: c.uid, evidence: c.attest(k.spki, n.nonce), csrDer: await makeCsr(k.keys), expectedEnrolmentId: n.enrolmentId });
    }
    const outcomes = await Promise.allSettled([...inputs, inputs[2]!].map((i) => op.enrolment.complete(i)));
    const codes = outcomes.map((o) => (o.status === 'fulfilled' ? 'ok' : (o.reason as { code?: string }).code));
    assert.deepEqual(codes.filter((c) => c === 'ok').length, 6, codes.join(' '));
    assert.ok(codes.filter((c) => c !== 'ok').every((c) => c === 'ERR_OP_NONCE_REPLAY'), codes.join(' '));
    for (const c of cards) {
      const row = (await op.store.cardByUid(c.uid))!;
      assert.equal(row.lifecycle, 'enrolled');
    }
  } finally {
    await env.cleanup();
  }
});
