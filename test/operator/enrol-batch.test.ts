/**
 * Batched enrolment writes, above the store (store/micro-batch.ts and pki/enrolment.ts over
 * store/enrol-batch.ts; the store's own contract is store-enrol-batch-suite.ts, run on both stores):
 * - MicroBatch: requests queued while a round runs share one handler call (bounded), each gets its
 *   own answer, a batch refused as a whole is replayed one by one;
 * - nonce issue: concurrent issueNonce calls share one statement; an unknown UID and a terminated
 *   card among them fail alone with their own codes, the others get open enrolments;
 * - persist: concurrent completions share one persist call; one whose key is bound to another card
 *   is refused alone (its nonce consumed as refused, nothing issued), the others are issued.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { importManifest } from '../../src/operator/services/manifests.js';
import { OpError } from '../../src/operator/errors.js';
import { DefaultAttestationVerifier, SETLS_ATTESTATION_V1 } from '../../src/operator/pki/attestation.js';
import { checkCsrDer } from '../../src/operator/pki/csr-check.js';
import { EnrolmentService } from '../../src/operator/pki/enrolment.js';
import { MicroBatch, type BatchAnswer } from '../../src/operator/store/micro-batch.js';
import type { OperatorStore } from '../../src/operator/store/types.js';
import { makeCsr, makeManufacturer, makeOperator, SoftCard } from './helpers.js';

type Op = Awaited<ReturnType<typeof makeOperator>>['op'];

/** An operator with six imported soft cards of one manufacturer, cleaned up after `body`. */
async function withSixCards(body: (op: Op, cards: SoftCard[]) => Promise<void>): Promise<void> {
  const m = await makeManufacturer();
  const env = await makeOperator([m]);
  try {
    const cards = await Promise.all(Array.from({ length: 6 }, () => SoftCard.create(m)));
    await importManifest(env.op.store, { cards: cards.map((c) => c.manifestEntry()) }, 'test');
    await body(env.op, cards);
  } finally {
    await env.cleanup();
  }
}

const code = (o: PromiseSettledResult<unknown>): string => (o.status === 'fulfilled' ? 'ok' : o.reason instanceof OpError ? o.reason.code : String(o.reason));

test('MicroBatch: queued requests share one handler call, bounded; own answers; a batch refused as a whole is replayed alone', async () => {
  const calls: number[][] = [];
  const alone: number[] = [];
  let refuseWhole = false;
  const mb = new MicroBatch<number, number>(
    async (items) => {
      calls.push([...items]);
      if (refuseWhole) throw new Error('whole batch');
      return items.map((i): BatchAnswer<number> => (i === 13 ? { ok: false, error: new Error('thirteen') } : { ok: true, value: i * 2 }));
    },
    async (i) => {
      alone.push(i);
      if (i === 13) throw new Error('thirteen alone');
      return i * 2;
    },
    4,
  );
  // the first runs at once, alone; the 9 queued meanwhile go in batches of at most 4 (the last one, alone)
  const out = await Promise.allSettled([10, 11, 12, 13, 14, 15, 16, 17, 18, 19].map((i) => mb.run(i)));
  assert.deepEqual(alone, [10, 19]);
  assert.deepEqual(calls, [
    [11, 12, 13, 14],
    [15, 16, 17, 18],
  ]);
  assert.deepEqual(
    out.map((o) => (o.status === 'fulfilled' ? o.value : (o.reason as Error).message)),
    [20, 22, 24, 'thirteen', 28, 30, 32, 34, 36, 38],
  );
  assert.equal(mb.batches, 2);

  // a whole-batch failure: each is run alone, in order, with its own result
  refuseWhole = true;
  calls.length = 0;
  alone.length = 0;
  const again = await Promise.allSettled([1, 13, 2, 3].map((i) => mb.run(i)));
  assert.deepEqual(calls, [[13, 2, 3]]);
  assert.deepEqual(alone, [1, 13, 2, 3]);
  assert.deepEqual(
    again.map((o) => (o.status === 'fulfilled' ? o.value : (o.reason as Error).message)),
    [2, 'thirteen alone', 4, 6],
  );
  assert.equal(mb.replays, 1);
});

