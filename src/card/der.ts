/**
 * A minimal DER writer (X.690) for the few structures the card builds itself: the PKCS#10
 * CertificationRequestInfo and its signature wrapper. Synchronous, unlike WebCrypto-based builders,
 * because `EmulatedCard.process` is synchronous. imports bytes/.
 */
import { concat } from '../bytes/index.js';

function len(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const out: number[] = [];
  while (n > 0) {
    out.unshift(n & 0xff);
    n = Math.floor(n / 256);
  }
  return Uint8Array.of(0x80 | out.length, ...out);
}

export function tlv(tag: number, ...content: Uint8Array[]): Uint8Array {
  const body = concat(...content);
  return concat(Uint8Array.of(tag), len(body.length), body);
}

export const seq = (...c: Uint8Array[]): Uint8Array => tlv(0x30, ...c);
export const set = (...c: Uint8Array[]): Uint8Array => tlv(0x31, ...c);
export const utf8 = (s: string): Uint8Array => tlv(0x0c, new TextEncoder().encode(s));
export const octets = (b: Uint8Array): Uint8Array => tlv(0x04, b);
/** BIT STRING with no unused bits. */
export const bits = (b: Uint8Array): Uint8Array => tlv(0x03, Uint8Array.of(0), b);
export const smallInt = (v: number): Uint8Array => tlv(0x02, Uint8Array.of(v));

export function oid(dotted: string): Uint8Array {
  const parts = dotted.split('.').map(Number);
  const out: number[] = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const stack = [p & 0x7f];
    let v = Math.floor(p / 128);
    while (v > 0) {
      stack.unshift(0x80 | (v & 0x7f));
      v = Math.floor(v / 128);
    }
    out.push(...stack);
  }
  return tlv(0x06, Uint8Array.from(out));
}
