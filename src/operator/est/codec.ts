/**
 * operator/est/codec: the bodies of RFC 7030 (EST) — certs-only CMS for /cacerts, /simpleenroll and
 * /simplereenroll answers (application/pkcs7-mime), the CSR attributes of /csrattrs
 * (application/csrattrs, §4.5.2), and the base64 transfer encoding every EST body uses (§4.1.3:
 * "Content-Transfer-Encoding: base64"). ASN.1 through asn1js (no decorators: this module also runs
 * under tsx outside the repository's tsconfig), DER framing through pki/der, the certs-only
 * structure through @peculiar/x509 (pki/x509 loads it with its reflect polyfill). imports asn1js,
 * pki/der and pki/x509.
 */
import * as asn1js from 'asn1js';
import { derWrap } from '../pki/der.js';
import { x509 } from '../pki/x509.js';

/** Media types of RFC 7030 §4 (the answers' smime-type parameter as the RFC shows it). */
export const EstMedia = {
  certsOnly: 'application/pkcs7-mime; smime-type=certs-only',
  pkcs7: 'application/pkcs7-mime',
  pkcs10: 'application/pkcs10',
  csrattrs: 'application/csrattrs',
} as const;

/** OIDs a setls CSR attributes answer names. */
export const EstOid = {
  /** ecdsa-with-SHA256: the signature the CSR must carry. */
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  /** id-ecPublicKey, with the curve as the attribute's value (RFC 7030 §4.5.2's example). */
  ecPublicKey: '1.2.840.10045.2.1',
  /** secp256r1 (P-256). */
  secp256r1: '1.2.840.10045.3.1.7',
  /** PKCS#9 challengePassword: where a client puts the operator's challenge. */
  challengePassword: '1.2.840.113549.1.9.7',
  /** PKCS#9 extensionRequest. */
  extensionRequest: '1.2.840.113549.1.9.14',
  /** subjectAltName (named inside extensionRequest: the CSR should ask for it). */
  subjectAltName: '2.5.29.17',
} as const;

/** One item of a CSR attributes answer: a bare OID, or an attribute with DER-encoded values. */
export type CsrAttrItem = { readonly oid: string } | { readonly type: string; readonly values: readonly Uint8Array[] };

function buf(u: Uint8Array): ArrayBuffer {
  return u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength) as ArrayBuffer;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** One complete DER element, with nothing after it. */
function parseOne(der: Uint8Array, what: string): asn1js.AsnType {
  const r = asn1js.fromBER(buf(der));
  if (r.offset === -1 || r.offset !== der.length) throw new RangeError(`${what}: not one DER element`);
  return r.result;
}

/**
 * DER of CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID, AttrOrOID ::= CHOICE { oid OBJECT
 * IDENTIFIER, attribute Attribute }, Attribute ::= SEQUENCE { type OID, values SET OF ANY }
 * (RFC 7030 §4.5.2). Attribute values are given DER-encoded, each checked to be one element; the
 * SET OF is sorted as DER wants.
 */
export function encodeCsrAttrs(items: readonly CsrAttrItem[]): Uint8Array {
  const parts = items.map((i) => {
    if ('oid' in i) return derOid(i.oid);
    if (i.values.length === 0) throw new RangeError(`attribute ${i.type} has no value`);
    for (const v of i.values) parseOne(v, `a value of attribute ${i.type}`);
    const values = [...i.values].sort(compareBytes);
    return derWrap(0x30, [derOid(i.type), derWrap(0x31, values)]);
  });
  return derWrap(0x30, parts);
}

/** CsrAttrs DER → items (what a client reads; used by the device agent and the tests). */
export function decodeCsrAttrs(der: Uint8Array): CsrAttrItem[] {
  const seq = parseOne(der, 'CsrAttrs');
  if (!(seq instanceof asn1js.Sequence)) throw new RangeError('CsrAttrs is not a SEQUENCE');
  return seq.valueBlock.value.map((item): CsrAttrItem => {
    if (item instanceof asn1js.ObjectIdentifier) return { oid: item.valueBlock.toString() };
    if (item instanceof asn1js.Sequence) {
      const [type, set, ...rest] = item.valueBlock.value;
      if (type instanceof asn1js.ObjectIdentifier && set instanceof asn1js.Set && rest.length === 0 && set.valueBlock.value.length > 0) {
        return { type: type.valueBlock.toString(), values: set.valueBlock.value.map((v) => new Uint8Array(v.valueBeforeDecodeView)) };
      }
    }
    throw new RangeError('CsrAttrs item is neither an OID nor an attribute');
  });
}

/** DER of an OBJECT IDENTIFIER (a value inside an attribute, e.g. the curve of id-ecPublicKey). */
export function derOid(oid: string): Uint8Array {
  if (!/^[0-2](\.(0|[1-9][0-9]*))+$/.test(oid)) throw new RangeError(`not an OID: ${oid}`);
  const o = new asn1js.ObjectIdentifier({ value: oid });
  const der = o.toBER(false);
  if (o.valueBlock.error) throw new RangeError(`not an OID: ${oid} (${o.valueBlock.error})`);
  return new Uint8Array(der);
}

/** DER of a UTF8String (challengePassword's DirectoryString choice). */
export function derUtf8(s: string): Uint8Array {
  const bytes = new TextEncoder().encode(s);
  if (bytes.length > 0x7f) throw new RangeError('UTF8String value longer than 127 bytes');
  const out = new Uint8Array(2 + bytes.length);
  out[0] = 0x0c;
  out[1] = bytes.length;
  out.set(bytes, 2);
  return out;
}

/** Certs-only CMS SignedData (no signers, no content) holding `certs` in order (RFC 5272 §4.2). */
export function certsOnly(certs: readonly Uint8Array[]): Uint8Array {
  if (certs.length === 0) throw new RangeError('a certs-only answer needs at least one certificate');
  const set = new x509.X509Certificates(certs.map((c) => new x509.X509Certificate(buf(c))));
  return new Uint8Array(set.export('raw'));
}

/** The certificates of a certs-only CMS structure (DER each), in order. */
export function readCertsOnly(der: Uint8Array): Uint8Array[] {
  const set = new x509.X509Certificates(buf(der));
  return Array.from(set, (c) => new Uint8Array(c.rawData));
}

/** Base64 with 64-character lines and CRLF, as EST servers commonly send (§4.1.3). */
export function encodeBase64Body(der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return lines.join('\r\n') + '\r\n';
}

/**
 * A base64 body (any line breaks and spaces between characters) → bytes; anything but the base64
 * alphabet and '=' padding at the end is refused (Node's decoder would skip it silently), as is an
 * empty body or a body above `limit` decoded bytes.
 */
export function decodeBase64Body(text: string, limit = 64 * 1024): Uint8Array {
  const compact = text.replace(/[\r\n\t ]+/g, '');
  if (compact.length === 0) throw new RangeError('empty body');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(compact) || compact.length % 4 !== 0) throw new RangeError('the body is not base64');
  if ((compact.length / 4) * 3 > limit + 2) throw new RangeError(`the body is over ${limit} bytes`);
  return new Uint8Array(Buffer.from(compact, 'base64'));
}
