/**
 * operator/pki/issuing-ca: an operator certificate authority (ECDSA P-256) — the issuing CA that
 * certifies card keys, and the separate TLS CA that certifies the operator's own HTTPS endpoint:
 * create, load from files, issue a leaf for a public key, build a CRL v2 with a cRLNumber.
 * Built on @peculiar/x509 and @peculiar/asn1-x509 with node's WebCrypto. imports pki/x509, bytes/.
 *
 * The private key is a non-extractable WebCrypto key loaded from a PKCS#8 file (mode 0600) kept
 * outside the database; nothing here writes it anywhere else.
 */
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AuthorityKeyIdentifier,
  Certificate,
  CRLNumber,
  CRLReason,
  Extension as AsnExtension,
  id_ce_authorityKeyIdentifier,
  id_ce_cRLNumber,
  id_ce_cRLReasons,
  KeyIdentifier,
  RevokedCertificate,
  TBSCertList,
  Time,
  Version,
} from '@peculiar/asn1-x509';
import { KeyObject, sign as nodeSign, webcrypto, X509Certificate, type KeyObject as KeyObjectType } from 'node:crypto';
import { toHex } from '../../bytes/index.js';
import { derChildren, derWrap } from './der.js';
import { LeafTemplate, UnsupportedLeaf } from './leaf-template.js';
import { DAY_MS, EC_P256, toPem, x509 } from './x509.js';

export const CrlReason = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
} as const;
export type CrlReasonName = keyof typeof CrlReason;
export function isCrlReason(v: unknown): v is CrlReasonName {
  return typeof v === 'string' && Object.prototype.hasOwnProperty.call(CrlReason, v);
}

export interface LeafRequest {
  /** DER SubjectPublicKeyInfo of the key to certify. */
  readonly spkiDer: Uint8Array;
  readonly serial: Uint8Array;
  /** Distinguished name, e.g. `CN=0011…`. */
  readonly subject: string;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** cRLDistributionPoints URL (omitted when absent). */
  readonly crlUrl?: string;
  readonly serverAuth?: boolean;
  readonly clientAuth?: boolean;
}

export interface CrlEntry {
  readonly serial: Uint8Array;
  readonly revokedAt: number;
  readonly reason: string | null;
}

export interface GeneratedCa {
  readonly ca: OperatorCa;
  /** PKCS#8 PEM of the new private key: the caller writes it (mode 0600) and drops the string. */
  readonly keyPem: string;
}

export class OperatorCa {
  readonly certDer: Uint8Array;
  readonly nodeCert: X509Certificate;
  private readonly asnCert: Certificate;
  /** The same private key as a node KeyObject (node:crypto signing of CRLs). */
  private readonly keyObject: KeyObjectType;
  private constructor(
    readonly certificate: x509.X509Certificate,
    private readonly key: CryptoKey,
  ) {
    this.certDer = new Uint8Array(certificate.rawData);
    this.nodeCert = new X509Certificate(this.certDer);
    this.asnCert = AsnConvert.parse(this.certDer, Certificate);
    this.keyObject = KeyObject.from(key);
  }

  get certPem(): string {
    return toPem(this.certDer, 'CERTIFICATE');
  }
  get notAfter(): number {
    return this.certificate.notAfter.getTime();
  }

  /** A new self-signed CA (pathLen 0: it certifies leaves only). */
  static async generate(name: string, days: number, now = Date.now()): Promise<GeneratedCa> {
    const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      name,
      keys,
      serialNumber: toHex(randomSerialForCa()),
      notBefore: new Date(now - 3600 * 1000),
      notAfter: new Date(now + days * DAY_MS),
      signingAlgorithm: EC_P256,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    const keyPem = toPem(pkcs8, 'PRIVATE KEY');
    pkcs8.fill(0);
    const signing = await importSigningKey(keyPem);
    return { ca: new OperatorCa(cert, signing), keyPem };
  }

  static async load(certPem: string, keyPem: string): Promise<OperatorCa> {
    const cert = new x509.X509Certificate(certPem);
    const key = await importSigningKey(keyPem);
    const ca = new OperatorCa(cert, key);
    // The key must be the certificate's: sign and verify a probe.
    const probe = new Uint8Array(32);
    const sig = await webcrypto.subtle.sign(EC_P256, key, probe);
    const pub = await cert.publicKey.export(EC_P256, ['verify'], webcrypto as unknown as Crypto);
    if (!(await webcrypto.subtle.verify(EC_P256, pub, sig, probe))) throw new Error('the CA key file does not match the CA certificate');
    return ca;
  }

  /**
   * ECDSA P-256 / SHA-256 signature (DER) of `data` by the CA key: the time anchors the card checks
   * against the operator root (docs/admin-protocol.md §7.3). Nothing else is signed this way.
   */
  signSha256(data: Uint8Array): Uint8Array {
    return new Uint8Array(nodeSign('sha256', data, { key: this.keyObject, dsaEncoding: 'der' }));
  }

  private template: LeafTemplate | undefined;

  /**
   * The enrolment hot path (pki/leaf-template.ts): the same certificate as `issue`, framed from a
   * DER template and signed with node:crypto; a request the template does not cover goes to `issue`.
   */
  async issueFast(req: LeafRequest): Promise<Uint8Array> {
    this.template ??= new LeafTemplate(this.certDer, this.keyObject);
    try {
      return this.template.issue(req);
    } catch (e) {
      if (e instanceof UnsupportedLeaf) return this.issue(req);
      throw e;
    }
  }

