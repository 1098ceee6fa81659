/**
 * pki/trust-cache.ts and its use by the operator's enrolment: the trusted manufacturer CAs are read
 * from the store at most once per TTL (not once per enrolment); a CA trusted through the operator
 * counts at the next enrolment; a CA removed elsewhere (the row deleted by another connection) is no
 * longer trusted once the TTL has passed — an enrolment through it is then ERR_OP_ATTESTATION_CHAIN.
 * A fake clock moves time; nothing sleeps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { TrustedCasCache } from '../../src/operator/pki/trust-cache.js';
import { importManifest } from '../../src/operator/services/manifests.js';
import { OpError } from '../../src/operator/errors.js';
import { makeCsr, makeManufacturer, makeOperator, SoftCard } from './helpers.js';

function deferred<T>(): { promise: Promise<T>; resolve(v: T): void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

test('the cache: one load per TTL, shared by concurrent callers; invalidate() reloads; a load older than an invalidate() is not kept; a failed load is not kept', async () => {
  let clock = 1_000_000;
  let version = 0;
  const cache = new TrustedCasCache(async () => [Uint8Array.of(++version)], 1000, () => clock);
  const [a, b] = await Promise.all([cache.get(), cache.get()]);
  assert.equal(cache.loads, 1);
  assert.deepEqual([...a![0]!], [1]);
  assert.equal(a, b);
  clock += 999;
  assert.deepEqual([...(await cache.get())[0]!], [1]);
  assert.equal(cache.loads, 1, 'within the TTL: no load');
  clock += 1;
  assert.deepEqual([...(await cache.get())[0]!], [2], 'TTL passed: loaded again');
  cache.invalidate();
  assert.deepEqual([...(await cache.get())[0]!], [3], 'invalidated: loaded again at once');
  clock -= 5000; // the clock went back: not trusted to be fresh
  assert.deepEqual([...(await cache.get())[0]!], [4]);

  // a load that started before invalidate() answers its callers but is not kept
  const slow = deferred<Uint8Array[]>();
  let calls = 0;
  const c2 = new TrustedCasCache(() => (++calls === 1 ? slow.promise : Promise.resolve([Uint8Array.of(9)])), 1000, () => clock);
  const first = c2.get();
  c2.invalidate();
  const second = await c2.get();
  assert.deepEqual([...second[0]!], [9]);
  slow.resolve([Uint8Array.of(8)]);
  assert.deepEqual([...(await first)[0]!], [8]);
  assert.deepEqual([...(await c2.get())[0]!], [9], 'the stale load did not replace the newer list');
  assert.equal(calls, 2);

  let fail = true;
  const c3 = new TrustedCasCache(async () => {
    if (fail) throw new Error('store down');
    return [Uint8Array.of(7)];
  }, 1000, () => clock);
  await assert.rejects(c3.get(), /store down/);
  fail = false;
  assert.deepEqual([...(await c3.get())[0]!], [7], 'a failure is not cached');
});

test('operator enrolments: the trust list read once per TTL; a CA removed elsewhere refused after the TTL; a CA trusted through the operator counts at once', async () => {
  const m = await makeManufacturer('Genuine');
  let clock = Date.now();
  const env = await makeOperator([m], { now: () => clock, trustCacheMs: 1000 });
  try {
    const op = env.op;
    const cards: SoftCard[] = [];
    for (let i = 0; i < 5; i++) cards.push(await SoftCard.create(m));
    await importManifest(op.store, { cards: cards.map((c) => c.manifestEntry()) }, 'test');
    let reads = 0;
    const list = op.store.listManufacturerCas.bind(op.store);
    op.store.listManufacturerCas = () => (reads++, list());
    const enrol = async (card: SoftCard): Promise<void> => {
      const { keys, spki } = await SoftCard.identityKey();
      const n = await op.enrolment.issueNonce(card.uid, null);
      await op.enrolment.complete({ uid: card.uid, evidence: card.attest(spki, n.nonce), csrDer: await makeCsr(keys), expectedEnrolmentId: n.enrolmentId });
    };
    op.trustedCas.invalidate();
    await enrol(cards[0]!);
    await enrol(cards[1]!);
    await enrol(cards[2]!);
    assert.equal(reads, 1, 'three enrolments within the TTL: one read of the trust list');

    // the CA removed by another connection (as a DBA, or another node, would)
    const db = new Database(join(env.dir, 'operator.db'));
    db.pragma('foreign_keys = OFF'); // manifest_batch rows still name it
    db.prepare('DELETE FROM manufacturer_ca').run();
    db.close();
    clock += 1000;
    await assert.rejects(enrol(cards[3]!), (e: unknown) => e instanceof OpError && e.code === 'ERR_OP_ATTESTATION_CHAIN');
    assert.equal(reads, 2);

    // trusted again through the operator: the next enrolment (same instant) reads the new list
    await op.trustManufacturer(m.caPem);
    await enrol(cards[4]!);
  } finally {
    await env.cleanup();
  }
});
