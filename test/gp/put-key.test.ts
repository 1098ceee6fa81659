/**
 * PUT KEY key blocks: bytes checked against an independent AES (noble), the card-side parse with
 * its KCV checks, and a key rotation through an SCP03 session at level 33 whose wire bytes hold
 * neither the new keys nor their key blocks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cbc } from '@noble/ciphers/aes.js';
import { concat, fromHex, toHex } from '../../src/bytes/index.js';
import {
  aesKcv,
  buildPutKey,
  buildPutKeyData,
  checkPutKeyResponse,
  encodeAesKeyBlock,
  parsePutKey,
  putKeyResponseData,
  Scp03Card,
  Scp03Host,
  staticKeys,
} from '../../src/gp/index.js';
import { SD_AID, testKeys } from './helpers.js';

const DEK = fromHex('202122232425262728292a2b2c2d2e2f');

test('an AES key block is 88 Lk len AES-CBC(K-DEK, 0, key ‖ 00…) 03 KCV', () => {
  for (const len of [16, 24, 32]) {
    const key = Uint8Array.from({ length: len }, (_, i) => 0xa0 + i);
    const padded = new Uint8Array(Math.ceil(len / 16) * 16);
    padded.set(key);
    const cgram = cbc(DEK, new Uint8Array(16), { disablePadding: true }).encrypt(padded);
    const want = concat(Uint8Array.of(0x88, cgram.length + 1, len), cgram, Uint8Array.of(3), aesKcv(key));
    assert.equal(toHex(encodeAesKeyBlock(DEK, key)), toHex(want), `AES-${len * 8}`);
  }
});

test('the card decodes PUT KEY and checks every KCV; malformed or tampered data is refused', () => {
  const next = testKeys(0x31, 32);
  const data = buildPutKeyData(DEK, next);
  const ok = parsePutKey(DEK, 0x30, 0x81, data);
  assert.ok(ok.ok, 'ok.ok');
  assert.equal(ok.keys.kvn, 0x31);
  assert.equal(ok.replaceKvn, 0x30);
  assert.deepEqual([toHex(ok.keys.enc), toHex(ok.keys.mac), toHex(ok.keys.dek)], [toHex(next.enc), toHex(next.mac), toHex(next.dek)]);

  const refused = (p1: number, p2: number, d: Uint8Array, dek = DEK) => {
    const r = parsePutKey(dek, p1, p2, d);
    assert.equal(r.ok, false);
    return (r as { sw: number }).sw.toString(16);
  };
  const kcvAt = 1 + 3 + 32 + 1; // first key block's KCV
  const badKcv = data.slice();
  badKcv[kcvAt]! ^= 1;
  assert.equal(refused(0, 0x81, badKcv), '6a80');
  assert.equal(refused(0, 0x81, data, fromHex('00'.repeat(16))), '6a80', 'another K-DEK: KCVs do not match');
  assert.equal(refused(0, 0x01, data), '6a86');
  assert.equal(refused(0x20, 0x81, data), '6a86');
  const badKvn = data.slice();
  badKvn[0] = 0x40;
  assert.equal(refused(0, 0x81, badKvn), '6a80');
  assert.equal(refused(0, 0x81, concat(data, fromHex('00'))), '6a80', 'trailing byte');
  assert.equal(refused(0, 0x81, data.subarray(0, data.length - 1)), '6a80', 'truncated');
  const mixed = concat(Uint8Array.of(0x31), encodeAesKeyBlock(DEK, next.enc), encodeAesKeyBlock(DEK, next.mac.subarray(0, 16)), encodeAesKeyBlock(DEK, next.dek));
  assert.equal(refused(0, 0x81, mixed), '6a80', 'keys of different lengths');
  const desType = data.slice();
  desType[1] = 0x80;
  assert.equal(refused(0, 0x81, desType), '6a80', 'not AES');
});

test('key rotation through a level-33 session: the relay sees no key, key block or KCV', () => {
  const current = testKeys(0x30);
  const next = staticKeys(0x31, fromHex('00112233445566778899aabbccddeeff'), fromHex('0f1e2d3c4b5a69788796a5b4c3d2e1f0'), fromHex('f0e0d0c0b0a090807060504030201000'));
  const card = new Scp03Card({ sdAid: SD_AID, lookupKeys: () => current });
  const host = new Scp03Host({ keys: current, sdAid: SD_AID });
  host.processInitializeUpdateResponse(card.initializeUpdate(host.initializeUpdate(), 1).response);
  card.externalAuthenticate(host.externalAuthenticate(0x33));

  const plain = buildPutKey(host.dek!, next, { replaceKvn: 0x30 });
  assert.equal(toHex(plain.subarray(0, 4)), '80d83081');
  const wire = host.wrap(plain);
  const logged = toHex(wire);
  for (const secret of [next.enc, next.mac, next.dek, plain.subarray(5, 5 + 40), aesKcv(next.enc)]) {
    assert.ok(!logged.includes(toHex(secret)), 'a secret crossed the relay in clear');
  }

  const u = card.unwrapCommand(wire);
  assert.ok(u.ok, 'u.ok');
  const parsed = parsePutKey(current.dek, u.command.p1, u.command.p2, u.command.data);
  assert.ok(parsed.ok, 'parsed.ok');
  const resp = card.wrapResponse(putKeyResponseData(parsed.keys), 0x9000);
  const r = host.unwrap(resp);
  assert.equal(r.sw, 0x9000);
  assert.ok(checkPutKeyResponse(r.data, next), 'checkPutKeyResponse(r.data, next)');
  assert.ok(!checkPutKeyResponse(r.data, current), '!checkPutKeyResponse(r.data, current)');

  // the new key set opens a session
  const card2 = new Scp03Card({ sdAid: SD_AID, lookupKeys: (kvn) => (kvn === 0x31 ? parsed.keys : undefined) });
  const host2 = new Scp03Host({ keys: next, sdAid: SD_AID });
  host2.processInitializeUpdateResponse(card2.initializeUpdate(host2.initializeUpdate(), 2).response);
  assert.equal(card2.externalAuthenticate(host2.externalAuthenticate(0x33)).sw, 0x9000);
});

test('PUT KEY builders refuse KVNs outside 30..3F', () => {
  assert.throws(() => buildPutKeyData(DEK, testKeys(0x20)), RangeError);
  assert.throws(() => buildPutKey(DEK, testKeys(0x31), { replaceKvn: 0x7f }), RangeError);
});
