/** Wycheproof vectors (test/fixtures/wycheproof, a copy of the project's shared vectors; Apache-2.0, see LICENSE there) against src/tls/crypto.ts. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fromHex, toHex } from '../../src/bytes/index.js';
import { GROUPS, aeadOpen, aeadSeal, hkdfExpand, hkdfExtract, verifySignature } from '../../src/tls/crypto.js';

const DIR = new URL('../fixtures/wycheproof/', import.meta.url).pathname;
interface Test { tcId: number; result: 'valid' | 'invalid' | 'acceptable'; flags: string[]; [k: string]: unknown }
interface Group { tests: Test[]; [k: string]: unknown }
const load = (f: string) => JSON.parse(readFileSync(DIR + f, 'utf8')) as { testGroups: Group[] };
const h = (v: unknown) => fromHex(String(v));

test('Wycheproof AES-GCM (128-bit key, 96-bit IV, 128-bit tag): seal matches valid, open rejects invalid', () => {
  let checked = 0;
  let rejected = 0;
  for (const g of load('aes_gcm_test.json').testGroups) {
    if (g.keySize !== 128 || g.ivSize !== 96 || g.tagSize !== 128) continue;
    for (const t of g.tests) {
      const [key, iv, aad, msg, ct, tag] = [h(t.key), h(t.iv), h(t.aad), h(t.msg), h(t.ct), h(t.tag)];
      const sealedInput = new Uint8Array([...ct, ...tag]);
      const opened = aeadOpen('aes-128-gcm', key, iv, aad, sealedInput);
      if (t.result === 'valid') {
        assert.equal(toHex(aeadSeal('aes-128-gcm', key, iv, aad, msg)), toHex(sealedInput), `tc ${t.tcId}`);
        assert.ok(opened, `tc ${t.tcId} must open`);
        assert.equal(toHex(opened!), toHex(msg), `tc ${t.tcId}`);
      } else if (t.result === 'invalid') {
        assert.equal(opened, undefined, `tc ${t.tcId} must be rejected`);
        rejected++;
      }
      checked++;
    }
  }
  assert.ok(checked > 50 && rejected > 5, `${checked} checked, ${rejected} rejected`);
});

test('Wycheproof HKDF-SHA256: extract+expand matches; oversize requests rejected', () => {
  let n = 0;
  for (const g of load('hkdf_sha256_test.json').testGroups) {
    for (const t of g.tests) {
      const size = Number(t.size);
      if (t.result === 'invalid') {
        assert.throws(() => hkdfExpand('sha256', hkdfExtract('sha256', h(t.salt), h(t.ikm)), h(t.info), size), `tc ${t.tcId}`);
        continue;
      }
      const salt = h(t.salt);
      const prk = hkdfExtract('sha256', salt.length ? salt : new Uint8Array(32), h(t.ikm));
      assert.equal(toHex(hkdfExpand('sha256', prk, h(t.info), size)), String(t.okm), `tc ${t.tcId}`);
      n++;
    }
  }
  assert.ok(n > 50);
});

test('Wycheproof X25519: shared secrets match; zero shared secrets rejected', () => {
  const x = GROUPS.get(0x001d)!;
  let n = 0;
  for (const g of load('x25519_test.json').testGroups) {
    for (const t of g.tests) {
      const key = x.generate(h(t.private));
      const zero = /^0+$/.test(String(t.shared));
      if (zero) {
        assert.throws(() => key.deriveShared(h(t.public)), { code: 'ERR_TLS_BAD_KEY_SHARE' }, `tc ${t.tcId}`);
      } else if (t.result !== 'invalid') {
        assert.equal(toHex(key.deriveShared(h(t.public))), String(t.shared), `tc ${t.tcId}`);
      }
      n++;
    }
  }
  assert.ok(n > 100);
});

test('Wycheproof ECDSA P-256/SHA-256 (DER): verify accepts valid, rejects invalid', () => {
  let n = 0;
  for (const g of load('ecdsa_secp256r1_sha256_test.json').testGroups) {
    const spki = h(g.publicKeyDer);
    for (const t of g.tests) {
      const ok = verifySignature(0x0403, spki, h(t.msg), h(t.sig));
      if (t.result === 'valid') assert.equal(ok, true, `tc ${t.tcId}`);
      if (t.result === 'invalid') assert.equal(ok, false, `tc ${t.tcId}`);
      n++;
    }
  }
  assert.ok(n > 100);
});

/** Runs an AEAD group filter over a Wycheproof file: seal must match valid vectors, open must reject invalid ones. */
function aeadVectors(
  file: string,
  aead: 'aes-256-gcm' | 'chacha20-poly1305' | 'aes-128-ccm',
  keyBits: number,
  tagBits: number,
): { checked: number; rejected: number } {
  let checked = 0;
  let rejected = 0;
  for (const g of load(file).testGroups) {
    if (g.keySize !== keyBits || g.tagSize !== tagBits) continue;
    for (const t of g.tests) {
      const [key, iv, aad, msg, ct, tag] = [h(t.key), h(t.iv), h(t.aad), h(t.msg), h(t.ct), h(t.tag)];
      const sealed = new Uint8Array([...ct, ...tag]);
      const opened = aeadOpen(aead, key, iv, aad, sealed, tagBits / 8);
      if (t.result === 'valid' && iv.length === 12) {
        assert.equal(toHex(aeadSeal(aead, key, iv, aad, msg, tagBits / 8)), toHex(sealed), `${file} tc ${t.tcId}`);
        assert.ok(opened, `${file} tc ${t.tcId} must open`);
        assert.equal(toHex(opened!), toHex(msg), `${file} tc ${t.tcId}`);
        checked++;
      } else if (t.result === 'invalid' || iv.length !== 12) {
        // TLS 1.3 nonces are always 12 bytes: other sizes are refused even when the vector is valid.
        assert.equal(opened, undefined, `${file} tc ${t.tcId} must be rejected`);
        rejected++;
      }
    }
  }
  return { checked, rejected };
}

