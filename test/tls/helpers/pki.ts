/**
 * A throw-away CA (P-256) + leaf (P-256, or RSA-2048 for rsa_pss_rsae_*; SAN DNS:localhost) made with
 * @peculiar/x509, and a TlsIdentity for it.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto, createPrivateKey, sign as nodeSign, randomBytes, constants } from 'node:crypto';
import type { TlsIdentity } from '../../../src/tls/api.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export interface TestPki {
  readonly caPem: string;
  readonly identity: TlsIdentity;
}

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

const rsaAlg = { name: 'RSA-PSS', hash: 'SHA-256', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) } as const;

/** RSA-PSS (rsae) schemes and their hash / salt length. */
const PSS: Record<number, { hash: string; salt: number }> = {
  0x0804: { hash: 'sha256', salt: 32 },
  0x0805: { hash: 'sha384', salt: 48 },
  0x0806: { hash: 'sha512', salt: 64 },
};

export async function makePki(leafType: 'ecdsa' | 'rsa' = 'ecdsa', rsaSchemes: number[] = [0x0804, 0x0805, 0x0806]): Promise<TestPki> {
  const subtle = webcrypto.subtle;
  const caKeys = (await subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const leafKeys = (await subtle.generateKey(leafType === 'rsa' ? rsaAlg : alg, true, ['sign', 'verify'])) as CryptoKeyPair;
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
  if (leafType === 'rsa') {
    const rsaIdentity: TlsIdentity = {
      certificateChain: [new Uint8Array(leaf.rawData), new Uint8Array(ca.rawData)],
      signatureSchemes: rsaSchemes,
      sign(scheme, data) {
        const p = PSS[scheme];
        if (!p) throw new Error(`cannot sign with scheme ${scheme}`);
        return new Uint8Array(nodeSign(p.hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: p.salt }));
      },
    };
    return { caPem: ca.toString('pem'), identity: rsaIdentity };
  }
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
