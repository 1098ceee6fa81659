/**
 * operator/est/codec: the bodies of RFC 7030 (EST) — certs-only CMS for /cacerts, /simpleenroll and
 * /simplereenroll answers (application/pkcs7-mime), the CSR attributes of /csrattrs
 * (application/csrattrs, §4.5.2), and the base64 transfer encoding every EST body uses (§4.1.3:
 * "Content-Transfer-Encoding: base64"). ASN.1 through @peculiar/asn1-schema, the certs-only
 * structure through @peculiar/x509 (pki/x509 loads it with its reflect polyfill). imports those
 * packages and pki/x509.
 */
import { AsnArray, AsnConvert, AsnProp, AsnPropTypes, AsnType, AsnTypeTypes } from '@peculiar/asn1-schema';
import { Attribute } from '@peculiar/asn1-x509';
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

/** AttrOrOID ::= CHOICE { oid OBJECT IDENTIFIER, attribute Attribute } (RFC 7030 §4.5.2). */
@AsnType({ type: AsnTypeTypes.Choice })
class AttrOrOid {
  @AsnProp({ type: AsnPropTypes.ObjectIdentifier })
  oid?: string;
  @AsnProp({ type: Attribute })
  attribute?: Attribute;
  constructor(params: Partial<AttrOrOid> = {}) {
    Object.assign(this, params);
  }
}

/** CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID */
@AsnType({ type: AsnTypeTypes.Sequence, itemType: AttrOrOid })
class CsrAttrs extends AsnArray<AttrOrOid> {
  constructor(items?: AttrOrOid[]) {
    super(items);
    Object.setPrototypeOf(this, CsrAttrs.prototype);
  }
}

/** One item of a CSR attributes answer: a bare OID, or an attribute with DER-encoded values. */
export type CsrAttrItem = { readonly oid: string } | { readonly type: string; readonly values: readonly Uint8Array[] };

function buf(u: Uint8Array): ArrayBuffer {
  return u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength) as ArrayBuffer;
}

/** DER of CsrAttrs. */
export function encodeCsrAttrs(items: readonly CsrAttrItem[]): Uint8Array {
  const seq = new CsrAttrs(
    items.map((i) => ('oid' in i ? new AttrOrOid({ oid: i.oid }) : new AttrOrOid({ attribute: new Attribute({ type: i.type, values: i.values.map(buf) }) }))),
  );
  return new Uint8Array(AsnConvert.serialize(seq));
}

/** CsrAttrs DER → items (what a client reads; used by the device agent and the tests). */
export function decodeCsrAttrs(der: Uint8Array): CsrAttrItem[] {
  const seq = AsnConvert.parse(buf(der), CsrAttrs);
  return Array.from(seq, (a): CsrAttrItem => {
    if (a.oid !== undefined) return { oid: a.oid };
    if (!a.attribute) throw new RangeError('CsrAttrs item is neither an OID nor an attribute');
    return { type: a.attribute.type, values: a.attribute.values.map((v) => new Uint8Array(v)) };
  });
}

/** DER of an OBJECT IDENTIFIER (a value inside an attribute, e.g. the curve of id-ecPublicKey). */
export function derOid(oid: string): Uint8Array {
  const holder = new AttrOrOid({ oid });
  return new Uint8Array(AsnConvert.serialize(holder));
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
