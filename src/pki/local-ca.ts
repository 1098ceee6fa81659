/**
 * A local certificate authority for development and demo devices: makes a P-256 CA, and signs the
 * CSRs that cards produce (the card's private key never leaves the card; only its CSR comes here):
 * TLS certificates for their identities, and — as a local manufacturer's CA — attestation
 * certificates for their factory attestation keys.
 * Built on @peculiar/x509 with node's WebCrypto. imports bytes/ only (plus packages).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto, createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { SetlsError } from '../bytes/index.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 24 * 3600 * 1000;

export interface LocalCa {
  readonly dir: string;
  readonly certPath: string;
  readonly certificate: x509.X509Certificate;
  /** SHA-256 fingerprint of the CA certificate, colon-separated upper-case hex. */
  readonly fingerprint: string;
  sign(csrDer: Uint8Array, opts: LeafOptions): Promise<Uint8Array>;
  /**
   * A manufacturer's attestation certificate for a card's attestation key (its CSR, signed by the
   * key, subject CN = the card UID in hex, kept): digitalSignature only, no extended key usage, no
   * names — it certifies a key, not a TLS server. Valid `days` (default 20 years).
   */
  signAttestation(csrDer: Uint8Array, opts?: { readonly days?: number; readonly now?: Date }): Promise<Uint8Array>;
}

export interface LeafOptions {
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly days?: number;
  readonly now?: Date;
}

export function fingerprintOf(der: Uint8Array): string {
  return createHash('sha256')
    .update(der)
    .digest('hex')
    .toUpperCase()
    .replace(/(..)(?!$)/g, '$1:');
}

/** Opens the CA in `dir`, creating it (ca.crt, and ca.key with mode 0600) if absent. */
export async function openLocalCa(dir: string, name = 'setls local CA'): Promise<LocalCa> {
  const certPath = join(dir, 'ca.crt');
  const keyPath = join(dir, 'ca.key');
  let cert: x509.X509Certificate;
  let key: CryptoKey;
  if (existsSync(certPath) && existsSync(keyPath)) {
    cert = new x509.X509Certificate(readFileSync(certPath, 'utf8'));
    const pkcs8 = x509.PemConverter.decodeFirst(readFileSync(keyPath, 'utf8'));
    key = await webcrypto.subtle.importKey('pkcs8', pkcs8, EC_ALG, false, ['sign']);
  } else {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const keys = (await webcrypto.subtle.generateKey(EC_ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
    const now = Date.now();
    cert = await x509.X509CertificateGenerator.createSelfSigned({
      name: `CN=${name}`,
      keys,
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 3650 * DAY),
      signingAlgorithm: EC_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
    writeFileSync(keyPath, x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'), { mode: 0o600 });
    chmodSync(keyPath, 0o600);
    writeFileSync(certPath, cert.toString('pem') + '\n');
    key = keys.privateKey;
  }
  const caCert = cert;
  const signingKey = key;
  return {
    dir,
    certPath,
    certificate: caCert,
    fingerprint: fingerprintOf(new Uint8Array(caCert.rawData)),
    async sign(csrDer: Uint8Array, opts: LeafOptions): Promise<Uint8Array> {
      const csr = new x509.Pkcs10CertificateRequest(new Uint8Array(csrDer));
      if (!(await csr.verify())) throw new SetlsError('ERR_PKI_CSR', 'the CSR signature does not verify');
      const now = opts.now?.getTime() ?? Date.now();
      const names: x509.JsonGeneralName[] = [
        ...opts.dnsNames.map((v) => ({ type: 'dns' as const, value: v })),
        ...opts.ipAddresses.map((v) => ({ type: 'ip' as const, value: v })),
      ];
      const leaf = await x509.X509CertificateGenerator.create({
        subject: csr.subjectName,
        issuer: caCert.subjectName,
        publicKey: csr.publicKey,
        signingKey,
        notBefore: new Date(now - 3600 * 1000),
        notAfter: new Date(now + (opts.days ?? 397) * DAY),
        signingAlgorithm: EC_ALG,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
          new x509.SubjectAlternativeNameExtension(names, false),
          await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
          await x509.AuthorityKeyIdentifierExtension.create(caCert),
        ],
      });
      return checked(new Uint8Array(leaf.rawData));
    },
    async signAttestation(csrDer, opts = {}): Promise<Uint8Array> {
      const csr = new x509.Pkcs10CertificateRequest(new Uint8Array(csrDer));
      if (!(await csr.verify())) throw new SetlsError('ERR_PKI_CSR', 'the CSR signature does not verify');
      const now = opts.now?.getTime() ?? Date.now();
      const cert = await x509.X509CertificateGenerator.create({
        subject: csr.subjectName,
        issuer: caCert.subjectName,
        publicKey: csr.publicKey,
        signingKey,
        notBefore: new Date(now - 3600 * 1000),
        notAfter: new Date(now + (opts.days ?? 20 * 365) * DAY),
        signingAlgorithm: EC_ALG,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
          await x509.AuthorityKeyIdentifierExtension.create(caCert),
        ],
      });
      return checked(new Uint8Array(cert.rawData));
    },
  };

  /** Cross-check with node's own X.509 parser: the certificate must chain to the CA. */
  function checked(der: Uint8Array): Uint8Array {
    if (!new X509Certificate(der).checkIssued(new X509Certificate(new Uint8Array(caCert.rawData)))) {
      throw new SetlsError('ERR_PKI_ISSUE', 'issued certificate does not chain to the CA');
    }
    return der;
  }
}
