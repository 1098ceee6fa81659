/**
 * Per-card static keys: the documented SP 800-108 construction recomputed independently (noble's
 * CMAC), separation by UID, KVN and purpose, and a session opened with diversified keys.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cmac } from '@noble/ciphers/aes.js';
import { concat, fromHex, toHex } from '../../src/bytes/index.js';
import { deriveCardKeys, diversifyKey, DiversifyPurpose, Scp03Card, Scp03Host } from '../../src/gp/index.js';
import { SD_AID } from './helpers.js';

const MASTER = fromHex('000102030405060708090a0b0c0d0e0f');
const UID = fromHex('00112233445566778899aabbccddeeff');

/** The construction in docs/gp-scp03.md and src/gp/diversify.ts, written out again. */
function reference(master: Uint8Array, uid: Uint8Array, purpose: number, kvn: number, len: number): string {
  const label = new TextEncoder().encode('setls-scp03-static-key-v1');
  const bits = len * 8;
  const block = (i: number) => cmac(concat(Uint8Array.of(i), label, Uint8Array.of(0, purpose, kvn, uid.length), uid, Uint8Array.of(bits >> 8, bits & 0xff)), master);
  return toHex(concat(block(1), block(2))).slice(0, len * 2);
}

test('diversified keys follow the documented construction (16, 24 and 32 bytes)', () => {
  for (const [master, len] of [[MASTER, 16], [MASTER, 24], [fromHex('00'.repeat(32)), 32]] as const) {
    for (const purpose of [1, 2, 3] as const) {
      assert.equal(toHex(diversifyKey(master, UID, purpose, 0x30, len)), reference(master, UID, purpose, 0x30, len));
    }
  }
});

test('keys differ by UID, KVN and purpose; the label keeps them apart from GP derivations', () => {
  const k = (uid: Uint8Array, kvn: number, p: 1 | 2 | 3) => toHex(diversifyKey(MASTER, uid, p, kvn));
  const all = [k(UID, 0x30, 1), k(UID, 0x30, 2), k(UID, 0x30, 3), k(UID, 0x31, 1), k(fromHex('01' + '00'.repeat(15)), 0x30, 1)];
  assert.equal(new Set(all).size, all.length);
  const set = deriveCardKeys(MASTER, UID, 0x31);
  assert.equal(set.kvn, 0x31);
  assert.equal(toHex(set.enc), k(UID, 0x31, DiversifyPurpose.enc));
  assert.throws(() => diversifyKey(MASTER, UID, 1, 0x30, 20), { code: 'ERR_GP_KEY' });
});

test('manufacturer and operator derive the same per-card key set and open a session with it', () => {
  const cardKeys = deriveCardKeys(MASTER, UID, 0x30); // written into the card at the factory
  const card = new Scp03Card({ sdAid: SD_AID, lookupKeys: (kvn) => (kvn === 0x30 ? cardKeys : undefined) });
  const host = new Scp03Host({ keys: deriveCardKeys(MASTER, UID, 0x30), sdAid: SD_AID });
  host.processInitializeUpdateResponse(card.initializeUpdate(host.initializeUpdate(), 0).response);
  assert.equal(card.externalAuthenticate(host.externalAuthenticate(0x33)).sw, 0x9000);
});
