/**
 * Certificate authorities for the security domain's tests (@peculiar/x509 on node's WebCrypto):
 * a manufacturer CA (certifies attestation keys from the card's CSR), an operator root (anchor,
 * time-anchor signer) and an operator issuing CA under it (identity and client certificates).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, webcrypto, type KeyObject } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;
let serial = 1;

export interface TestCa {
  readonly cert: Uint8Array;
  readonly name: string;
  /** The CA private key as a node KeyObject (signs time anchors). */
  readonly key: KeyObject;
  /** A certificate for the key of `csr` (its signature checked), subject from the CSR. */
  issueFromCsr(csr: Uint8Array, opts?: { ca?: boolean }): Promise<Uint8Array>;
  /** A certificate for `spki`, subject CN=`cn` (with `dnsNames` / `ipAddresses`: a SAN extension). */
  issueForSpki(spki: Uint8Array, cn: string, opts?: { ca?: boolean; serial?: string; dnsNames?: readonly string[]; ipAddresses?: readonly string[] }): Promise<Uint8Array>;
  /** A subordinate CA. */
  subordinate(name: string): Promise<TestCa>;
}

async function wrap(name: string, cert: x509.X509Certificate, keys: CryptoKeyPair): Promise<TestCa> {
  const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
  const issue = async (publicKey: x509.PublicKey | CryptoKey, subject: string, ca: boolean, sn?: string, sans: x509.JsonGeneralName[] = []): Promise<Uint8Array> => {
    const c = await x509.X509CertificateGenerator.create({
      serialNumber: sn ?? (serial++).toString(16).padStart(4, '0'),
      subject,
      issuer: cert.subject,
      publicKey,
      signingKey: keys.privateKey,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + 365 * DAY),
      signingAlgorithm: EC,
      extensions: [
        ca ? new x509.BasicConstraintsExtension(true, 0, true) : new x509.BasicConstraintsExtension(false, undefined, true),
        ...(sans.length ? [new x509.SubjectAlternativeNameExtension(sans)] : []),
      ],
    });
    return new Uint8Array(c.rawData);
  };
  const self: TestCa = {
    cert: new Uint8Array(cert.rawData),
    name,
    key,
    async issueFromCsr(csrDer, opts = {}) {
      const csr = new x509.Pkcs10CertificateRequest(new Uint8Array(csrDer));
      if (!(await csr.verify())) throw new Error('CSR signature does not verify');
      return issue(csr.publicKey, csr.subject, opts.ca ?? false);
    },
    async issueForSpki(spki, cn, opts = {}) {
      const pub = new x509.PublicKey(new Uint8Array(spki));
      const sans: x509.JsonGeneralName[] = [...(opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })), ...(opts.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value }))];
      return issue(pub, `CN=${cn}`, opts.ca ?? false, opts.serial, sans);
    },
    async subordinate(sub) {
      const k = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
      const der = await issue(k.publicKey, `CN=${sub}`, true);
      return wrap(sub, new x509.X509Certificate(new Uint8Array(der)), k);
    },
  };
  return self;
}

export async function makeCa(name: string): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: (serial++).toString(16).padStart(4, '0'),
    name: `CN=${name}`,
    keys,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 3650 * DAY),
    signingAlgorithm: EC,
    extensions: [new x509.BasicConstraintsExtension(true, 1, true)],
  });
  return wrap(name, cert, keys);
}

/** Checks a PKCS#10 CSR's signature; returns its SPKI DER and subject. */
export async function checkCsr(der: Uint8Array): Promise<{ spki: Uint8Array; subject: string; attributes: x509.Attribute[] }> {
  const csr = new x509.Pkcs10CertificateRequest(new Uint8Array(der));
  if (!(await csr.verify())) throw new Error('CSR signature does not verify');
  return { spki: new Uint8Array(csr.publicKey.rawData), subject: csr.subject, attributes: csr.attributes };
}
