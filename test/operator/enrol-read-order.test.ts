/**
 * The order of the enrolment's refusals now that the card and the nonce's enrolment are read
 * together after the attestation is verified (pki/enrolment.ts over store cardsAndEnrolments): a
 * card in no manifest, or a terminated one, is still refused with its own code when its attestation
 * also fails (from an untrusted manufacturer, or signed by another key) — not with the attestation's
 * code — and its nonce is not consumed; a card in the manifest with a failing attestation gets the
 * attestation's code. Nothing is issued for any of them. The read is started with the nonce the
 * statement claims before it is verified (AttestationVerifier.claimedNonce): when that is not the
 * verified nonce, the verified one's enrolment is read and consumed, never the other.
 * imports src/operator, test helpers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importManifest } from '../../src/operator/services/manifests.js';
import { OpError } from '../../src/operator/errors.js';
import { sha256 } from '../../src/operator/pki/x509.js';
import { DefaultAttestationVerifier, SETLS_ATTESTATION_V1, type AttestationEvidence } from '../../src/operator/pki/attestation.js';
import { makeCsr, makeManufacturer, makeOperator, SoftCard } from './helpers.js';

const codeOf = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return e instanceof OpError ? e.code : String(e);
  }
};

test('a failing attestation from an unknown or terminated card is refused with the card\'s code first; a known card gets the attestation\'s code; no nonce consumed, nothing issued', async () => {
  const trusted = await makeManufacturer('Trusted');
  const untrusted = await makeManufacturer('Untrusted');
  const env = await makeOperator([trusted]);
  try {
    const op = env.op;
    const known = await SoftCard.create(trusted);
    const ended = await SoftCard.create(trusted);
    await importManifest(op.store, { cards: [known.manifestEntry(), ended.manifestEntry()] }, 'test');
    const k = await SoftCard.identityKey();
    const csrDer = await makeCsr(k.keys);

    // a UID in no manifest, attested through a manufacturer CA the operator does not trust
    const stranger = await SoftCard.create(untrusted);
    assert.equal(await codeOf(op.enrolment.complete({ uid: stranger.uid, evidence: stranger.attest(k.spki, new Uint8Array(32).fill(7)), csrDer })), 'ERR_OP_UNKNOWN_UID');

    // a terminated card whose statement is signed by another key
    const nEnded = await op.enrolment.issueNonce(ended.uid);
    const row = (await op.store.cardByUid(ended.uid))!;
    await op.store.updateCard(row.id, { lifecycle: 'terminated' }, Date.now());
    const other = await SoftCard.create(trusted);
    const forged = ended.attest(k.spki, nEnded.nonce, { signWith: other.attestKey });
    assert.equal(await codeOf(op.enrolment.complete({ uid: ended.uid, evidence: forged, csrDer })), 'ERR_OP_CARD_TERMINATED');
    assert.equal((await op.store.enrolmentByNonceHash(sha256(nEnded.nonce)))?.status, 'open', 'the terminated card\'s nonce is not consumed');

    // a known card, the same forgery: the attestation's own code
    const nKnown = await op.enrolment.issueNonce(known.uid);
    const code = await codeOf(op.enrolment.complete({ uid: known.uid, evidence: known.attest(k.spki, nKnown.nonce, { signWith: other.attestKey }), csrDer }));
    assert.equal(code, 'ERR_OP_ATTESTATION_SIGNATURE');
    assert.equal((await op.store.enrolmentByNonceHash(sha256(nKnown.nonce)))?.status, 'open', 'a forged attestation does not use up the nonce');

    for (const c of [known, ended]) {
      const r = (await op.store.cardByUid(c.uid))!;
      assert.equal((await op.store.certificatesOfCard(r.id)).length, 0);
    }
  } finally {
    await env.cleanup();
  }
});

test('the enrolment read ahead with the claimed (unverified) nonce is used only when it is the verified one: else the verified nonce is consumed, the claimed one stays open', async () => {
  const m = await makeManufacturer();
  // A verifier whose claimed nonce lies (names another open nonce of the same card).
  let lie: Uint8Array | null = null;
  const honest = new DefaultAttestationVerifier(SETLS_ATTESTATION_V1);
  const verifier = {
    verify: (e: AttestationEvidence, t: readonly Uint8Array[], now: number) => honest.verify(e, t, now),
    claimedNonce: (e: AttestationEvidence) => lie ?? honest.claimedNonce(e),
  };
  const env = await makeOperator([m], { verifier });
  try {
    const op = env.op;
    const card = await SoftCard.create(m);
    await importManifest(op.store, { cards: [card.manifestEntry()] }, 'test');
    const n1 = await op.enrolment.issueNonce(card.uid);
    const n2 = await op.enrolment.issueNonce(card.uid);
    lie = n1.nonce;
    const k = await SoftCard.identityKey();
    const r = await op.enrolment.complete({ uid: card.uid, evidence: card.attest(k.spki, n2.nonce), csrDer: await makeCsr(k.keys) });
    assert.equal(r.certificate.enrolmentId, n2.enrolmentId);
    assert.equal((await op.store.enrolmentByNonceHash(sha256(n2.nonce)))?.status, 'succeeded');
    assert.equal((await op.store.enrolmentByNonceHash(sha256(n1.nonce)))?.status, 'open');
  } finally {
    await env.cleanup();
  }
});
