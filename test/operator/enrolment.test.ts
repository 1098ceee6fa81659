// Enrolment verification (src/operator/pki/enrolment.ts) with software attestations: a test
// manufacturer CA, per-card attestation keys and certificates, identity keys and CSRs. A good
// enrolment issues a certificate that openssl (the external oracle) verifies against ca.crt with a
// 30-day validity, the CRL distribution point and the card profile's SAN; every forged or replayed
// input is refused with its own code and issues nothing (no certificate, no identity row).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes, webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { importManifest } from '../../src/operator/services/manifests.js';
import { OpError } from '../../src/operator/errors.js';
import type { Operator } from '../../src/operator/operator.js';
import { SETLS_ATTESTATION_V1 } from '../../src/operator/pki/attestation.js';
import { makeCsr, makeManufacturer, makeOperator, SoftCard, type Manufacturer } from './helpers.js';
import { requirePeer } from '../interop/peers.js';

let m: Manufacturer;
let rogue: Manufacturer;
let env: Awaited<ReturnType<typeof makeOperator>>;
let op: Operator;
const cards: SoftCard[] = [];

before(async () => {
  m = await makeManufacturer('Genuine');
  rogue = await makeManufacturer('Rogue');
  env = await makeOperator([m]);
  op = env.op;
  for (let i = 0; i < 6; i++) cards.push(await SoftCard.create(m));
  await importManifest(op.store, { cards: cards.map((c) => c.manifestEntry({ profile: i0(c) })) }, 'test');
});
after(async () => env.cleanup());

// Card 0 gets an explicit naming profile; the others use the operator's defaults.
function i0(c: SoftCard): Record<string, unknown> {
  return c === cards[0] ? { dnsNames: ['plug-0.example', 'localhost'], ipAddresses: ['127.0.0.1'] } : {};
}

async function counts(): Promise<{ certs: number; identities: number }> {
  let certs = 0;
  let identities = 0;
  for (const c of cards) {
    const row = await op.store.cardByUid(c.uid);
    if (!row) continue;
    certs += (await op.store.certificatesOfCard(row.id)).length;
    identities += (await op.store.identitiesOfCard(row.id)).length;
  }
  return { certs, identities };
}

/** Expects `p` to be refused with `code` and nothing new issued. */
async function refused(p: () => Promise<unknown>, code: string): Promise<void> {
  const before = await counts();
  await assert.rejects(p(), (e: unknown) => {
    assert.ok(e instanceof OpError, String(e));
    assert.equal(e.code, code, e.message);
    return true;
  });
  assert.deepEqual(await counts(), before, `nothing issued after ${code}`);
}

async function freshKeyAndCsr(): Promise<{ keys: CryptoKeyPair; spki: Uint8Array; csr: Uint8Array }> {
  const { keys, spki } = await SoftCard.identityKey();
  return { keys, spki, csr: await makeCsr(keys) };
}

