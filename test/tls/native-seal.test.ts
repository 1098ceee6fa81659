// The native AEAD sealer (native/setls_aead.c through src/tls/record/native-seal.ts): for every AEAD
// it serves, what it writes into a slab is byte for byte what node:crypto seals (random keys, nonces,
// AADs and piece splits, fast-check), it writes nothing outside its record, it refuses what it must
// (no room, too many pieces, a freed key, an output overlapping an input, a bad nonce), and it declines what it does
// not serve (AES-CCM, short tags) so the caller seals with node:crypto. In CI the module must be
// built and loaded (`npm ci` builds it); locally a missing build skips these tests with the reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { aeadSeal, type AeadName } from '../../src/tls/crypto.js';
import { NativeSealer, nativeSealStatus, pushSlabView, type SealSlab } from '../../src/tls/record/native-seal.js';
import { skipOrFail } from '../ci.js';

const status = nativeSealStatus();
const need = (t: import('node:test').TestContext): boolean => skipOrFail(t, status.active ? undefined : `the native sealer is not active: ${status.reason}`);

const AEADS: [AeadName, number][] = [
  ['aes-128-gcm', 16],
  ['aes-256-gcm', 32],
  ['chacha20-poly1305', 32],
];

test('the native sealer is built and passed its known-answer self-test', (t) => {
  if (!need(t)) return;
  assert.equal(status.reason, 'loaded');
});

for (const [aead, keyLength] of AEADS) {
  test(`${aead}: sealed into a slab = node:crypto's aeadSeal, nothing written outside the record (fast-check)`, (t) => {
    if (!need(t)) return;
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: keyLength, maxLength: keyLength }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ maxLength: 13 }),
        fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 6 }),
        fc.uint8Array({ maxLength: 1 }),
        fc.nat(64),
        (key, nonce, aad, pieces, last, offset) => {
          const plain = Buffer.concat([...pieces, last]);
          const want = aeadSeal(aead, key, nonce, aad, plain, 16);
          const s = NativeSealer.create(aead, key, 16)!;
          try {
            const buf = Buffer.alloc(offset + 2 * want.length + 40, 0xee);
            const slab: SealSlab = { buf, used: offset };
            const n = s.sealInto(nonce, aad, pieces, plain.length - last.length, last, slab);
            assert.equal(n, want.length);
            assert.equal(slab.used, offset + n);
            assert.deepEqual(new Uint8Array(buf.subarray(offset, offset + n)), want);
            assert.ok(buf.subarray(0, offset).every((b) => b === 0xee), 'nothing before the record');
            assert.ok(buf.subarray(offset + n).every((b) => b === 0xee), 'nothing after the record');
            // the same key, the next record: the key schedule is kept, only the nonce changes
            const nonce2 = nonce.slice();
            nonce2[11]! ^= 1;
            const n2 = s.sealInto(nonce2, aad, pieces, plain.length - last.length, last, slab);
            assert.equal(n2, want.length);
            assert.deepEqual(new Uint8Array(buf.subarray(offset + n, offset + n + n2)), aeadSeal(aead, key, nonce2, aad, plain, 16));
            assert.ok(buf.subarray(offset + n + n2).every((b) => b === 0xee), 'nothing after the second record');
          } finally {
            s.free();
          }
        },
      ),
      { numRuns: 60 },
    );
  });
}

test('refusals: no room writes nothing; a freed sealer, a bad nonce, an overlapping output throw', (t) => {
  if (!need(t)) return;
  const key = new Uint8Array(16).fill(7);
  const s = NativeSealer.create('aes-128-gcm', key, 16)!;
  const slab: SealSlab = { buf: Buffer.alloc(100, 0xee), used: 10 };
  assert.equal(s.sealInto(new Uint8Array(12), new Uint8Array(5), [new Uint8Array(80)], 80, new Uint8Array(0), slab), -1, 'no room: -1');
  assert.equal(slab.used, 10);
  assert.ok(slab.buf.every((b) => b === 0xee), 'nothing written');
  assert.throws(() => s.sealInto(new Uint8Array(11), new Uint8Array(5), [new Uint8Array(4)], 4, new Uint8Array(0), slab), (e: Error & { code?: string }) => e.code === 'ERR_TLS_INTERNAL' && /nonce/.test(e.message));
  // a piece that is the slab itself, where the record would go
  assert.throws(() => s.sealInto(new Uint8Array(12), new Uint8Array(5), [slab.buf.subarray(12, 30)], 18, new Uint8Array(0), slab), /overlaps/);
  assert.equal(slab.used, 10);
  // more pieces than one native call takes: -1, the caller seals with node:crypto
  assert.equal(s.sealInto(new Uint8Array(12), new Uint8Array(5), Array.from({ length: 65 }, () => Uint8Array.of(1)), 65, new Uint8Array(0), { buf: Buffer.alloc(200), used: 0 }), -1);
  s.free();
  s.free(); // twice is harmless
  assert.throws(() => s.sealInto(new Uint8Array(12), new Uint8Array(5), [new Uint8Array(4)], 4, new Uint8Array(0), slab), /after free/);
  assert.throws(() => NativeSealer.create('aes-128-gcm', new Uint8Array(15), 16), /key length/);
});

test('declined: AES-CCM and tags other than 16 bytes are left to node:crypto', () => {
  assert.equal(NativeSealer.create('aes-128-ccm', new Uint8Array(16), 16), undefined);
  assert.equal(NativeSealer.create('aes-128-gcm', new Uint8Array(16), 8), undefined);
});

test('pushSlabView: one chunk per contiguous run of the slab, a new one after anything else', () => {
  const slab: SealSlab = { buf: Buffer.alloc(64), used: 0 };
  const out: Uint8Array[] = [];
  slab.used = 10;
  pushSlabView(out, slab, 0);
  slab.used = 25;
  pushSlabView(out, slab, 10);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.byteOffset - slab.buf.byteOffset, 0);
  assert.equal(out[0]!.length, 25);
  out.push(Uint8Array.of(1, 2));
  slab.used = 30;
  pushSlabView(out, slab, 25);
  assert.equal(out.length, 3);
  assert.equal(out[2]!.length, 5);
  // a gap (a record abandoned after its header) starts a new chunk
  slab.used = 40;
  pushSlabView(out, slab, 35);
  assert.equal(out.length, 4);
});
