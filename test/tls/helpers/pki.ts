/** A throw-away CA + leaf (P-256, SAN DNS:localhost) made with @peculiar/x509, and a TlsIdentity for it. */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto, createPrivateKey, sign as nodeSign, randomBytes } from 'node:crypto';
import type { TlsIdentity } from '../../../src/tls/api.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export interface TestPki {
  readonly caPem: string;
  readonly identity: TlsIdentity;
}

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export async function makePki(): Promise<TestPki> {
  const subtle = webcrypto.subtle;
  const caKeys = (await subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const leafKeys = (await subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const notBefore = new Date(Date.now() - 86400_000);
  const notAfter = new Date(Date.now() + 86400_000);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=setls test CA',
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'),
    subject: 'CN=localhost',
    issuer: ca.subject,
    notBefore,
    notAfter,
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'localhost' }]),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    ],
  });
  const pkcs8 = new Uint8Array(await subtle.exportKey('pkcs8', leafKeys.privateKey));
  const key = createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
  const identity: TlsIdentity = {
    certificateChain: [new Uint8Array(leaf.rawData), new Uint8Array(ca.rawData)],
    signatureSchemes: [0x0403],
    sign(scheme, data) {
      if (scheme !== 0x0403) throw new Error(`cannot sign with scheme ${scheme}`);
      return new Uint8Array(nodeSign('sha256', data, { key, dsaEncoding: 'der' }));
    },
  };
  return { caPem: ca.toString('pem'), identity };
}