function openssl(args: string[], input?: string): { code: number | null; out: string; err: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8', input, timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('a genuine attested key gets a 30-day certificate with the CRL URL and the profile SAN (openssl checks it)', async (t) => {
  const card = cards[0]!;
  const { spki, csr } = await freshKeyAndCsr();
  const n = await op.enrolment.issueNonce(card.uid, null);
  const res = await op.enrolment.complete({ uid: card.uid, evidence: card.attest(spki, n.nonce), csrDer: csr, expectedEnrolmentId: n.enrolmentId });
  assert.equal(res.certificate.status, 'good');
  assert.deepEqual(res.identity.spkiSha256, new Uint8Array(createHash('sha256').update(spki).digest()));
  assert.equal((await op.store.cardByUid(card.uid))!.lifecycle, 'enrolled');
  assert.equal(res.certificate.serial.length, 16);
  assert.equal((await op.store.enrolmentByNonceHash(new Uint8Array(createHash('sha256').update(n.nonce).digest())))!.status, 'succeeded');
  if (!requirePeer(t, 'openssl')) return;
  const pem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(res.certificate.der).toString('base64')}\n-----END CERTIFICATE-----\n`;
  const certFile = join(env.dir, 'leaf.pem');
  writeFileSync(certFile, pem);
  const v = openssl(['verify', '-CAfile', op.paths.caCert, certFile]);
  assert.equal(v.code, 0, v.err + v.out);
  const text = openssl(['x509', '-in', certFile, '-noout', '-text', '-dates', '-serial']).out;
  assert.match(text, /X509v3 CRL Distribution Points:\s*\n\s*Full Name:\s*\n\s*URI:https:\/\/operator\.test:9443\/v1\/ca\/crl/);
  assert.match(text, /X509v3 Subject Alternative Name:\s*\n\s*DNS:plug-0\.example, DNS:localhost, IP Address:127\.0\.0\.1\s*\n/);
  assert.match(text, new RegExp(`Subject: CN ?= ?${card.uidHex}`));
  assert.match(text, /ASN1 OID: prime256v1/);
  assert.match(text, /serial=([0-9A-F]{32})/);
  assert.equal(/serial=([0-9A-F]+)/.exec(text)![1]!.toLowerCase(), Buffer.from(res.certificate.serial).toString('hex'));
  const notBefore = Date.parse(/notBefore=(.*)/.exec(text)![1]!);
  const notAfter = Date.parse(/notAfter=(.*)/.exec(text)![1]!);
  const days = (notAfter - notBefore) / 86_400_000;
  assert.ok(days > 30 && days < 30.01, `validity ${days} days (30 d plus 5 min of clock skew allowance)`);
  // The certificate's key is the attested key: compare the SPKI openssl extracts with the card's.
  const pub = openssl(['x509', '-in', certFile, '-noout', '-pubkey']).out;
  const der = openssl(['pkey', '-pubin', '-outform', 'DER'], pub);
  assert.equal(der.code, 0);
  const spkiFromCert = spawnSync('openssl', ['pkey', '-pubin', '-outform', 'DER'], { input: pub }).stdout;
  assert.deepEqual(new Uint8Array(spkiFromCert), spki);
});

test('replayed nonce: the same evidence a second time is refused (ERR_OP_NONCE_REPLAY)', async () => {
  const card = cards[1]!;
  const { spki, csr } = await freshKeyAndCsr();
  const n = await op.enrolment.issueNonce(card.uid);
  const evidence = card.attest(spki, n.nonce);
  await op.enrolment.complete({ uid: card.uid, evidence, csrDer: csr });
  await refused(() => op.enrolment.complete({ uid: card.uid, evidence, csrDer: csr }), 'ERR_OP_NONCE_REPLAY');
});

test('two concurrent completions of one nonce: exactly one certificate', async () => {
  const card = cards[5]!;
  const { spki, csr } = await freshKeyAndCsr();
  const n = await op.enrolment.issueNonce(card.uid);
  const evidence = card.attest(spki, n.nonce);
  const row = (await op.store.cardByUid(card.uid))!;
  const results = await Promise.allSettled([1, 2, 3].map(() => op.enrolment.complete({ uid: card.uid, evidence, csrDer: csr })));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as OpError).code, 'ERR_OP_NONCE_REPLAY');
  assert.equal((await op.store.certificatesOfCard(row.id)).length, 1);
});

test('forged attestation: statement signed by a key that is not the attestation key (ERR_OP_ATTESTATION_SIGNATURE)', async () => {
  const card = cards[2]!;
  const other = await SoftCard.create(m);
  const { spki, csr } = await freshKeyAndCsr();
  const n = await op.enrolment.issueNonce(card.uid);
  await refused(() => op.enrolment.complete({ uid: card.uid, evidence: card.attest(spki, n.nonce, { signWith: other.attestKey }), csrDer: csr }), 'ERR_OP_ATTESTATION_SIGNATURE');
  // A flipped byte in the statement after signing: same code.
  const n2 = await op.enrolment.issueNonce(card.uid);
  const ev = card.attest(spki, n2.nonce);
  const statement = ev.statement.slice();
  statement[statement.length - 1]! ^= 1;
  await refused(() => op.enrolment.complete({ uid: card.uid, evidence: { ...ev, statement }, csrDer: csr }), 'ERR_OP_ATTESTATION_SIGNATURE');
});

test('attestation chain to an untrusted manufacturer (ERR_OP_ATTESTATION_CHAIN); no certificate at all (same code)', async () => {
  const card = cards[2]!;
  const fake = await SoftCard.create(rogue, card.uid);
  const { spki, csr } = await freshKeyAndCsr();
  const n = await op.enrolment.issueNonce(card.uid);
  await refused(() => op.enrolment.complete({ uid: card.uid, evidence: fake.attest(spki, n.nonce), csrDer: csr }), 'ERR_OP_ATTESTATION_CHAIN');
  const n2 = await op.enrolment.issueNonce(card.uid);
  await refused(() => op.enrolment.complete({ uid: card.uid, evidence: card.attest(spki, n2.nonce, { chain: [] }), csrDer: csr }), 'ERR_OP_ATTESTATION_CHAIN');
});

test("another genuine card's attestation for this UID (ERR_OP_ATTESTATION_CERT_MISMATCH); statement naming another UID (ERR_OP_ATTESTATION_UID)", async () => {
  const card = cards[2]!;
  const other = await SoftCard.create(m);
  const { spki, csr } = await freshKeyAndCsr();
  const n = await op.enrolment.issueNonce(card.uid);
  await refused(() => op.enrolment.complete({ uid: card.uid, evidence: other.attest(spki, n.nonce, { uid: card.uid }), csrDer: csr }), 'ERR_OP_ATTESTATION_CERT_MISMATCH');
  const n2 = await op.enrolment.issueNonce(card.uid);
  await refused(() => op.enrolment.complete({ uid: card.uid, evidence: card.attest(spki, n2.nonce, { uid: cards[3]!.uid }), csrDer: csr }), 'ERR_OP_ATTESTATION_UID');
});

test('nonces: never issued (ERR_OP_NONCE_UNKNOWN), issued for another card (same, and that nonce stays usable), expired (ERR_OP_NONCE_EXPIRED)', async () => {
  const card = cards[2]!;
  const { spki, csr } = await freshKeyAndCsr();
  await refused(() => op.enrolment.complete({ uid: card.uid, evidence: card.attest(spki, new Uint8Array(randomBytes(32))), csrDer: csr }), 'ERR_OP_NONCE_UNKNOWN');
  const theirs = await op.enrolment.issueNonce(cards[3]!.uid);
  await refused(() => op.enrolment.complete({ uid: card.uid, evidence: card.attest(spki, theirs.nonce), csrDer: csr }), 'ERR_OP_NONCE_UNKNOWN');
  const enr = await op.store.enrolmentByNonceHash(new Uint8Array(createHash('sha256').update(theirs.nonce).digest()));
  assert.equal(enr!.status, 'open', "another card's nonce is not consumed by a refusal");
  // A nonce issued for this enrolment but a different one expected by the executor.
  const mine = await op.enrolment.issueNonce(card.uid);
  const other = await op.enrolment.issueNonce(card.uid);
  await refused(() => op.enrolment.complete({ uid: card.uid, evidence: card.attest(spki, mine.nonce), csrDer: csr, expectedEnrolmentId: other.enrolmentId }), 'ERR_OP_NONCE_UNKNOWN');
  // Expired: an operator whose clock is past the nonce's lifetime.
  const late = await makeOperatorClockView(op, 11 * 60 * 1000);
  const n = await op.enrolment.issueNonce(card.uid);
  await refused(() => late.complete({ uid: card.uid, evidence: card.attest(spki, n.nonce), csrDer: csr }), 'ERR_OP_NONCE_EXPIRED');
});

test('a refusal consumes the nonce: fixing the CSR afterwards is a replay', async () => {
  const card = cards[2]!;
  const { spki, csr } = await freshKeyAndCsr();
  const wrong = await freshKeyAndCsr();
  const n = await op.enrolment.issueNonce(card.uid);
  const evidence = card.attest(spki, n.nonce);
  await refused(() => op.enrolment.complete({ uid: card.uid, evidence, csrDer: wrong.csr }), 'ERR_OP_CSR_KEY_MISMATCH');
  await refused(() => op.enrolment.complete({ uid: card.uid, evidence, csrDer: csr }), 'ERR_OP_NONCE_REPLAY');
});

test('CSRs: signature not by its key (ERR_OP_CSR_SIGNATURE), garbage (ERR_OP_CSR_INVALID), P-384 key (ERR_OP_KEY_POLICY)', async () => {
  const card = cards[2]!;
  const { keys, spki } = await SoftCard.identityKey();
  const otherSigner = await SoftCard.identityKey();
  const n1 = await op.enrolment.issueNonce(card.uid);
  const badCsr = await makeCsr(keys, otherSigner.keys);
  await refused(() => op.enrolment.complete({ uid: card.uid, evidence: card.attest(spki, n1.nonce), csrDer: badCsr }), 'ERR_OP_CSR_SIGNATURE');
  const n2 = await op.enrolment.issueNonce(card.uid);
  await refused(() => op.enrolment.complete({ uid: card.uid, evidence: card.attest(spki, n2.nonce), csrDer: Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x00) }), 'ERR_OP_CSR_INVALID');
  const p384 = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const spki384 = new Uint8Array(await webcrypto.subtle.exportKey('spki', p384.publicKey));
  const x509 = await import('@peculiar/x509');
  const csr384 = new Uint8Array((await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=card', keys: p384, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' } })).rawData);
  const n3 = await op.enrolment.issueNonce(card.uid);
  await refused(() => op.enrolment.complete({ uid: card.uid, evidence: card.attest(spki384, n3.nonce), csrDer: csr384 }), 'ERR_OP_KEY_POLICY');
});

test('a key already bound to another card (ERR_OP_KEY_BOUND_ELSEWHERE)', async () => {
  const a = cards[3]!;
  const b = cards[4]!;
  const { spki, csr } = await freshKeyAndCsr();
  const na = await op.enrolment.issueNonce(a.uid);
  await op.enrolment.complete({ uid: a.uid, evidence: a.attest(spki, na.nonce), csrDer: csr });
  const nb = await op.enrolment.issueNonce(b.uid);
  await refused(() => op.enrolment.complete({ uid: b.uid, evidence: b.attest(spki, nb.nonce), csrDer: csr }), 'ERR_OP_KEY_BOUND_ELSEWHERE');
});

test('unknown UID (ERR_OP_UNKNOWN_UID), terminated card (ERR_OP_CARD_TERMINATED), malformed statement (ERR_OP_ATTESTATION_FORMAT)', async () => {
  const stranger = await SoftCard.create(m);
  const { spki, csr } = await freshKeyAndCsr();
  await assert.rejects(op.enrolment.issueNonce(stranger.uid), { code: 'ERR_OP_UNKNOWN_UID' });
  await refused(() => op.enrolment.complete({ uid: stranger.uid, evidence: stranger.attest(spki, new Uint8Array(32)), csrDer: csr }), 'ERR_OP_UNKNOWN_UID');
  const card = cards[2]!;
  const row = (await op.store.cardByUid(card.uid))!;
  const n = await op.enrolment.issueNonce(card.uid);
  // a statement in another format, correctly signed by the genuine attestation key
  const sign = (await import('node:crypto')).sign;
  const { createPrivateKey } = await import('node:crypto');
  const statement = Uint8Array.of(0xbf, 0x22, 0x03, 0x5a, 0x01, 0x00);
  const signature = new Uint8Array(sign('sha256', statement, createPrivateKey({ key: Buffer.from(card.attestKey), format: 'der', type: 'pkcs8' })));
  await refused(() => op.enrolment.complete({ uid: card.uid, evidence: { statement, signature, chain: [card.attestCertDer] }, csrDer: csr }), 'ERR_OP_ATTESTATION_FORMAT');
  await op.store.updateCard(row.id, { lifecycle: 'terminated' }, Date.now());
  await refused(() => op.enrolment.complete({ uid: card.uid, evidence: card.attest(spki, n.nonce), csrDer: csr }), 'ERR_OP_CARD_TERMINATED');
  await assert.rejects(op.enrolment.issueNonce(card.uid), { code: 'ERR_OP_CARD_TERMINATED' });
  await op.store.updateCard(row.id, { lifecycle: 'manifest' }, Date.now());
});

test('the provisional statement format round-trips and refuses trailing or missing fields', () => {
  const claims = { uid: new Uint8Array(16).fill(1), slot: 2, spkiSha256: new Uint8Array(32).fill(3), nonce: new Uint8Array(32).fill(4), counter: 0x01020304 };
  const enc = SETLS_ATTESTATION_V1.encode(claims);
  assert.deepEqual(SETLS_ATTESTATION_V1.decode(enc), claims);
  assert.throws(() => SETLS_ATTESTATION_V1.decode(Uint8Array.of(...enc, 0)));
  assert.throws(() => SETLS_ATTESTATION_V1.decode(enc.slice(0, enc.length - 6)));
});

/** The same operator's enrolment service seen with a clock `ahead` ms in the future. */
async function makeOperatorClockView(o: Operator, ahead: number) {
  const { EnrolmentService } = await import('../../src/operator/pki/enrolment.js');
  const { DefaultAttestationVerifier } = await import('../../src/operator/pki/attestation.js');
  return new EnrolmentService({
    store: o.store,
    ca: o.ca,
    caId: o.caId,
    verifier: new DefaultAttestationVerifier(),
    trustedManufacturerCas: async () => (await o.store.listManufacturerCas()).map((x) => x.certDer),
    crlUrl: () => 'https://operator.test/v1/ca/crl',
    defaultDays: 30,
    defaultDnsNames: ['localhost'],
    defaultIpAddresses: [],
    now: () => Date.now() + ahead,
  });
}