test('Wycheproof ChaCha20-Poly1305 (TLS_CHACHA20_POLY1305_SHA256)', () => {
  const r = aeadVectors('chacha20_poly1305_test.json', 'chacha20-poly1305', 256, 128);
  assert.ok(r.checked > 200 && r.rejected > 50, JSON.stringify(r));
});

test('Wycheproof AES-128-CCM, 16-byte tag (TLS_AES_128_CCM_SHA256)', () => {
  const r = aeadVectors('aes_ccm_test.json', 'aes-128-ccm', 128, 128);
  assert.ok(r.checked > 20 && r.rejected > 10, JSON.stringify(r));
});

test('Wycheproof AES-128-CCM, 8-byte tag (TLS_AES_128_CCM_8_SHA256)', () => {
  const r = aeadVectors('aes_ccm_test.json', 'aes-128-ccm', 128, 64);
  assert.ok(r.checked >= 5, JSON.stringify(r));
});

test('Wycheproof AES-256-GCM (TLS_AES_256_GCM_SHA384)', () => {
  const r = aeadVectors('aes_gcm_test.json', 'aes-256-gcm', 256, 128);
  assert.ok(r.checked > 20 && r.rejected > 5, JSON.stringify(r));
});

test('Wycheproof ECDH secp256r1 (ecpoint encoding): shared secrets match; invalid and compressed points rejected', () => {
  const p256 = GROUPS.get(0x0017)!;
  let valid = 0;
  let rejected = 0;
  for (const g of load('ecdh_secp256r1_ecpoint_test.json').testGroups) {
    for (const t of g.tests) {
      const priv = h(t.private);
      const raw = new Uint8Array(32);
      raw.set(priv.subarray(Math.max(0, priv.length - 32)), 32 - Math.min(32, priv.length)); // strip DER sign byte / left-pad
      const key = p256.generate(raw);
      const pub = h(t.public);
      if (t.result === 'valid') {
        assert.equal(toHex(key.deriveShared(pub)), String(t.shared), `tc ${t.tcId}`);
        valid++;
      } else {
        // invalid: not on the curve, wrong encoding. acceptable: compressed points, which TLS 1.3 forbids
        // (RFC 8446 §4.2.8.2: uncompressed only). Both → ERR_TLS_BAD_KEY_SHARE (illegal_parameter).
        assert.throws(() => key.deriveShared(pub), { code: 'ERR_TLS_BAD_KEY_SHARE' }, `tc ${t.tcId} ${t.comment}`);
        rejected++;
      }
    }
  }
  assert.ok(valid > 300 && rejected >= 20, `${valid} valid, ${rejected} rejected`);
});

test('Wycheproof ECDH secp256r1: the generated public key is a 65-byte uncompressed point', () => {
  const k = GROUPS.get(0x0017)!.generate();
  assert.equal(k.publicKey.length, 65);
  assert.equal(k.publicKey[0], 4);
});