test('issueNonce: concurrent issues share one statement; an unknown UID and a terminated card fail alone with their codes', async () => {
  await withSixCards(async (op, cards) => {
    const dead = (await op.store.cardByUid(cards[4]!.uid))!;
    await op.store.updateCard(dead.id, { lifecycle: 'terminated' }, Date.now());
    const unknown = new Uint8Array(16).fill(0xee);
    const uids = [cards[0]!.uid, cards[1]!.uid, unknown, cards[2]!.uid, cards[4]!.uid, cards[3]!.uid, cards[5]!.uid];
    const before = op.enrolment.batchStats().nonceBatches;
    const out = await Promise.allSettled(uids.map((u) => op.enrolment.issueNonce(u)));
    assert.deepEqual(out.map(code), ['ok', 'ok', 'ERR_OP_UNKNOWN_UID', 'ok', 'ERR_OP_CARD_TERMINATED', 'ok', 'ok']);
    assert.ok(op.enrolment.batchStats().nonceBatches > before, 'the issues queued behind the first shared one statement');
    for (const [i, o] of out.entries()) {
      if (o.status !== 'fulfilled') continue;
      const row = await op.store.enrolmentByNonceHash(new Uint8Array(createHash('sha256').update(o.value.nonce).digest()));
      assert.equal(row?.id, o.value.enrolmentId);
      assert.equal(row?.status, 'open');
      assert.equal(row?.cardId, (await op.store.cardByUid(uids[i]!))!.id);
    }
    // each nonce is usable: one of them enrols
    const k = await SoftCard.identityKey();
    const first = out[0] as PromiseFulfilledResult<{ nonce: Uint8Array; enrolmentId: string }>;
    const res = await op.enrolment.complete({ uid: cards[0]!.uid, evidence: cards[0]!.attest(k.spki, first.value.nonce), csrDer: await makeCsr(k.keys), expectedEnrolmentId: first.value.enrolmentId });
    assert.equal(res.certificate.status, 'good');
  });
});

test('complete: concurrent persists share one call; a key bound to another card is refused alone and issues nothing', async () => {
  await withSixCards(async (op, cards) => {
    // card 0 holds key K already
    const keyK = await SoftCard.identityKey();
    const n0 = await op.enrolment.issueNonce(cards[0]!.uid);
    await op.enrolment.complete({ uid: cards[0]!.uid, evidence: cards[0]!.attest(keyK.spki, n0.nonce), csrDer: await makeCsr(keyK.keys), expectedEnrolmentId: n0.enrolmentId });

    // a service whose first persist call waits until every enrolment is signed (so they queue behind it)
    const N = 5;
    let signed = 0;
    let allSigned!: () => void;
    const gate = new Promise<void>((r) => (allSigned = r));
    const sizes: number[] = [];
    const store = new Proxy(op.store, {
      get(target, prop, recv) {
        if (prop !== 'persistEnrolments') return Reflect.get(target, prop, recv);
        return async (items: Parameters<OperatorStore['persistEnrolments']>[0]) => {
          if (sizes.length === 0) {
            await gate;
            await new Promise((r) => setImmediate(r)); // the signed ones' continuations queue their persists
          }
          sizes.push(items.length);
          return target.persistEnrolments(items);
        };
      },
    });
    const svc = new EnrolmentService({
      store,
      ca: op.ca,
      caId: op.caId,
      verifier: new DefaultAttestationVerifier(SETLS_ATTESTATION_V1),
      trustedManufacturerCas: async () => (await op.store.listManufacturerCas()).map((x) => x.certDer),
      crlUrl: () => 'http://crl.test/ca.crl',
      defaultDays: 30,
      defaultDnsNames: ['localhost'],
      defaultIpAddresses: [],
      pki: {
        checkCsr: async (der) => checkCsrDer(der),
        issue: async (req) => {
          const der = await op.ca.issueFast(req);
          if (++signed === N) allSigned();
          return der;
        },
      },
    });
    const inputs = [];
    for (let i = 1; i <= N; i++) {
      const k = i === 3 ? keyK : await SoftCard.identityKey(); // card 3 presents card 0's key
      const n = await svc.issueNonce(cards[i]!.uid);
      inputs.push({ uid: cards[i]!.uid, evidence: cards[i]!.attest(k.spki, n.nonce), csrDer: await makeCsr(k.keys), expectedEnrolmentId: n.enrolmentId });
    }
    const out = await Promise.allSettled(inputs.map((i) => svc.complete(i)));
    assert.deepEqual(out.map(code), ['ok', 'ok', 'ERR_OP_KEY_BOUND_ELSEWHERE', 'ok', 'ok']);
    assert.ok(Math.max(...sizes) >= 2, `persist steps shared a call (${sizes.join(',')})`);
    const card3 = (await op.store.cardByUid(cards[3]!.uid))!;
    assert.equal((await op.store.certificatesOfCard(card3.id)).length, 0, 'nothing issued for the refused key');
    assert.equal((await op.store.identitiesOfCard(card3.id)).length, 0);
    assert.equal(card3.lifecycle, 'manifest');
    const e3 = (await op.store.enrolmentByNonceHash(sha(inputs[2]!.evidence.statement)))!;
    assert.equal(e3.status, 'refused', 'the refused enrolment consumed its nonce');
    assert.equal(e3.errorCode, 'ERR_OP_KEY_BOUND_ELSEWHERE');
    for (const i of [1, 2, 4, 5]) {
      const row = (await op.store.cardByUid(cards[i]!.uid))!;
      assert.equal(row.lifecycle, 'enrolled');
      assert.equal((await op.store.certificatesOfCard(row.id)).length, 1);
    }
  });
});

/** SHA-256 of the statement's nonce (the enrolment's key). */
function sha(statement: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(SETLS_ATTESTATION_V1.decode(statement).nonce).digest());
}
