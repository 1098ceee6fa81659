/**
 * Enrolment from what manifest import verified (pki/manifest.ts → card row attestFacts →
 * pki/attestation.ts verifyKnown): the import keeps the attestation certificate's key, the anchor
 * and the path's validity; a card's first enrolment with exactly that certificate is then checked
 * without parsing it or verifying its path again. The facts only ever shortcut a success: another
 * certificate, an anchor no longer trusted (removed, or renewed under another DER) or a path outside
 * its validity is decided by the full check, as before; a statement not signed by the attestation
 * key is refused either way; a card row without facts (imported before schema 11) takes the full
 * check.
 */
import 'reflect-metadata';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { importManifest } from '../../src/operator/services/manifests.js';
import { OpError } from '../../src/operator/errors.js';
import type { Operator } from '../../src/operator/operator.js';
import { DefaultAttestationVerifier, knownAttestations, SETLS_ATTESTATION_V1, type KnownAttestation } from '../../src/operator/pki/attestation.js';
import { chainCacheStats, clearChainCache } from '../../src/operator/pki/chain.js';
import { makeCsr, makeManufacturer, makeOperator, SoftCard, type Manufacturer } from './helpers.js';

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;
const x509Of = (der: Uint8Array): x509.X509Certificate => new x509.X509Certificate(new Uint8Array(der));
const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest());

let m: Manufacturer;
let env: Awaited<ReturnType<typeof makeOperator>>;
let op: Operator;
const cards: SoftCard[] = [];

before(async () => {
  // the manufacturer CA ends before its cards' certificates: the path's validity is the CA's
  m = await makeManufacturer('Known', { notAfter: new Date(Date.now() + 100 * DAY) });
  env = await makeOperator([m]);
  op = env.op;
  for (let i = 0; i < 4; i++) cards.push(await SoftCard.create(m));
  await importManifest(op.store, { cards: cards.map((c) => c.manifestEntry()) }, 'test');
});
after(async () => env.cleanup());

/** setls_operator_attestations_verified_total{chain} as the operator's metrics have it. */
async function verified(chain: 'manifest' | 'full'): Promise<number> {
  return (await op.metrics.attestationsVerified.get()).values.find((v) => v.labels['chain'] === chain)?.value ?? 0;
}

async function enrol(card: SoftCard, opts: { signWith?: Uint8Array } = {}): Promise<void> {
  const { keys, spki } = await SoftCard.identityKey();
  const n = await op.enrolment.issueNonce(card.uid, null);
  await op.enrolment.complete({ uid: card.uid, evidence: card.attest(spki, n.nonce, opts), csrDer: await makeCsr(keys), expectedEnrolmentId: n.enrolmentId });
}

test('manifest import keeps the certificate key, the anchor and the path validity in the card row', async () => {
  const row = (await op.store.cardByUid(cards[0]!.uid))!;
  const f = row.attestFacts;
  assert.ok(f, 'facts stored');
  const cert = x509Of(cards[0]!.attestCertDer);
  assert.deepEqual(f.keySpki, new Uint8Array(cert.publicKey.rawData));
  assert.deepEqual(f.anchorSha256, sha256(m.caDer));
  assert.equal(f.validFrom, Math.max(cert.notBefore.getTime(), m.cert.notBefore.getTime()));
  assert.equal(f.validTo, m.cert.notAfter.getTime(), 'the CA ends first');
  assert.ok(f.validTo < cert.notAfter.getTime());
});

test("a card's first enrolment is checked from the facts: no certificate parse, no path check", async () => {
  clearChainCache();
  const used = knownAttestations.used;
  const parses = chainCacheStats.parses;
  const checks = chainCacheStats.signatureChecks;
  const [fromManifest, full] = [await verified('manifest'), await verified('full')];
  await enrol(cards[1]!);
  assert.equal(knownAttestations.used, used + 1);
  assert.deepEqual([await verified('manifest'), await verified('full')], [fromManifest + 1, full], 'the metric says how');
  assert.equal(chainCacheStats.parses, parses, 'no X.509 parse');
  assert.equal(chainCacheStats.signatureChecks, checks, 'no path signature check');
  assert.equal((await op.store.cardByUid(cards[1]!.uid))!.lifecycle, 'enrolled');
});

test('a statement not signed by the attestation key is refused on the facts path too (ERR_OP_ATTESTATION_SIGNATURE)', async () => {
  const other = await SoftCard.create(m);
  const used = knownAttestations.used;
  await assert.rejects(enrol(cards[2]!, { signWith: other.attestKey }), (e: unknown) => e instanceof OpError && e.code === 'ERR_OP_ATTESTATION_SIGNATURE');
  assert.equal(knownAttestations.used, used + 1, 'answered from the facts, and refused');
});

/** A card registered as schema 10 wrote its row: no facts. */
async function legacyCard(): Promise<SoftCard> {
  const card = await SoftCard.create(m);
  await op.store.insertCard({
    id: crypto.randomUUID(),
    uid: card.uid,
    batchId: null,
    attestCertDer: card.attestCertDer,
    attestSpkiSha256: sha256(new Uint8Array(x509Of(card.attestCertDer).publicKey.rawData)),
    lifecycle: 'manifest',
    kvn: 0x30,
    transportKeyId: null,
    labels: {},
    profile: {},
    createdAt: Date.now(),
  });
  return card;
}

