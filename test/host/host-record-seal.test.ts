// The exported (TLS-Tandem) record layer's bulk path: HostSession.sealApplicationData must give
// the same bytes as encrypt(), for every TLS 1.3 and TLS 1.2 suite, with its own KeyUpdates, and a
// mirror session holding the client's view of the keys must read every record back. Sealed into a
// slab (the native sealer, src/tls/record/native-seal.ts) it must give the same bytes again, as
// views of the slab wherever the native sealer serves the suite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { concat } from '../../src/bytes/index.js';
import { HostSession } from '../../src/host/index.js';
import type { ExportedSessionBlob } from '../../src/host/card-codec.js';
import { SUITES } from '../../src/tls/crypto.js';
import { AEAD_SUITES12 } from '../../src/tls/record/aead-suites12.js';
import { nativeSealStatus, type SealSlab } from '../../src/tls/record/native-seal.js';

/** Fresh Uint8Arrays (a Buffer's slice() is a view: the sessions must not share key memory). */
const rnd = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

function blobFor(version: number, suite: number): ExportedSessionBlob {
  const s13 = SUITES.get(suite);
  const s12 = AEAD_SUITES12.get(suite);
  const keyLen = version === 0x0304 ? s13!.keyLength : s12!.keyLength;
  const ivLen = version === 0x0304 ? 12 : s12!.fixedIvLength;
  const secLen = version === 0x0304 ? s13!.hashLength : 0;
  return {
    version,
    cipherSuite: suite,
    readSequence: 3n,
    writeSequence: 5n,
    clientTrafficSecret: rnd(secLen),
    serverTrafficSecret: rnd(secLen),
    clientKey: rnd(keyLen),
    clientIv: rnd(ivLen),
    serverKey: rnd(keyLen),
    serverIv: rnd(ivLen),
  };
}

const copy = (b: ExportedSessionBlob): ExportedSessionBlob => ({
  ...b,
  clientTrafficSecret: b.clientTrafficSecret.slice(),
  serverTrafficSecret: b.serverTrafficSecret.slice(),
  clientKey: b.clientKey.slice(),
  clientIv: b.clientIv.slice(),
  serverKey: b.serverKey.slice(),
  serverIv: b.serverIv.slice(),
});

/** The client's side: it reads what the server writes. */
const mirror = (b: ExportedSessionBlob): ExportedSessionBlob => ({
  ...b,
  readSequence: b.writeSequence,
  writeSequence: b.readSequence,
  clientTrafficSecret: b.serverTrafficSecret.slice(),
  serverTrafficSecret: b.clientTrafficSecret.slice(),
  clientKey: b.serverKey.slice(),
  clientIv: b.serverIv.slice(),
  serverKey: b.clientKey.slice(),
  serverIv: b.clientIv.slice(),
});

function splitRecords(wire: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let o = 0; o < wire.length; ) {
    const n = 5 + ((wire[o + 3]! << 8) | wire[o + 4]!);
    out.push(wire.slice(o, o + n));
    o += n;
  }
  return out;
}

const cases: [number, number][] = [
  ...[...SUITES.keys()].map((s): [number, number] => [0x0304, s]),
  ...[...AEAD_SUITES12.keys()].map((s): [number, number] => [0x0303, s]),
];

