/** Test-side TLS 1.3 key derivation with node:crypto directly (independent of src/tls/keyschedule). */
import { createHmac } from 'node:crypto';

export function hkdfExpandLabel(alg: 'sha256' | 'sha384', secret: Uint8Array, label: string, context: Uint8Array, length: number): Uint8Array {
  const full = Buffer.from('tls13 ' + label, 'latin1');
  const info = Buffer.concat([Buffer.of(length >> 8, length & 255, full.length), full, Buffer.of(context.length), Buffer.from(context)]);
  const out: Buffer[] = [];
  let t = Buffer.alloc(0);
  for (let i = 1; Buffer.concat(out).length < length; i++) {
    t = createHmac(alg, secret).update(t).update(info).update(Buffer.of(i)).digest();
    out.push(t);
  }
  return new Uint8Array(Buffer.concat(out).subarray(0, length));
}

/** application_traffic_secret_N+1 (RFC 8446 §7.2). */
export function nextSecret(alg: 'sha256' | 'sha384', secret: Uint8Array): Uint8Array {
  return hkdfExpandLabel(alg, secret, 'traffic upd', new Uint8Array(0), alg === 'sha256' ? 32 : 48);
}

/** key and iv for TLS_AES_128_GCM_SHA256 from a traffic secret. */
export function aes128Keys(secret: Uint8Array): { key: Uint8Array; iv: Uint8Array } {
  return { key: hkdfExpandLabel('sha256', secret, 'key', new Uint8Array(0), 16), iv: hkdfExpandLabel('sha256', secret, 'iv', new Uint8Array(0), 12) };
}
