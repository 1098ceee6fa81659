/**
 * AES-CMAC: every RFC 4493 example (AES-128, with its subkeys), the NIST SP 800-38B AES-192 and
 * AES-256 examples, and a differential property test against an independent implementation
 * (@noble/ciphers' cmac, a dev dependency used only here) over random keys and lengths.
 * Also the padding helpers and the SCP03 KDF's input layout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cmac as nobleCmac, ecb } from '@noble/ciphers/aes.js';
import { concat, fromHex, toHex } from '../../src/bytes/index.js';
import { aesCmac, cmacSubkeys, pad80, scp03Kdf, unpad80, aesKcv } from '../../src/gp/index.js';

const M64 = fromHex(
  '6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51 30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710',
);
const LENGTHS = [0, 16, 40, 64] as const;

const KEYS = {
  // RFC 4493 §4 (= SP 800-38B D.1)
  aes128: {
    key: '2b7e151628aed2a6abf7158809cf4f3c',
    k1: 'fbeed618357133667c85e08f7236a8de',
    k2: 'f7ddac306ae266ccf90bc11ee46d513b',
    tags: ['bb1d6929e95937287fa37d129b756746', '070a16b46b4d4144f79bdd9dd04a287c', 'dfa66747de9ae63030ca32611497c827', '51f0bebf7e3b9d92fc49741779363cfe'],
  },
  // SP 800-38B D.2
  aes192: {
    key: '8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b',
    tags: ['d17ddf46adaacde531cac483de7a9367', '9e99a7bf31e710900662f65e617c5184', '8a1de5be2eb31aad089a82e6ee908b0e', 'a1d5df0eed790f794d77589659f39a11'],
  },
  // SP 800-38B D.3
  aes256: {
    key: '603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4',
    k1: 'cad1ed03299eedac2e9a99808621502f',
    k2: '95a3da06533ddb585d3533010c42a0d9',
    tags: ['028962f61b7bf89efc6b551f4667d983', '28a7023f452e8f82bd4bf28d8c37c35c', 'aaf3d8f1de5640c232f5b169b9c911e6', 'e1992190549f6ed5696a2c056c315410'],
  },
};

test('RFC 4493 AES-CMAC examples 1-4 and the subkeys K1, K2', () => {
  const { key, k1, k2, tags } = KEYS.aes128;
  const sub = cmacSubkeys(fromHex(key));
  assert.equal(toHex(sub.k1), k1);
  assert.equal(toHex(sub.k2), k2);
  LENGTHS.forEach((n, i) => assert.equal(toHex(aesCmac(fromHex(key), M64.subarray(0, n))), tags[i], `Mlen ${n * 8}`));
});

test('NIST SP 800-38B AES-192 examples', () => {
  const { key, tags } = KEYS.aes192;
  LENGTHS.forEach((n, i) => assert.equal(toHex(aesCmac(fromHex(key), M64.subarray(0, n))), tags[i], `Mlen ${n * 8}`));
});

test('NIST SP 800-38B AES-256 examples and subkeys', () => {
  const { key, k1, k2, tags } = KEYS.aes256;
  const sub = cmacSubkeys(fromHex(key));
  assert.equal(toHex(sub.k1), k1);
  assert.equal(toHex(sub.k2), k2);
  LENGTHS.forEach((n, i) => assert.equal(toHex(aesCmac(fromHex(key), M64.subarray(0, n))), tags[i], `Mlen ${n * 8}`));
});

test('AES-CMAC agrees with @noble/ciphers for random keys (16/24/32) and messages (0..100 bytes)', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(16, 24, 32).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
      fc.uint8Array({ minLength: 0, maxLength: 100 }),
      (key, msg) => {
        assert.equal(toHex(aesCmac(key, msg)), toHex(nobleCmac(msg, key)));
      },
    ),
    { numRuns: 500 },
  );
});

test('a key of another length is refused', () => {
  assert.throws(() => aesCmac(new Uint8Array(15), new Uint8Array(0)), { code: 'ERR_GP_KEY' });
});

test('padding method 2 always adds 1..16 bytes and is removed strictly', () => {
  assert.equal(toHex(pad80(new Uint8Array(0))), '80' + '00'.repeat(15));
  assert.equal(pad80(new Uint8Array(16)).length, 32);
  assert.equal(toHex(unpad80(pad80(fromHex('0102')))!), '0102');
  assert.equal(unpad80(fromHex('01'.repeat(16))), undefined, 'no 80');
  assert.equal(unpad80(fromHex('80' + '00'.repeat(16) + '00'.repeat(15))), undefined, '80 beyond the last block');
  assert.equal(unpad80(fromHex('0180')), undefined, 'not whole blocks');
  fc.assert(fc.property(fc.uint8Array({ maxLength: 70 }), (d) => toHex(unpad80(pad80(d))!) === toHex(d)));
});

test('the SCP03 KDF input is 00×11 ‖ const ‖ 00 ‖ L ‖ i ‖ context, CMAC per 128 bits', () => {
  const key = fromHex('000102030405060708090a0b0c0d0e0f');
  const ctx = fromHex('b13e5f938fc108c43eb51047495b249f');
  const d = (i: number, bits: number) => concat(new Uint8Array(11), Uint8Array.of(0x04, 0x00, bits >> 8, bits & 0xff, i), ctx);
  assert.equal(toHex(scp03Kdf(key, 0x04, 128, ctx)), toHex(aesCmac(key, d(1, 128))));
  assert.equal(toHex(scp03Kdf(key, 0x04, 256, ctx)), toHex(concat(aesCmac(key, d(1, 256)), aesCmac(key, d(2, 256)))));
  assert.equal(toHex(scp03Kdf(key, 0x04, 192, ctx)), toHex(concat(aesCmac(key, d(1, 192)), aesCmac(key, d(2, 192)))).slice(0, 48));
  assert.throws(() => scp03Kdf(key, 0x04, 12, ctx), RangeError);
});

test('AES key check value: first 3 bytes of AES-ECB(key, 01×16), checked against noble ECB', () => {
  for (const key of [KEYS.aes128.key, KEYS.aes192.key, KEYS.aes256.key, '404142434445464748494a4b4c4d4e4f']) {
    const k = fromHex(key);
    const block = ecb(k, { disablePadding: true }).encrypt(new Uint8Array(16).fill(1));
    assert.equal(toHex(aesKcv(k)), toHex(block.subarray(0, 3)));
  }
});
