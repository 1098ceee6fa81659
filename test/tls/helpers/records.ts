/** Test-side AEAD record sealing/opening with node:crypto directly (independent of src/tls/record). */
import { createCipheriv, createDecipheriv } from 'node:crypto';

function nonce(iv: Uint8Array, seq: number): Buffer {
  const n = Buffer.from(iv);
  for (let i = 0; i < 8; i++) n[n.length - 1 - i]! ^= Math.floor(seq / 2 ** (8 * i)) & 255;
  return n;
}

export function sealRecord(key: Uint8Array, iv: Uint8Array, seq: number, innerType: number, content: Uint8Array, padding = 0): Uint8Array {
  const inner = Buffer.concat([Buffer.from(content), Buffer.of(innerType), Buffer.alloc(padding)]);
  const hdr = Buffer.of(23, 3, 3, (inner.length + 16) >> 8, (inner.length + 16) & 255);
  const c = createCipheriv('aes-128-gcm', key, nonce(iv, seq));
  c.setAAD(hdr);
  return new Uint8Array(Buffer.concat([hdr, c.update(inner), c.final(), c.getAuthTag()]));
}

export function openRecord(key: Uint8Array, iv: Uint8Array, seq: number, record: Uint8Array): Uint8Array {
  const r = Buffer.from(record);
  const d = createDecipheriv('aes-128-gcm', key, nonce(iv, seq));
  d.setAAD(r.subarray(0, 5));
  d.setAuthTag(r.subarray(r.length - 16));
  return new Uint8Array(Buffer.concat([d.update(r.subarray(5, r.length - 16)), d.final()]));
}

/** Splits concatenated records. */
export function splitRecords(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let o = 0; o < b.length; ) {
    const len = (b[o + 3]! << 8) | b[o + 4]!;
    out.push(b.subarray(o, o + 5 + len));
    o += 5 + len;
  }
  return out;
}
