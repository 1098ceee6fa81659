/**
 * card/applets/isd/der: the little DER the security domain writes itself — a PKCS#10
 * CertificationRequest (RFC 2986) for an identity key (CreateCSR) or the attestation key (factory),
 * signed inside the card — and a check that a byte string is one whole DER SEQUENCE.
 * imports bytes/.
 *
 *   CertificationRequest ::= SEQUENCE { info, signatureAlgorithm, signature BIT STRING }
 *   info ::= SEQUENCE { INTEGER 0, subject Name, SubjectPublicKeyInfo, [0] attributes }
 *   attributes (DER SET OF, sorted):
 *     challengePassword (1.2.840.113549.1.9.7) = UTF8String: the given challenge text (EST), else
 *       the operator nonce in lower-case hex, when a nonce is given (binds the CSR to the request);
 *     id-aa-evidence (1.2.840.113549.1.9.16.2.59, draft-ietf-lamps-csr-attestation), when evidence
 *       is given: SET { EvidenceBundles ::= SEQUENCE { EvidenceBundle ::= SEQUENCE {
 *         evidence SEQUENCE { EvidenceStatement ::= SEQUENCE { type OID (setls, private 2.25 arc),
 *                                                              stmt OCTET STRING (E0 ‖ 8F) } },
 *         certs SEQUENCE { Certificate… } (the attestation chain, leaf first) } } }
 */
import { concat, toHex } from '../../../bytes/index.js';
import { KeyAlg, OID_AA_EVIDENCE, OID_SETLS_EVIDENCE_STATEMENT } from '../../../gp/admin/constants.js';

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
const octets = (b: Uint8Array): Uint8Array => der(0x04, b);
const utf8 = (s: string): Uint8Array => der(0x0c, new TextEncoder().encode(s));

export function oid(dotted: string): Uint8Array {
  const p = dotted.split('.').map(BigInt);
  const arcs = [40n * p[0]! + p[1]!, ...p.slice(2)];
  const out: number[] = [];
  for (const v of arcs) {
    const stack = [Number(v & 0x7fn)];
    for (let x = v >> 7n; x > 0n; x >>= 7n) stack.unshift(0x80 | Number(x & 0x7fn));
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

/** Byte-wise order of DER encodings (X.690 §11.6: SET OF components sorted, shorter padded with 0). */
function derOrder(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The attestation evidence a CSR carries: AttestKey's answer (E0 statement ‖ 8F signature) and the chain. */
export interface CsrEvidence {
  readonly statementAndSignature: Uint8Array;
  readonly chain: readonly Uint8Array[];
}

/** The id-aa-evidence attribute (see the header). */
export function evidenceAttribute(e: CsrEvidence): Uint8Array {
  const statement = seq(oid(OID_SETLS_EVIDENCE_STATEMENT), octets(e.statementAndSignature));
  const bundle = seq(seq(statement), seq(...e.chain));
  return seq(oid(OID_AA_EVIDENCE), set(seq(bundle)));
}

/** The PKCS#10 request for `spki`, signed by `sign` (the card's key: ECDSA or RSA, SHA-256). */
export function buildCsr(opts: {
  subject: Uint8Array;
  spki: Uint8Array;
  algorithm: number;
  nonce?: Uint8Array;
  /** challengePassword text (instead of the nonce in hex). */
  challenge?: string;
  evidence?: CsrEvidence;
  sign: (tbs: Uint8Array) => Uint8Array;
}): Uint8Array {
  const items: Uint8Array[] = [];
  const password = opts.challenge ?? (opts.nonce ? toHex(opts.nonce) : undefined);
  if (password !== undefined) items.push(seq(oid(OID_CHALLENGE_PASSWORD), set(utf8(password))));
  if (opts.evidence) items.push(evidenceAttribute(opts.evidence));
  const attrs = der(0xa0, ...items.sort(derOrder));
  const info = seq(der(0x02, Uint8Array.of(0)), opts.subject, opts.spki, attrs);
  const sigAlg = opts.algorithm === KeyAlg.rsa2048 ? seq(oid(OID_SHA256_RSA), Uint8Array.of(0x05, 0x00)) : seq(oid(OID_ECDSA_SHA256));
  const signature = opts.sign(info);
  return seq(info, sigAlg, der(0x03, Uint8Array.of(0), signature));
}
