/**
 * operator/pki/leaf-template: certificate issuance on the enrolment hot path — a DER template of the
 * issuing CA's leaf certificates. What never changes between two leaves (version, signature
 * algorithm, issuer Name, authorityKeyIdentifier, basicConstraints, keyUsage, extKeyUsage) is
 * encoded once with the @peculiar/asn1-x509 schemas; the SAN and cRLDistributionPoints extensions
 * are encoded with the same schemas and cached (cards share their names); per certificate only the
 * serial, validity, subject CN, SPKI and subjectKeyIdentifier are framed (der.ts) and the TBS is
 * signed with node:crypto. Synchronous, no WebCrypto, no @peculiar/x509: usable in a worker thread.
 * imports pki/der, pki/issuing-ca (type), @peculiar/asn1-schema, @peculiar/asn1-x509, node:crypto, node:net.
 *
 * The output is byte-for-byte the TBSCertificate OperatorCa.issue builds with @peculiar/x509 for the
 * same request (test/operator/leaf-template.test.ts compares both, field by field and whole, and has
 * openssl verify the chain). Requests the template does not cover (a subject other than one CN of
 * printable characters, a non-ASCII DNS name) are refused with `UnsupportedLeaf` and the caller
 * takes the high-level path.
 */
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AuthorityKeyIdentifier,
  BasicConstraints,
  CRLDistributionPoints,
  DistributionPoint,
  DistributionPointName,
  ExtendedKeyUsage,
  Extension,
  GeneralName,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_cRLDistributionPoints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_kp_clientAuth,
  id_kp_serverAuth,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  SubjectAlternativeName,
} from '@peculiar/asn1-x509';
import { createHash, sign as nodeSign, type KeyObject } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { derChildren, derWrap } from './der.js';
import type { LeafRequest } from './issuing-ca.js';

/** What one leaf says: issuing-ca's LeafRequest (one definition for both paths). */
export type LeafFields = LeafRequest;

