/**
 * pki/chain.ts caches: a chain verified once (leaf ← intermediate ← manufacturer CA) is verified
 * again without parsing or signature checks; what the cache never spares: a certificate it has not
 * seen verify (a forged leaf with the same names is refused, and refused again: failures are not
 * cached), the trust list given now (a manufacturer CA removed ends every cached path through it),
 * and every certificate's validity at `now`.
 */
import 'reflect-metadata';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { ChainError, chainCacheStats, clearChainCache, namedCurve, verifyChain } from '../../src/operator/pki/chain.js';

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;
const NOW = Date.now();

async function keys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function cert(subject: string, issuer: string, key: CryptoKeyPair, signer: CryptoKeyPair, ca: boolean, notAfter = NOW + 365 * DAY): Promise<Uint8Array> {
  const c = await x509.X509CertificateGenerator.create({
    serialNumber: Buffer.from(randomBytes(8)).toString('hex'),
    subject,
    issuer,
    publicKey: key.publicKey,
    signingKey: signer.privateKey,
    notBefore: new Date(NOW - DAY),
    notAfter: new Date(notAfter),
    signingAlgorithm: EC,
    extensions: [new x509.BasicConstraintsExtension(ca, ca ? 1 : undefined, true)],
  });
  return new Uint8Array(c.rawData);
}

async function pki(): Promise<{ root: Uint8Array; inter: Uint8Array; leaf: Uint8Array; shortLeaf: Uint8Array; forged: Uint8Array }> {
  const rk = await keys();
  const ik = await keys();
  const lk = await keys();
  const rogue = await keys();
  const root = await cert('CN=Maker root', 'CN=Maker root', rk, rk, true);
  const inter = await cert('CN=Maker intermediate', 'CN=Maker root', ik, rk, true);
  const leaf = await cert('CN=card 01', 'CN=Maker intermediate', lk, ik, false);
  const shortLeaf = await cert('CN=card 02', 'CN=Maker intermediate', lk, ik, false, NOW + DAY);
  // same names, same key, signed by a key that is not the intermediate's
  const forged = await cert('CN=card 01', 'CN=Maker intermediate', lk, rogue, false);
  return { root, inter, leaf, shortLeaf, forged };
}

const delta = (f: () => void): { parses: number; signatureChecks: number } => {
  const a = { ...chainCacheStats };
  f();
  return { parses: chainCacheStats.parses - a.parses, signatureChecks: chainCacheStats.signatureChecks - a.signatureChecks };
};

test('a verified chain is verified again from the cache: no parse, no signature check; same anchor and key', async () => {
  clearChainCache();
  const p = await pki();
  let first!: ReturnType<typeof verifyChain>;
  const d1 = delta(() => (first = verifyChain(p.leaf, [p.inter], [p.root], NOW)));
  assert.deepEqual(d1, { parses: 3, signatureChecks: 2 });
  let again!: ReturnType<typeof verifyChain>;
  const d2 = delta(() => (again = verifyChain(p.leaf, [p.inter], [p.root], NOW)));
  assert.deepEqual(d2, { parses: 0, signatureChecks: 0 }, 'the second verification is served by the cache');
  assert.deepEqual(again.anchorDer, p.root);
  assert.equal(again.leafKey, first.leafKey, 'the parsed key is reused');
  assert.equal(again.leafCurve, 'prime256v1');
  // another leaf under the same intermediate: only its own parse and its own signature
  const d3 = delta(() => verifyChain(p.shortLeaf, [p.inter], [p.root], NOW));
  assert.deepEqual(d3, { parses: 1, signatureChecks: 1 }, 'the intermediate ← root signature is not checked again');
});

test('the cache refuses what it has not verified: a forged leaf with the same names, every time', async () => {
  clearChainCache();
  const p = await pki();
  verifyChain(p.leaf, [p.inter], [p.root], NOW);
  for (let i = 0; i < 2; i++) {
    const d = delta(() => assert.throws(() => verifyChain(p.forged, [p.inter], [p.root], NOW), ChainError));
    assert.equal(d.signatureChecks, 1, 'a failed signature is checked again, never cached');
  }
});

test('a manufacturer CA removed from the trust list ends every cached path through it; validity is evaluated at each call', async () => {
  clearChainCache();
  const p = await pki();
  const other = await pki();
  verifyChain(p.leaf, [p.inter], [p.root], NOW);
  verifyChain(p.shortLeaf, [p.inter], [p.root], NOW);
  // the trust list now holds another manufacturer only
  assert.throws(() => verifyChain(p.leaf, [p.inter], [other.root], NOW), /does not chain to a trusted manufacturer CA/);
  // the intermediate itself as the only anchor is still a valid path end (as before the cache)
  assert.deepEqual(verifyChain(p.leaf, [], [p.inter], NOW).anchorDer, p.inter);
  // expired at `now`: refused although its signatures are cached
  assert.throws(() => verifyChain(p.shortLeaf, [p.inter], [p.root], NOW + 2 * DAY), /outside its validity/);
  assert.ok(verifyChain(p.shortLeaf, [p.inter], [p.root], NOW));
});

test('namedCurve: the names asymmetricKeyDetails gives, read from the JWK for the curves it names; other curves and key types as before', () => {
  for (const curve of ['prime256v1', 'secp384r1', 'secp521r1', 'secp256k1', 'brainpoolP256r1']) {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
    assert.equal(namedCurve(publicKey), publicKey.asymmetricKeyDetails?.namedCurve, curve);
    assert.equal(namedCurve(publicKey), curve);
  }
  assert.equal(namedCurve(generateKeyPairSync('ed25519').publicKey), undefined);
  assert.equal(namedCurve(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey), undefined);
});
