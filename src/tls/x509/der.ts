/**
 * A minimal DER walker: just enough to cut the subject Name out of a certificate (for the
 * certificate_authorities extension, RFC 8446 §4.2.4). Everything else about certificates is
 * node:crypto's X509Certificate. imports bytes/ only.
 */
import { DecodeError } from '../../bytes/index.js';

/** One DER element: tag byte, where its value starts, where the whole element ends. */
export interface DerElement {
  readonly tag: number;
  readonly start: number;
  readonly valueStart: number;
  readonly end: number;
}

/** Reads the element starting at `o` (single-byte tags, definite lengths up to 4 bytes). */
export function derElement(b: Uint8Array, o: number): DerElement {
  if (o + 2 > b.length) throw new DecodeError('DER: truncated header');
  const tag = b[o]!;
  if ((tag & 0x1f) === 0x1f) throw new DecodeError('DER: multi-byte tag');
  let n = b[o + 1]!;
  let v = o + 2;
  if (n & 0x80) {
    const k = n & 0x7f;
    if (k === 0 || k > 4 || v + k > b.length) throw new DecodeError('DER: bad length');
    n = 0;
    for (let i = 0; i < k; i++) n = n * 256 + b[v + i]!;
    v += k;
  }
  if (v + n > b.length) throw new DecodeError('DER: element longer than its container');
  return { tag, start: o, valueStart: v, end: v + n };
}

/**
 *   Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
 *   TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer, validity, subject, ... }
 * Returns the DER of `subject` (a copy).
 */
export function certificateSubjectDer(cert: Uint8Array): Uint8Array {
  const outer = derElement(cert, 0);
  const tbs = derElement(cert, outer.valueStart);
  if (outer.tag !== 0x30 || tbs.tag !== 0x30) throw new DecodeError('DER: not a certificate');
  let o = tbs.valueStart;
  let e = derElement(cert, o);
  if (e.tag === 0xa0) e = derElement(cert, (o = e.end)); // explicit version
  // serialNumber, signature, issuer, validity, then subject
  for (let i = 0; i < 4; i++) e = derElement(cert, (o = e.end));
  if (e.tag !== 0x30 || e.end > tbs.end) throw new DecodeError('DER: certificate subject not found');
  return cert.slice(e.start, e.end);
}