/** The request is outside what the template encodes: use the high-level path. */
export class UnsupportedLeaf extends Error {}

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const OID_CN = Uint8Array.of(0x06, 0x03, 0x55, 0x04, 0x03);
const OID_SKI = Uint8Array.of(0x06, 0x03, 0x55, 0x1d, 0x0e);
/** One CN of PrintableString characters (no DN syntax, no edge spaces): what @peculiar/x509 encodes as PrintableString. */
const SIMPLE_CN = /^CN=([A-Za-z0-9'()./:?-](?:[A-Za-z0-9 '()./:?-]{0,62}[A-Za-z0-9'()./:?-])?)$/;
const CACHE_MAX = 1024;

function ext(id: string, critical: boolean, value: ArrayBuffer): Uint8Array {
  return new Uint8Array(AsnConvert.serialize(new Extension({ extnID: id, critical, extnValue: new OctetString(value) })));
}

/** Positive DER INTEGER of an unsigned big-endian magnitude (leading zeros stripped, 0x00 added when the top bit is set). */
function derUnsigned(v: Uint8Array): Uint8Array {
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i++;
  const m = v.subarray(i);
  return derWrap(0x02, m[0]! & 0x80 ? [Uint8Array.of(0), m] : [m]);
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds, Z. */
function derTime(d: Date): Uint8Array {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const y = d.getUTCFullYear();
  const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return y > 2049 ? derWrap(0x18, [Buffer.from(`${p(y, 4)}${rest}`, 'latin1')]) : derWrap(0x17, [Buffer.from(`${p(y % 100)}${rest}`, 'latin1')]);
}

/** SHA-1 of the subjectPublicKey BIT STRING's bits (RFC 5280 §4.2.1.2 method 1, as @peculiar/x509). */
export function keyIdentifier(spkiDer: Uint8Array): Uint8Array {
  const [, bits] = derChildren(spkiDer);
  if (!bits || bits[0] !== 0x03) throw new RangeError('not a SubjectPublicKeyInfo');
  const hdr = bits[1]! & 0x80 ? 2 + (bits[1]! & 0x7f) : 2; // then the unused-bits octet
  return new Uint8Array(createHash('sha1').update(bits.subarray(hdr + 1)).digest());
}

export class LeafTemplate {
  private readonly version = Uint8Array.of(0xa0, 0x03, 0x02, 0x01, 0x02);
  private readonly algDer: Uint8Array;
  private readonly issuerDer: Uint8Array;
  private readonly fixedExts: Uint8Array; // basicConstraints, keyUsage
  private readonly akiExt: Uint8Array;
  private readonly ekuExts = new Map<string, Uint8Array>();
  private readonly sanExts = new Map<string, Uint8Array>();
  private readonly crlExts = new Map<string, Uint8Array>();

  /** `caCertDer`: the issuing CA's certificate; `key`: its private key (never copied). */
  constructor(
    caCertDer: Uint8Array,
    private readonly key: KeyObject,
  ) {
    const [tbs] = derChildren(caCertDer);
    const f = derChildren(tbs!);
    const o = f[0]![0] === 0xa0 ? 1 : 0; // [0] version present
    this.issuerDer = new Uint8Array(f[o + 4]!); // serial, signature, issuer, validity, subject
    this.algDer = new Uint8Array(AsnConvert.serialize(new AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA256 })));
    this.fixedExts = Buffer.concat([
      ext(id_ce_basicConstraints, true, AsnConvert.serialize(new BasicConstraints({ cA: false }))),
      ext(id_ce_keyUsage, true, AsnConvert.serialize(new KeyUsage(KeyUsageFlags.digitalSignature))),
    ]);
    const aki = new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(keyIdentifier(new Uint8Array(f[o + 5]!))) });
    this.akiExt = ext(id_ce_authorityKeyIdentifier, false, AsnConvert.serialize(aki));
  }

  /** The DER TBSCertificate of `r` (what `issue` signs). */
  tbs(r: LeafFields): Uint8Array {
    const cn = SIMPLE_CN.exec(r.subject);
    if (!cn) throw new UnsupportedLeaf(`subject ${r.subject} is not one printable CN`);
    const subject = derWrap(0x30, [derWrap(0x31, [derWrap(0x30, [OID_CN, derWrap(0x13, [Buffer.from(cn[1]!, 'latin1')])])])]);
    const ski = derWrap(0x30, [OID_SKI, derWrap(0x04, [derWrap(0x04, [keyIdentifier(r.spkiDer)])])]);
    const exts: Uint8Array[] = [this.fixedExts, this.eku(r.serverAuth ?? true, r.clientAuth ?? true), ski, this.akiExt];
    if (r.dnsNames.length + r.ipAddresses.length > 0) exts.push(this.san(r.dnsNames, r.ipAddresses));
    if (r.crlUrl) exts.push(this.crlDp(r.crlUrl));
    return derWrap(0x30, [
      this.version,
      derUnsigned(r.serial),
      this.algDer,
      this.issuerDer,
      derWrap(0x30, [derTime(r.notBefore), derTime(r.notAfter)]),
      subject,
      r.spkiDer,
      derWrap(0xa3, [derWrap(0x30, exts)]),
    ]);
  }

  /** The signed certificate (DER). */
  issue(r: LeafFields): Uint8Array {
    const tbs = this.tbs(r);
    const sig = nodeSign('sha256', tbs, { key: this.key, dsaEncoding: 'der' });
    return derWrap(0x30, [tbs, this.algDer, derWrap(0x03, [Uint8Array.of(0), sig])]);
  }

  private eku(server: boolean, client: boolean): Uint8Array {
    const k = `${server}:${client}`;
    let d = this.ekuExts.get(k);
    if (!d) {
      const ids = [...(server ? [id_kp_serverAuth] : []), ...(client ? [id_kp_clientAuth] : [])];
      d = ext(id_ce_extKeyUsage, false, AsnConvert.serialize(new ExtendedKeyUsage(ids)));
      this.ekuExts.set(k, d);
    }
    return d;
  }

  private san(dns: readonly string[], ips: readonly string[]): Uint8Array {
    const k = JSON.stringify([dns, ips]);
    let d = this.sanExts.get(k);
    if (!d) {
      for (const n of dns) if (!/^[\x20-\x7e]+$/.test(n)) throw new UnsupportedLeaf(`DNS name ${n} is not ASCII`);
      for (const a of ips) if (!isIPv4(a) && !isIPv6(a)) throw new UnsupportedLeaf(`not an IP address: ${a}`);
      const names = [...dns.map((v) => new GeneralName({ dNSName: v })), ...ips.map((v) => new GeneralName({ iPAddress: v }))];
      d = ext(id_ce_subjectAltName, false, AsnConvert.serialize(new SubjectAlternativeName(names)));
      if (this.sanExts.size >= CACHE_MAX) this.sanExts.clear();
      this.sanExts.set(k, d);
    }
    return d;
  }

  private crlDp(url: string): Uint8Array {
    let d = this.crlExts.get(url);
    if (!d) {
      const dp = new DistributionPoint({ distributionPoint: new DistributionPointName({ fullName: [new GeneralName({ uniformResourceIdentifier: url })] }) });
      d = ext(id_ce_cRLDistributionPoints, false, AsnConvert.serialize(new CRLDistributionPoints([dp])));
      if (this.crlExts.size >= CACHE_MAX) this.crlExts.clear();
      this.crlExts.set(url, d);
    }
    return d;
  }
}
