/**
 * The ISD record's byte form (record-codec.ts): a full record round-trips byte for byte, and
 * anything but the canonical form — truncated, extended, reordered, an unknown tag, a wrong size,
 * a non-shortest length, an impossible value — is refused with ERR_ISD_STATE, never misread.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { concat, fromHex, toHex } from '../../../src/bytes/index.js';
import { staticKeys } from '../../../src/gp/keys.js';
import { encodeAuditEntry } from '../../../src/gp/admin/index.js';
import { blankRecord, decodeIsdRecord, encodeIsdRecord, RecordTag, type IsdRecord } from '../../../src/card/applets/isd/index.js';
import { getFixture } from './helpers.js';

async function fullRecord(): Promise<IsdRecord> {
  const fx = await getFixture();
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const r = blankRecord();
  r.lifecycle = 0x7f;
  r.uid = fromHex('00112233445566778899aabbccddeeff');
  r.sequenceCounter = 0x123456;
  r.attestation = {
    pkcs8: new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' })),
    spki: new Uint8Array(publicKey.export({ format: 'der', type: 'spki' })),
    chain: [...fx.manifest.attestationChain],
  };
  const k = (n: number, len: number) => new Uint8Array(len).fill(n);
  r.keySets = [staticKeys(0x30, k(1, 16), k(2, 16), k(3, 16)), staticKeys(0x31, k(4, 32), k(5, 32), k(6, 32))];
  r.lockedApplets = [fromHex('F0736574 6C7301')];
  r.operatorRoot = fx.operatorRoot.cert;
  r.clientCas = [fx.operatorCa.cert];
  r.revocationNumber = 9;
  r.revokedSerials = [fromHex('01'), fromHex('c0ffee')];
  r.timeAnchor = { time: 1_750_000_000, counter: 4 };
  r.audit = { seq: 70, head: k(7, 32), base: k(8, 32), entries: [encodeAuditEntry({ seq: 69, time: 5, event: 1, detail: fromHex('3033000001') }), encodeAuditEntry({ seq: 70, time: 6, event: 2, detail: new Uint8Array(0) })] };
  r.slots = [
    { slot: 1, status: 3, algorithm: 1, policy: 5, locked: true, generatedInCard: true, staged: [] },
    { slot: 4, status: 2, algorithm: 2, policy: 0, locked: false, generatedInCard: true, staged: [fx.operatorCa.cert] },
  ];
  return r;
}

test('a full record round-trips byte for byte', async () => {
  const r = await fullRecord();
  const b = encodeIsdRecord(r);
  const d = decodeIsdRecord(b);
  assert.deepEqual(d, r);
  assert.equal(toHex(encodeIsdRecord(d)), toHex(b));
  assert.deepEqual(decodeIsdRecord(encodeIsdRecord(blankRecord())), blankRecord());
});

test('truncations, extensions and byte changes are refused (ERR_ISD_STATE) or decode to a canonical record', async () => {
  const b = encodeIsdRecord(await fullRecord());
  for (let n = 0; n < b.length; n++) assert.throws(() => decodeIsdRecord(b.subarray(0, n)), { code: 'ERR_ISD_STATE' }, `truncated to ${n}`);
  assert.throws(() => decodeIsdRecord(concat(b, Uint8Array.of(0x01, 0x01, 0x01))), { code: 'ERR_ISD_STATE' });
  for (let i = 0; i < b.length; i += 7) {
    for (const x of [0x01, 0x80, 0xff]) {
      const m = b.slice();
      m[i] = m[i]! ^ x;
      try {
        const d = decodeIsdRecord(m);
        assert.equal(toHex(encodeIsdRecord(d)), toHex(m), `byte ${i} ^ ${x}: decoded, so it must be canonical`);
      } catch (e) {
        assert.equal((e as { code?: string }).code, 'ERR_ISD_STATE', `byte ${i} ^ ${x}: ${(e as Error).message}`);
      }
    }
  }
});

test('specific malformations: order, unknown tag, sizes, shortest lengths, impossible values', () => {
  const blank = encodeIsdRecord(blankRecord());
  const bad = (b: Uint8Array, what: string) => assert.throws(() => decodeIsdRecord(b), { code: 'ERR_ISD_STATE' }, what);
  bad(concat(Uint8Array.of(0x02, 0x01, 0x0f), Uint8Array.of(0x01, 0x01, 0x01), blank.subarray(6)), 'lifecycle before format');
  bad(concat(blank, Uint8Array.of(0x77, 0x00)), 'unknown tag');
  const r = blankRecord();
  r.lifecycle = 0x33;
  bad(encodeIsdRecord(r), 'lifecycle 33');
  r.lifecycle = 0x0f;
  r.sequenceCounter = 0x1000001;
  bad(encodeIsdRecord(r), 'counter beyond exhausted');
  r.sequenceCounter = 0;
  const k = (n: number) => new Uint8Array(16).fill(n);
  r.keySets = [staticKeys(0x31, k(1), k(2), k(3)), staticKeys(0x30, k(1), k(2), k(3))];
  bad(encodeIsdRecord(r), 'key sets out of order');
  r.keySets = [staticKeys(0x20, k(1), k(2), k(3))];
  bad(encodeIsdRecord(r), 'KVN outside 30..3F');
  r.keySets = [];
  r.slots = [{ slot: 9, status: 1, algorithm: 1, policy: 0, locked: false, generatedInCard: true, staged: [] }];
  bad(encodeIsdRecord(r), 'slot 9');
  // a length in a longer form than needed: UID-less blank record's counter as 81 04
  const i = blank.indexOf(RecordTag.sequenceCounter);
  bad(concat(blank.subarray(0, i + 1), Uint8Array.of(0x81, 0x04), blank.subarray(i + 2)), 'non-shortest length');
});
