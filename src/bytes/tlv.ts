/**
 * BER-TLV with BER definite lengths of 1, 2 or 3 bytes (`xx`, `81 xx`, `82 xx xx`).
 *
 * - `encodeTlv`/`parseTlvs`: one-byte tags, lenient lengths; the card's own administrative commands.
 * - `encodeBerTlv`/`parseBerTlvs`: ISO 7816-4 / X.690 tags of 1 to 3 bytes (`5A`, `BF21`, `9F8001`),
 *   the tag number being the big-endian value of its bytes (0xBF21), strict minimal lengths;
 *   GlobalPlatform STORE DATA function requests.
 *
 * imports bytes/ only.
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

/** A BER-TLV whose tag is the big-endian value of its 1 to 3 tag bytes (e.g. 0xBF21). */
export interface BerTlv {
  readonly tag: number;
  readonly value: Uint8Array;
}

/** Number of bytes of a BER tag number (1..3); throws if `tag` is not a valid BER tag encoding. */
export function berTagSize(tag: number): 1 | 2 | 3 {
  if (!Number.isInteger(tag) || tag < 0 || tag > 0xffffff) throw new RangeError(`BER tag 0x${tag.toString(16)} out of range`);
  if (tag <= 0xff) {
    if ((tag & 0x1f) === 0x1f) throw new RangeError(`BER tag 0x${tag.toString(16)}: a 1-byte tag cannot have all number bits set`);
    return 1;
  }
  if (tag <= 0xffff) {
    if (((tag >> 8) & 0x1f) !== 0x1f || (tag & 0x80) !== 0) throw new RangeError(`BER tag 0x${tag.toString(16)} is not a 2-byte tag`);
    return 2;
  }
  if (((tag >> 16) & 0x1f) !== 0x1f || ((tag >> 8) & 0x80) === 0 || (tag & 0x80) !== 0) {
    throw new RangeError(`BER tag 0x${tag.toString(16)} is not a 3-byte tag`);
  }
  return 3;
}

/** Whether a BER tag (as returned by parseBerTlvs) is constructed (bit 6 of its first byte). */
export function isConstructedTag(tag: number): boolean {
  const first = tag > 0xffff ? tag >> 16 : tag > 0xff ? tag >> 8 : tag;
  return (first & 0x20) !== 0;
}

function berLengthSize(n: number): number {
  if (n > 0xffff) throw new RangeError(`TLV value of ${n} bytes is too long`);
  return n < 0x80 ? 1 : n <= 0xff ? 2 : 3;
}

/** Encodes TLVs with 1- to 3-byte tags; values may be nested TLVs encoded by the caller. */
export function encodeBerTlvs(items: readonly BerTlv[]): Uint8Array {
  let total = 0;
  for (const t of items) total += berTagSize(t.tag) + berLengthSize(t.value.length) + t.value.length;
  const out = new Uint8Array(total);
  let o = 0;
  for (const t of items) {
    const ts = berTagSize(t.tag);
    for (let k = ts - 1; k >= 0; k--) out[o++] = (t.tag >> (8 * k)) & 0xff;
    const n = t.value.length;
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

export function encodeBerTlv(tag: number, value: Uint8Array): Uint8Array {
  return encodeBerTlvs([{ tag, value }]);
}

/**
 * Parses a sequence of BER-TLVs that must cover `b` exactly: tags of 1 to 3 bytes, definite
 * lengths in their shortest form only (`81 xx` needs xx >= 0x80, `82 xx xx` needs >= 0x100), so
 * every byte string has at most one reading. At most `maxItems` TLVs (a bound on work).
 */
export function parseBerTlvs(b: Uint8Array, maxItems = 1024): BerTlv[] {
  const out: BerTlv[] = [];
  let o = 0;
  while (o < b.length) {
    if (out.length >= maxItems) throw new DecodeError(`BER-TLV: more than ${maxItems} items`);
    let tag = b[o++]!;
    if ((tag & 0x1f) === 0x1f) {
      let more = true;
      for (let k = 0; more; k++) {
        if (k === 2) throw new DecodeError('BER-TLV: tag longer than 3 bytes');
        if (o >= b.length) throw new DecodeError('BER-TLV: truncated tag');
        const t = b[o++]!;
        tag = (tag << 8) | t;
        more = (t & 0x80) !== 0;
      }
    }
    if (o >= b.length) throw new DecodeError(`BER-TLV: tag 0x${tag.toString(16)} has no length`);
    let n = b[o++]!;
    if (n === 0x81) {
      if (o + 1 > b.length) throw new DecodeError('BER-TLV: truncated length');
      n = b[o++]!;
      if (n < 0x80) throw new DecodeError('BER-TLV: length not in its shortest form');
    } else if (n === 0x82) {
      if (o + 2 > b.length) throw new DecodeError('BER-TLV: truncated length');
      n = (b[o]! << 8) | b[o + 1]!;
      o += 2;
      if (n < 0x100) throw new DecodeError('BER-TLV: length not in its shortest form');
    } else if (n >= 0x80) {
      throw new DecodeError(`BER-TLV: unsupported length form 0x${n.toString(16)}`);
    }
    if (o + n > b.length) throw new DecodeError(`BER-TLV: tag 0x${tag.toString(16)} needs ${n} bytes, ${b.length - o} left`);
    out.push({ tag, value: b.slice(o, o + n) });
    o += n;
  }
  return out;
}
