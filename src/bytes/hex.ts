/** Hex helpers. imports nothing. */

const HEX = '0123456789abcdef';

export function toHex(b: Uint8Array, sep = ''): string {
  let s = '';
  for (let i = 0; i < b.length; i++) {
    const v = b[i]!;
    if (i > 0 && sep) s += sep;
    s += HEX[v >> 4]! + HEX[v & 15]!;
  }
  return s;
}

/** Parses hex, ignoring white space, ':' and '|' separators. Throws on odd length or bad digits. */
export function fromHex(s: string): Uint8Array {
  const clean = s.replace(/[\s:|]/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) {
    throw new TypeError(`invalid hex string (${clean.length} digits)`);
  }
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.substr(i * 2, 2), 16);
  return out;
}
