/**
 * pki/csr-check's P-256 key import (the enrolment hot path): a P-256 SubjectPublicKeyInfo with an
 * uncompressed point is imported from its coordinates (JWK), every other key through OpenSSL's SPKI
 * decoder — with the same results as the high-level check (pki/csr.ts), and a point that is not a
 * valid P-256 public key (off the curve, a coordinate ≥ p, all zeros) refused as before
 * (ERR_OP_CSR_INVALID), on both paths.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, sign as nodeSign, webcrypto, type KeyObject } from 'node:crypto';
import { checkCsr } from '../../src/operator/pki/csr.js';
import { checkCsrDer, csrKeyImports } from '../../src/operator/pki/csr-check.js';
import { derWrap } from '../../src/operator/pki/der.js';
import { OpError } from '../../src/operator/errors.js';
import { x509 } from '../../src/operator/pki/x509.js';

const ALG = Uint8Array.of(0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02);
const NAME = derWrap(0x30, [derWrap(0x31, [derWrap(0x30, [Uint8Array.of(0x06, 0x03, 0x55, 0x04, 0x03), derWrap(0x0c, [Buffer.from('card')])])])]);

/** A CSR carrying `spki` (whatever its bytes), self-signed by `key`. */
function csrWith(spki: Uint8Array, key: KeyObject): Uint8Array {
  const cri = derWrap(0x30, [Uint8Array.of(0x02, 0x01, 0x00), NAME, spki, Uint8Array.of(0xa0, 0x00)]);
  return derWrap(0x30, [cri, ALG, derWrap(0x03, [Uint8Array.of(0), nodeSign('sha256', cri, { key, dsaEncoding: 'der' })])]);
}

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof OpError, String(e));
    return e.code;
  }
  return 'accepted';
}

test('a P-256 CSR key is imported from its coordinates, with the high-level check result', async () => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
  const der = csrWith(spki, privateKey);
  const before = { ...csrKeyImports };
  const got = checkCsrDer(der);
  assert.equal(csrKeyImports.p256, before.p256 + 1, 'the P-256 fast path was taken');
  assert.equal(csrKeyImports.spki, before.spki);
  assert.deepEqual(got, await checkCsr(der));
  assert.equal(got.alg, 'p256');
  assert.deepEqual(got.spkiDer, spki);
});

test('other keys go through the SPKI decoder: RSA, a compressed P-256 point', async () => {
  const rsaKeys = (await webcrypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const rsa = new Uint8Array((await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=card', keys: rsaKeys, signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } })).rawData);
  let before = { ...csrKeyImports };
  assert.equal(checkCsrDer(rsa).alg, 'rsa2048');
  assert.deepEqual(csrKeyImports, { p256: before.p256, spki: before.spki + 1 });

  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const full = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
  // the same key with its point compressed: 02/03 (parity of y) then x
  const compressed = Uint8Array.from([...Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'), 0x02 | (full[90]! & 1), ...full.subarray(27, 59)]);
  assert.equal(createPublicKey({ key: Buffer.from(compressed), format: 'der', type: 'spki' }).export({ format: 'jwk' }).y, publicKey.export({ format: 'jwk' }).y);
  before = { ...csrKeyImports };
  const der = csrWith(compressed, privateKey);
  const got = checkCsrDer(der);
  assert.deepEqual(csrKeyImports, { p256: before.p256, spki: before.spki + 1 });
  assert.equal(got.alg, 'p256');
  assert.deepEqual(got.spkiDer, compressed);
});

test('a P-256 point that is no public key is ERR_OP_CSR_INVALID, as through the SPKI decoder', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
  const offCurve = spki.slice();
  offCurve[offCurve.length - 1]! ^= 1; // y changed: (x, y') is not on the curve
  const xTooBig = spki.slice();
  xTooBig.fill(0xff, 27, 59); // x ≥ p
  const zeros = spki.slice();
  zeros.fill(0, 27, 91);
  for (const [name, bad] of [['off the curve', offCurve], ['x ≥ p', xTooBig], ['all zeros', zeros]] as const) {
    assert.throws(() => createPublicKey({ key: Buffer.from(bad), format: 'der', type: 'spki' }), Error, `${name}: OpenSSL's decoder refuses it too`);
    const before = csrKeyImports.p256;
    assert.equal(codeOf(() => checkCsrDer(csrWith(bad, privateKey))), 'ERR_OP_CSR_INVALID', name);
    assert.equal(csrKeyImports.p256, before + 1, `${name}: refused on the fast path`);
  }
});
