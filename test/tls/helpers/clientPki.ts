/**
 * Client-side PKI for mutual-TLS tests, made with @peculiar/x509: a root CA, an intermediate CA,
 * client leaves (P-256) with chosen validity / extensions, and their PEMs for Node's tls client.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto, createPrivateKey, randomBytes } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86400_000;

export interface Issued {
  readonly cert: x509.X509Certificate;
  readonly keys: CryptoKeyPair;
  readonly der: Uint8Array;
  readonly pem: string;
  /** PKCS#8 PEM of the private key. */
  readonly keyPem: string;
}

async function finish(cert: x509.X509Certificate, keys: CryptoKeyPair): Promise<Issued> {
  const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }) as string;
  return { cert, keys, der: new Uint8Array(cert.rawData), pem: cert.toString('pem'), keyPem };
}

const serial = () => randomBytes(8).toString('hex').replace(/^[89a-f]/, '1');

export async function makeCa(name: string, issuer?: Issued, opts: { ca?: boolean; notAfter?: Date } = {}): Promise<Issued> {
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const extensions = [
    new x509.BasicConstraintsExtension(opts.ca ?? true, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  const notBefore = new Date(Date.now() - DAY);
  const notAfter = opts.notAfter ?? new Date(Date.now() + 30 * DAY);
  const cert = issuer
    ? await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: name,
        issuer: issuer.cert.subject,
        notBefore,
        notAfter,
        publicKey: keys.publicKey,
        signingKey: issuer.keys.privateKey,
        signingAlgorithm: alg,
        extensions,
      })
    : await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: serial(), name, notBefore, notAfter, keys, signingAlgorithm: alg, extensions });
  return finish(cert, keys);
}

export interface LeafOptions {
  readonly subject?: string;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** EKU OIDs; undefined = no extendedKeyUsage extension. Default [clientAuth]. */
  readonly eku?: string[] | undefined;
  readonly san?: { type: 'dns' | 'email' | 'ip' | 'url'; value: string }[];
}

export const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
export const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

export async function makeClientLeaf(issuer: Issued, o: LeafOptions = {}): Promise<Issued> {
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const eku = 'eku' in o ? o.eku : [EKU_CLIENT_AUTH];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.SubjectAlternativeNameExtension(o.san ?? [{ type: 'dns', value: 'client.example' }, { type: 'email', value: 'device@example.com' }]),
  ];
  if (eku) extensions.push(new x509.ExtendedKeyUsageExtension(eku));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: o.subject ?? 'CN=device-1,O=setls test',
    issuer: issuer.cert.subject,
    notBefore: o.notBefore ?? new Date(Date.now() - DAY),
    notAfter: o.notAfter ?? new Date(Date.now() + 30 * DAY),
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: alg,
    extensions,
  });
  return finish(cert, keys);
}