for (const [version, suite] of cases) {
  test(`sealApplicationData = encrypt() and reads back: ${version === 0x0304 ? 'TLS 1.3' : 'TLS 1.2'} suite 0x${suite.toString(16)}`, async () => {
    const blob = blobFor(version, suite);
    const fast = new HostSession(copy(blob), { keyUpdateAfterRecords: 7 });
    const slow = new HostSession(copy(blob), { keyUpdateAfterRecords: 7 });
    const slabbed = new HostSession(copy(blob), { keyUpdateAfterRecords: 7 });
    const reader = new HostSession(mirror(blob));
    const native = nativeSealStatus().active && (version === 0x0304 ? SUITES.get(suite)!.aead : AEAD_SUITES12.get(suite)!.aead) !== 'aes-128-ccm';
    let slab: SealSlab = { buf: Buffer.alloc(40_000), used: 0 };
    let inSlab = 0;
    let keyUpdates = 0;
    for (let i = 0; i < 20; i++) {
      // an empty record first (its plaintext over a zero-length buffer), full 16 KiB ones, odd sizes
      const total = i === 0 ? 0 : i % 5 === 0 ? 16384 : 1 + ((i * 977) % 4000);
      const data = rnd(total);
      const cut = Math.floor(total / 3);
      const pieces = [data.subarray(0, cut), new Uint8Array(0), data.subarray(cut)]; // one piece empty
      const out: Uint8Array[] = [];
      fast.sealApplicationData(pieces, total, out);
      const a = concat(...out);
      const b = await slow.encrypt(23, data);
      assert.deepEqual(a, b, `record ${i}: same bytes as encrypt()`);
      // into a slab: several records per slab, a new slab when one is full
      if (slab.buf.length - slab.used < total + 64) slab = { buf: Buffer.alloc(40_000), used: 0 };
      const outS: Uint8Array[] = [];
      slabbed.sealApplicationData(pieces, total, outS, slab);
      assert.deepEqual(concat(...outS), a, `record ${i}: same bytes sealed into a slab`);
      if (native) {
        const last = outS[outS.length - 1]!;
        assert.equal(last.buffer, slab.buf.buffer, `record ${i}: the record is a view of the slab`);
        inSlab++;
      }
      const got: Uint8Array[] = [];
      const records = splitRecords(a);
      keyUpdates += records.length - 1;
      for (const rec of records) {
        const r = await reader.decrypt(rec);
        assert.equal(r.failed, false, `record ${i} decrypts`);
        got.push(r.plaintext);
      }
      assert.deepEqual(concat(...got), data, `record ${i}: plaintext back`);
    }
    if (version === 0x0304) assert.ok(keyUpdates >= 2, `our KeyUpdates went out in front of records (${keyUpdates})`);
    else assert.equal(keyUpdates, 0);
    assert.throws(() => fast.sealApplicationData([new Uint8Array(16385)], 16385, []), RangeError);
    fast.dispose();
    assert.throws(() => fast.sealApplicationData([Uint8Array.of(1)], 1, []), /phase/);
    if (native) assert.equal(inSlab, 20);
    slow.dispose();
    slabbed.dispose();
    reader.dispose();
  });
}

test('a record of more pieces than one native seal takes (2000 one-byte writes) is sealed with node:crypto: same bytes, read back', async () => {
  for (const [version, suite] of [[0x0304, 0x1301], [0x0303, 0xc02b]] as const) {
    const blob = blobFor(version, suite);
    const slabbed = new HostSession(copy(blob));
    const slow = new HostSession(copy(blob));
    const reader = new HostSession(mirror(blob));
    const data = rnd(2000);
    const pieces = Array.from(data, (_, i) => data.subarray(i, i + 1));
    const slab: SealSlab = { buf: Buffer.alloc(40_000), used: 0 };
    const out: Uint8Array[] = [];
    slabbed.sealApplicationData(pieces, data.length, out, slab);
    assert.equal(slab.used, 0, 'not sealed into the slab');
    const wire = concat(...out);
    assert.deepEqual(wire, await slow.encrypt(23, data));
    const r = await reader.decrypt(wire);
    assert.equal(r.failed, false);
    assert.deepEqual(r.plaintext, data);
    // the next record, of few pieces, goes into the slab again (when the native sealer is active)
    const out2: Uint8Array[] = [];
    slabbed.sealApplicationData([data.subarray(0, 100), data.subarray(100)], data.length, out2, slab);
    assert.deepEqual(concat(...out2), await slow.encrypt(23, data));
    if (nativeSealStatus().active) assert.ok(slab.used > 0, 'sealed into the slab');
    for (const s of [slabbed, slow, reader]) s.dispose();
  }
});
