/**
 * card/applets/isd/der: the little DER the security domain writes itself — a PKCS#10
 * CertificationRequest (RFC 2986) for an identity key (CreateCSR) or the attestation key (factory),
 * signed inside the card — and a check that a byte string is one whole DER SEQUENCE.
 * imports bytes/.
 *
 *   CertificationRequest ::= SEQUENCE { info, signatureAlgorithm, signature BIT STRING }
 *   info ::= SEQUENCE { INTEGER 0, subject Name, SubjectPublicKeyInfo, [0] attributes }
 *   attributes: challengePassword (1.2.840.113549.1.9.7) = UTF8String of the operator nonce in
 *   lower-case hex, when a nonce is given (binds the CSR to the operator's request).
 */
import { concat, toHex } from '../../../bytes/index.js';
import { KeyAlg } from '../../../gp/admin/constants.js';

function len(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return Uint8Array.of(0x80 | out.length, ...out);
}

export function der(tag: number, ...content: Uint8Array[]): Uint8Array {
  const body = concat(...content);
  return concat(Uint8Array.of(tag), len(body.length), body);
}

const seq = (...c: Uint8Array[]): Uint8Array => der(0x30, ...c);
const set = (...c: Uint8Array[]): Uint8Array => der(0x31, ...c);
const utf8 = (s: string): Uint8Array => der(0x0c, new TextEncoder().encode(s));

export function oid(dotted: string): Uint8Array {
  const p = dotted.split('.').map(Number);
  const out: number[] = [40 * p[0]! + p[1]!];
  for (const v of p.slice(2)) {
    const stack = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) stack.unshift(0x80 | (x & 0x7f));
    out.push(...stack);
  }
  return der(0x06, Uint8Array.from(out));
}

const OID_CN = '2.5.4.3';
const OID_CHALLENGE_PASSWORD = '1.2.840.113549.1.9.7';
const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';
const OID_SHA256_RSA = '1.2.840.113549.1.1.11';

/** Name ::= CN=<commonName>. */
export function commonNameSubject(commonName: string): Uint8Array {
  return seq(set(seq(oid(OID_CN), utf8(commonName))));
}

/** Whether `b` is exactly one DER SEQUENCE (tag 30, definite length covering the rest). */
export function isOneSequence(b: Uint8Array): boolean {
  if (b.length < 2 || b[0] !== 0x30) return false;
  let n = b[1]!;
  let o = 2;
  if (n & 0x80) {
    const k = n & 0x7f;
    if (k < 1 || k > 3 || b.length < 2 + k) return false;
    n = 0;
    for (let i = 0; i < k; i++) n = n * 256 + b[o++]!;
    if (n < 0x80 || (k > 1 && n < 256 ** (k - 1))) return false;
  }
  return o + n === b.length;
}

/** The PKCS#10 request for `spki`, signed by `sign` (the card's key: ECDSA or RSA, SHA-256). */
export function buildCsr(opts: {
  subject: Uint8Array;
  spki: Uint8Array;
  algorithm: number;
  nonce?: Uint8Array;
  sign: (tbs: Uint8Array) => Uint8Array;
}): Uint8Array {
  const attrs = opts.nonce ? der(0xa0, seq(oid(OID_CHALLENGE_PASSWORD), set(utf8(toHex(opts.nonce))))) : der(0xa0);
  const info = seq(der(0x02, Uint8Array.of(0)), opts.subject, opts.spki, attrs);
  const sigAlg = opts.algorithm === KeyAlg.rsa2048 ? seq(oid(OID_SHA256_RSA), Uint8Array.of(0x05, 0x00)) : seq(oid(OID_ECDSA_SHA256));
  const signature = opts.sign(info);
  return seq(info, sigAlg, der(0x03, Uint8Array.of(0), signature));
}
