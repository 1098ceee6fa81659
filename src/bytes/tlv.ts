/**
 * Simple BER-TLV with one-byte tags and BER definite lengths (1, 2 or 3 bytes: `xx`, `81 xx`,
 * `82 xx xx`), used by the card's administrative commands. imports bytes/ only.
 */
import { DecodeError } from './errors.js';

export interface Tlv {
  readonly tag: number;
  readonly value: Uint8Array;
}

export function encodeTlv(tag: number, value: Uint8Array): Uint8Array {
  const n = value.length;
  if (n > 0xffff) throw new RangeError(`TLV value of ${n} bytes is too long`);
  const lenBytes = n < 0x80 ? [n] : n <= 0xff ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  const out = new Uint8Array(1 + lenBytes.length + n);
  out[0] = tag;
  out.set(lenBytes, 1);
  out.set(value, 1 + lenBytes.length);
  return out;
}

export function encodeTlvs(items: readonly Tlv[]): Uint8Array {
  // one pass to size (and check) everything, one buffer written in place
  let total = 0;
  for (const t of items) {
    const n = t.value.length;
    if (n > 0xffff) throw new RangeError(`TLV value of ${n} bytes is too long`);
    total += 1 + (n < 0x80 ? 1 : n <= 0xff ? 2 : 3) + n;
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const t of items) {
    const n = t.value.length;
    out[o++] = t.tag;
    if (n < 0x80) out[o++] = n;
    else if (n <= 0xff) {
      out[o++] = 0x81;
      out[o++] = n;
    } else {
      out[o++] = 0x82;
      out[o++] = n >> 8;
      out[o++] = n & 0xff;
    }
    out.set(t.value, o);
    o += n;
  }
  return out;
}

/** Parses a sequence of TLVs that must cover `b` exactly. */
export function parseTlvs(b: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  let o = 0;
  while (o < b.length) {
    if (o + 2 > b.length) throw new DecodeError('TLV: truncated header');
    const tag = b[o++]!;
    let n = b[o++]!;
    if (n === 0x81) {
      if (o + 1 > b.length) throw new DecodeError('TLV: truncated length');
      n = b[o++]!;
    } else if (n === 0x82) {
      if (o + 2 > b.length) throw new DecodeError('TLV: truncated length');
      n = (b[o]! << 8) | b[o + 1]!;
      o += 2;
    } else if (n >= 0x80) {
      throw new DecodeError(`TLV: unsupported length form 0x${n.toString(16)}`);
    }
    if (o + n > b.length) throw new DecodeError(`TLV: tag 0x${tag.toString(16)} needs ${n} bytes, ${b.length - o} left`);
    out.push({ tag, value: b.slice(o, o + n) });
    o += n;
  }
  return out;
}

/** The first value with `tag`, or undefined. */
export function findTlv(items: readonly Tlv[], tag: number): Uint8Array | undefined {
  return items.find((t) => t.tag === tag)?.value;
}
