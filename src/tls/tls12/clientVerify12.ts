/**
 * The client's TLS 1.2 CertificateVerify signature (RFC 5246 §7.4.8) over the handshake messages:
 * the TLS 1.3 verifier (x509/signature.ts: ecdsa_secp256r1_sha256, rsa_pss_rsae_*) plus
 * rsa_pkcs1_sha256/384/512, which TLS 1.2 still allows.
 * imports node:crypto and tls/ siblings only.
 */
import { X509Certificate, constants, verify as nodeVerify } from 'node:crypto';
import { SignatureScheme } from '../constants.js';
import { verifyLeafSignature } from '../x509/index.js';

const PKCS1: Readonly<Record<number, string>> = {
  [SignatureScheme.rsa_pkcs1_sha256]: 'sha256',
  [SignatureScheme.rsa_pkcs1_sha384]: 'sha384',
  [SignatureScheme.rsa_pkcs1_sha512]: 'sha512',
};

export function verifyClientSignature12(scheme: number, leafDer: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  const hashName = PKCS1[scheme];
  if (!hashName) return verifyLeafSignature(scheme, leafDer, data, signature);
  try {
    const key = new X509Certificate(leafDer).publicKey;
    if (key.asymmetricKeyType !== 'rsa') return false;
    return nodeVerify(hashName, data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
  } catch {
    return false;
  }
}