test('a card row without facts (imported before schema 11) takes the full check', async () => {
  const legacy = await legacyCard();
  assert.equal((await op.store.cardByUid(legacy.uid))!.attestFacts, null);
  clearChainCache();
  const used = knownAttestations.used;
  const parses = chainCacheStats.parses;
  const full = await verified('full');
  await enrol(legacy);
  assert.equal(knownAttestations.used, used, 'not from facts');
  assert.equal(await verified('full'), full + 1, 'the metric says how');
  assert.ok(chainCacheStats.parses > parses, 'the certificate was parsed');
  assert.equal((await op.store.cardByUid(legacy.uid))!.lifecycle, 'enrolled');
});

test('importing the manifest again gives a card registered before schema 11 its facts (only that card, once)', async () => {
  const legacy = await legacyCard();
  const cert = x509Of(legacy.attestCertDer);
  const doc = { cards: [legacy.manifestEntry(), cards[0]!.manifestEntry()] };
  const r = await importManifest(op.store, doc, 'test');
  assert.deepEqual(r.imported, []);
  assert.deepEqual(r.alreadyPresent.sort(), [legacy.uidHex, cards[0]!.uidHex].sort());
  assert.deepEqual(r.factsAdded, [legacy.uidHex], 'the card that had facts is left as it was');
  const f = (await op.store.cardByUid(legacy.uid))!.attestFacts!;
  assert.deepEqual(f.keySpki, new Uint8Array(cert.publicKey.rawData));
  assert.deepEqual(f.anchorSha256, sha256(m.caDer));
  assert.deepEqual((await importManifest(op.store, doc, 'test')).factsAdded, [], 'once');
  const used = knownAttestations.used;
  await enrol(legacy);
  assert.equal(knownAttestations.used, used + 1, 'its enrolment now uses them');
});

// ---------------------------------------------------------------- the verifier alone

async function ecKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function caCert(keys: CryptoKeyPair, serial: string): Promise<Uint8Array> {
  const c = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial,
    name: 'CN=Renewed maker CA',
    keys,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 365 * DAY),
    signingAlgorithm: EC,
    extensions: [new x509.BasicConstraintsExtension(true, 1, true)],
  });
  return new Uint8Array(c.rawData);
}

function facts(card: SoftCard, anchorDer: Uint8Array, validTo = Date.now() + 100 * DAY): KnownAttestation {
  const cert = x509Of(card.attestCertDer);
  return { certDer: card.attestCertDer, keySpki: new Uint8Array(cert.publicKey.rawData), anchorSha256: sha256(anchorDer), validFrom: Date.now() - DAY, validTo };
}

test('verifyKnown: only a success comes from the facts; every doubt goes to the full check', async () => {
  const v = new DefaultAttestationVerifier(SETLS_ATTESTATION_V1);
  const card = await SoftCard.create(m);
  const stranger = await makeManufacturer('Stranger');
  const spki = (await SoftCard.identityKey()).spki;
  const ev = card.attest(spki, new Uint8Array(randomBytes(32)));
  const now = Date.now();
  const code = (f: () => unknown): string => {
    try {
      f();
      return 'ok';
    } catch (e) {
      return e instanceof OpError ? e.code : String(e);
    }
  };
  let used = knownAttestations.used;
  assert.equal(code(() => v.verifyKnown(ev, facts(card, m.caDer), [m.caDer], now)), 'ok');
  assert.equal(knownAttestations.used, ++used);
  // the anchor removed from the trust list: the full check refuses
  assert.equal(code(() => v.verifyKnown(ev, facts(card, m.caDer), [stranger.caDer], now)), 'ERR_OP_ATTESTATION_CHAIN');
  // outside the path's validity by the facts: the full check decides (here: refuses, the leaf is expired then)
  assert.equal(code(() => v.verifyKnown(ev, facts(card, m.caDer), [m.caDer], now + 4000 * DAY)), 'ERR_OP_ATTESTATION_CHAIN');
  // facts about another certificate: the full check (which accepts this genuine one)
  const other = await SoftCard.create(m);
  assert.equal(code(() => v.verifyKnown(ev, facts(other, m.caDer), [m.caDer], now)), 'ok');
  assert.equal(knownAttestations.used, used, 'none of these three from the facts');

  // a manufacturer CA renewed under another DER (same name, same key): the full check finds the path
  const caKeys = await ecKeys();
  const oldCa = await caCert(caKeys, '01');
  const newCa = await caCert(caKeys, '02');
  const maker: Manufacturer = { name: 'Renewed', caPem: '', caDer: oldCa, keys: caKeys, cert: x509Of(oldCa) };
  const renewedCard = await SoftCard.create(maker);
  const ev2 = renewedCard.attest(spki, new Uint8Array(randomBytes(32)));
  const r = v.verifyKnown(ev2, facts(renewedCard, oldCa), [newCa], now);
  assert.deepEqual(r.anchorDer, newCa);
  assert.equal(knownAttestations.used, used, 'renewed anchor: not from the facts');
});
