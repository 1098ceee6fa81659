/**
 * operator/pki/der: the two DER framing operations the CRL builder needs around parts encoded by
 * @peculiar/asn1-* — wrap encoded elements in a tag with a definite length (short or long form, up
 * to 4 length bytes), and split one constructed element into its encoded children. imports nothing.
 */

/** `tag` + DER length + the concatenated `parts`. */
export function derWrap(tag: number, parts: readonly Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  if (len > 0xffffffff) throw new RangeError('DER element too long');
  const lenBytes: number[] = [];
  if (len < 0x80) lenBytes.push(len);
  else {
    for (let n = len; n > 0; n = Math.floor(n / 256)) lenBytes.unshift(n & 0xff);
    lenBytes.unshift(0x80 | lenBytes.length);
  }
  const out = new Uint8Array(1 + lenBytes.length + len);
  out[0] = tag;
  out.set(lenBytes, 1);
  let o = 1 + lenBytes.length;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The encoded children (tag, length and value each) of the single element `der` (one-byte tags). */
export function derChildren(der: Uint8Array): Uint8Array[] {
  const head = (at: number): { start: number; end: number } => {
    if (at + 2 > der.length) throw new RangeError('truncated DER');
    let len = der[at + 1]!;
    let start = at + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 4 || start + n > der.length) throw new RangeError('bad DER length');
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + der[start + i]!;
      start += n;
    }
    if (start + len > der.length) throw new RangeError('truncated DER');
    return { start, end: start + len };
  };
  const outer = head(0);
  if (outer.end !== der.length) throw new RangeError('trailing bytes after DER element');
  const out: Uint8Array[] = [];
  for (let at = outer.start; at < outer.end; ) {
    const { end } = head(at);
    out.push(der.subarray(at, end));
    at = end;
  }
  return out;
}