  /** What a worker thread needs to build the same template: the CA certificate and its key (a KeyObject, cloned by postMessage, never exported). */
  templateMaterial(): { certDer: Uint8Array; key: KeyObjectType } {
    return { certDer: this.certDer, key: this.keyObject };
  }

  /** Issues a leaf certificate for `req.spkiDer` with @peculiar/x509; checks the result chains to this CA. */
  async issue(req: LeafRequest): Promise<Uint8Array> {
    const publicKey = new x509.PublicKey(new Uint8Array(req.spkiDer));
    const names: x509.JsonGeneralName[] = [
      ...req.dnsNames.map((v) => ({ type: 'dns' as const, value: v })),
      ...req.ipAddresses.map((v) => ({ type: 'ip' as const, value: v })),
    ];
    const eku: string[] = [];
    if (req.serverAuth ?? true) eku.push(x509.ExtendedKeyUsage.serverAuth);
    if (req.clientAuth ?? true) eku.push(x509.ExtendedKeyUsage.clientAuth);
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(eku),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(this.certificate),
    ];
    if (names.length) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
    if (req.crlUrl) extensions.push(new x509.CRLDistributionPointsExtension([req.crlUrl]));
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: toHex(req.serial),
      subject: req.subject,
      issuer: this.certificate.subjectName,
      publicKey,
      signingKey: this.key,
      notBefore: req.notBefore,
      notAfter: req.notAfter,
      signingAlgorithm: EC_P256,
      extensions,
    });
    const der = new Uint8Array(leaf.rawData);
    if (!new X509Certificate(der).checkIssued(this.nodeCert)) throw new Error('issued certificate does not chain to the CA');
    return der;
  }

  /**
   * A CRL v2 signed by this CA, with cRLNumber `number`, authorityKeyIdentifier and a reason code per
   * entry. The parts are encoded with the @peculiar/asn1-x509 schemas and signed with node:crypto;
   * each revoked entry is encoded once and cached (entries never change), and the SEQUENCE OF them
   * is framed here (der.ts) — the high-level X509CrlGenerator took 0.5 s for 1 000 entries and 3.5 s
   * for 5 000 on this machine (bench/operator-pki.ts), far from "a new CRL within 1 s", and encoding
   * every entry through asn1js each time still took ~1 s for 5 000.
   */
  async buildCrl(number: number, entries: readonly CrlEntry[], thisUpdate: Date, nextUpdate: Date): Promise<Uint8Array> {
    const ext = (id: string, value: ArrayBuffer): AsnExtension => new AsnExtension({ extnID: id, critical: false, extnValue: new OctetString(value) });
    const crlExtensions = [ext(id_ce_cRLNumber, AsnConvert.serialize(new CRLNumber(number)))];
    const ski = this.certificate.getExtension(x509.SubjectKeyIdentifierExtension);
    if (ski) {
      crlExtensions.push(ext(id_ce_authorityKeyIdentifier, AsnConvert.serialize(new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(Buffer.from(ski.keyId, 'hex')) }))));
    }
    const algorithm = new AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA256 });
    const base = new Uint8Array(
      AsnConvert.serialize(
        new TBSCertList({ version: Version.v2, signature: algorithm, issuer: this.asnCert.tbsCertificate.subject, thisUpdate: new Time(thisUpdate), nextUpdate: new Time(nextUpdate), crlExtensions }),
      ),
    );
    const fields = derChildren(base);
    if (entries.length > 0) {
      const revoked = derWrap(0x30, entries.map((e) => this.entryDer(e)));
      const at = fields.findIndex((f) => f[0] === 0xa0); // before [0] crlExtensions
      fields.splice(at < 0 ? fields.length : at, 0, revoked);
    }
    const tbsDer = derWrap(0x30, fields);
    const signature = new Uint8Array(nodeSign('sha256', tbsDer, this.keyObject));
    return derWrap(0x30, [tbsDer, new Uint8Array(AsnConvert.serialize(algorithm)), derWrap(0x03, [Uint8Array.of(0x00), signature])]);
  }

  private readonly entryCache = new Map<string, Uint8Array>();
  private entryDer(e: CrlEntry): Uint8Array {
    const key = `${Buffer.from(e.serial).toString('hex')}:${e.revokedAt}:${e.reason ?? ''}`;
    let der = this.entryCache.get(key);
    if (!der) {
      const reason = e.reason && isCrlReason(e.reason) && e.reason !== 'unspecified' ? CrlReason[e.reason] : null;
      der = new Uint8Array(
        AsnConvert.serialize(
          new RevokedCertificate({
            userCertificate: new Uint8Array(e.serial).buffer,
            revocationDate: new Time(new Date(e.revokedAt)),
            ...(reason !== null
              ? { crlEntryExtensions: [new AsnExtension({ extnID: id_ce_cRLReasons, critical: false, extnValue: new OctetString(AsnConvert.serialize(new CRLReason(reason as number))) })] }
              : {}),
          }),
        ),
      );
      if (this.entryCache.size >= 500_000) this.entryCache.clear();
      this.entryCache.set(key, der);
    }
    return der;
  }
}

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

async function importSigningKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  try {
    return await webcrypto.subtle.importKey('pkcs8', der, EC_P256, false, ['sign']);
  } finally {
    new Uint8Array(der).fill(0);
  }
}

function randomSerialForCa(): Uint8Array {
  const s = new Uint8Array(webcrypto.getRandomValues(new Uint8Array(16)));
  s[0] = (s[0]! & 0x7f) | 0x40;
  return s;
}
