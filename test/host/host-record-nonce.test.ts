// The exported record layer's nonces against an independent reference (RFC 8446 §5.3: IV xor the
// 64-bit sequence number, big-endian, left-padded), not against the code under test: every record
// sealApplicationData writes opens with node:crypto under the nonce of ITS sequence number only
// (so no two records share a nonce), in order, across the 2^8, 2^16 and (ChaCha20) 2^32 sequence-number carries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createDecipheriv, randomBytes } from 'node:crypto';
import { HostSession } from '../../src/host/index.js';
import type { ExportedSessionBlob } from '../../src/host/card-codec.js';

const rnd = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

function refNonce(iv: Uint8Array, seq: bigint): Buffer {
  const n = Buffer.from(iv);
  for (let i = 0; i < 8; i++) n[11 - i]! ^= Number((seq >> BigInt(8 * i)) & 0xffn);
  return n;
}

/** Opens one TLS 1.3 record with node:crypto; undefined when the tag does not verify. */
function refOpen(aead: string, key: Uint8Array, nonce: Buffer, record: Buffer): Buffer | undefined {
  const d = createDecipheriv(aead as 'aes-128-gcm', key, nonce, { authTagLength: 16 });
  d.setAAD(record.subarray(0, 5));
  d.setAuthTag(record.subarray(record.length - 16));
  try {
    return Buffer.concat([d.update(record.subarray(5, record.length - 16)), d.final()]);
  } catch {
    return undefined;
  }
}

// AES-GCM keys are rotated (KeyUpdate) long before 2^24 records; ChaCha20-Poly1305 keys are not,
// so its sequence numbers cross 2^32 (the high word of the nonce) with keyUpdateAfterRecords raised.
const SUITES13: [number, string, number, bigint[]][] = [
  [0x1301, 'aes-128-gcm', 16, [250n, 65534n]],
  [0x1302, 'aes-256-gcm', 32, [250n, 65534n]],
  [0x1303, 'chacha20-poly1305', 32, [250n, 2n ** 32n - 3n]],
];

for (const [suite, aead, keyLen, starts] of SUITES13) {
  for (const start of starts) {
    test(`TLS 1.3 ${aead}: records from write sequence ${start} open under IV xor their own sequence number only`, () => {
      const key = rnd(keyLen);
      const iv = rnd(12);
      const blob: ExportedSessionBlob = {
        version: 0x0304,
        cipherSuite: suite,
        readSequence: 0n,
        writeSequence: start,
        clientTrafficSecret: rnd(suite === 0x1302 ? 48 : 32),
        serverTrafficSecret: rnd(suite === 0x1302 ? 48 : 32),
        clientKey: rnd(keyLen),
        clientIv: rnd(12),
        serverKey: key.slice(),
        serverIv: iv.slice(),
      };
      const s = new HostSession(blob, { keyUpdateAfterRecords: 2 ** 40 });
      const data = rnd(3 * 16384 + 100);
      const out: Uint8Array[] = [];
      // as SeTlsSocket's host batches: several records appended to one list, written as one batch
      for (let o = 0; o < data.length; o += 16384) {
        const n = Math.min(16384, data.length - o);
        s.sealApplicationData([data.subarray(o, o + Math.floor(n / 2)), data.subarray(o + Math.floor(n / 2), o + n)], n, out);
      }
      const wire = Buffer.concat(out);
      const records: Buffer[] = [];
      for (let o = 0; o < wire.length; ) {
        const len = 5 + wire.readUInt16BE(o + 3);
        records.push(wire.subarray(o, o + len));
        o += len;
      }
      assert.equal(records.length, 4);
      const got: Buffer[] = [];
      records.forEach((rec, k) => {
        const seq = start + BigInt(k);
        const inner = refOpen(aead, key, refNonce(iv, seq), rec);
        assert.ok(inner, `record ${k} opens under the nonce of sequence ${seq}`);
        assert.equal(inner[inner.length - 1], 23, 'inner content type application_data');
        got.push(inner.subarray(0, inner.length - 1));
        // and under no other record's nonce
        for (const other of [seq - 1n, seq + 1n]) assert.equal(refOpen(aead, key, refNonce(iv, other), rec), undefined, `record ${k} does not open under sequence ${other}`);
      });
      assert.deepEqual(Buffer.concat(got), Buffer.from(data));
      assert.equal(s.sequences.write, Number(start) + 4);
      s.dispose();
    });
  }
}
