/**
 * Batched enrolment reads, above the store (pki/enrolment.ts over store/enrol-reads.ts; the store's
 * own contract is store-enrol-reads-suite.ts, run on both stores): concurrent completions read their
 * cards and their nonces' enrolments together in shared calls (cardsAndEnrolments: one statement on
 * PostgreSQL), and each still gets its own answer — the
 * good ones issued, an unknown UID ERR_OP_UNKNOWN_UID, a used nonce ERR_OP_NONCE_REPLAY, another
 * card's nonce ERR_OP_NONCE_UNKNOWN (and that nonce is not consumed), nothing issued for them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importManifest } from '../../src/operator/services/manifests.js';
import { OpError } from '../../src/operator/errors.js';
import type { OperatorStore } from '../../src/operator/store/types.js';
import { makeCsr, makeManufacturer, makeOperator, SoftCard } from './helpers.js';
import { sha256 } from '../../src/operator/pki/x509.js';

const code = (o: PromiseSettledResult<unknown>): string => (o.status === 'fulfilled' ? 'ok' : o.reason instanceof OpError ? o.reason.code : String(o.reason));

test('concurrent completions share their card and nonce reads; each gets its own answer', async () => {
  const m = await makeManufacturer();
  const env = await makeOperator([m]);
  try {
    const op = env.op;
    const cards = await Promise.all(Array.from({ length: 6 }, () => SoftCard.create(m)));
    const stranger = await SoftCard.create(m); // attested by the manufacturer, in no manifest
    await importManifest(op.store, { cards: cards.map((c) => c.manifestEntry()) }, 'test');
    const sizes: number[] = [];
    const spy = op.store as OperatorStore;
    const both = spy.cardsAndEnrolments.bind(spy);
    spy.cardsAndEnrolments = (k) => (sizes.push(k.length), both(k));

    // card 1's nonce used once already (a replay below); card 5 presents card 4's nonce
    const used = await op.enrolment.issueNonce(cards[1]!.uid);
    const k0 = await SoftCard.identityKey();
    await op.enrolment.complete({ uid: cards[1]!.uid, evidence: cards[1]!.attest(k0.spki, used.nonce), csrDer: await makeCsr(k0.keys), expectedEnrolmentId: used.enrolmentId });
    const before = op.enrolment.batchStats();

    const inputs = [];
    let card4Second: Uint8Array | undefined;
    for (const [i, card] of cards.entries()) {
      const k = await SoftCard.identityKey();
      if (i === 1) {
        inputs.push({ uid: card.uid, evidence: card.attest(k.spki, used.nonce), csrDer: await makeCsr(k.keys) });
        continue;
      }
      const n = await op.enrolment.issueNonce(cards[i === 5 ? 4 : i]!.uid);
      if (i === 5) card4Second = n.nonce;
      inputs.push({ uid: card.uid, evidence: card.attest(k.spki, n.nonce), csrDer: await makeCsr(k.keys) });
    }
    const ks = await SoftCard.identityKey();
    inputs.push({ uid: stranger.uid, evidence: stranger.attest(ks.spki, new Uint8Array(32).fill(1)), csrDer: await makeCsr(ks.keys) });

    const out = await Promise.allSettled(inputs.map((i) => op.enrolment.complete(i)));
    assert.deepEqual(out.map(code), ['ok', 'ERR_OP_NONCE_REPLAY', 'ok', 'ok', 'ok', 'ERR_OP_NONCE_UNKNOWN', 'ERR_OP_UNKNOWN_UID']);
    const after = op.enrolment.batchStats();
    assert.ok(after.readBatches > before.readBatches && Math.max(...sizes) >= 2, `cards and nonces read together (${sizes.join(',')})`);

    // card 4's second nonce, presented by card 5, was not consumed: still open
    assert.equal((await op.store.enrolmentByNonceHash(sha256(card4Second!)))?.status, 'open');
    const c5 = (await op.store.cardByUid(cards[5]!.uid))!;
    assert.equal((await op.store.certificatesOfCard(c5.id)).length, 0, 'nothing issued for card 5');
    const c1 = (await op.store.cardByUid(cards[1]!.uid))!;
    assert.equal((await op.store.certificatesOfCard(c1.id)).length, 1, 'only the first use of card 1 issued');
  } finally {
    await env.cleanup();
  }
});
