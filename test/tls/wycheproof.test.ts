/** Wycheproof vectors (/work/shared/vectors/wycheproof) against src/tls/crypto.ts. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fromHex, toHex } from '../../src/bytes/index.js';
import { GROUPS, aeadOpen, aeadSeal, hkdfExpand, hkdfExtract, verifySignature } from '../../src/tls/crypto.js';

const DIR = '/work/shared/vectors/wycheproof/';
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
