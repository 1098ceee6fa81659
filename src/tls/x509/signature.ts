/**
 * Verification of a peer's CertificateVerify signature with its leaf certificate's key
 * (node:crypto). The scheme must fit the key: ecdsa_secp256r1_sha256 needs a P-256 key,
 * rsa_pss_rsae_* an rsaEncryption key, ed25519 an Ed25519 key; otherwise it does not verify.
 * imports node:crypto only.
 */
import { X509Certificate, verify as nodeVerify, type KeyObject } from 'node:crypto';

/** Schemes this server accepts in a client CertificateVerify (TLS 1.3), in preference order. */
export const CLIENT_SIGNATURE_SCHEMES: readonly number[] = [0x0403, 0x0804, 0x0805, 0x0806, 0x0807];

const PSS: Readonly<Record<number, { hash: string; salt: number }>> = {
  0x0804: { hash: 'sha256', salt: 32 },
  0x0805: { hash: 'sha384', salt: 48 },
  0x0806: { hash: 'sha512', salt: 64 },
};

function verifyWithKey(scheme: number, key: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  const type = key.asymmetricKeyType;
  if (scheme === 0x0403) {
    if (type !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') return false;
    return nodeVerify('sha256', data, { key, dsaEncoding: 'der' }, signature);
  }
  const pss = PSS[scheme];
  if (pss) {
    if (type !== 'rsa') return false;
    return nodeVerify(pss.hash, data, { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: pss.salt }, signature);
  }
  if (scheme === 0x0807) return type === 'ed25519' && nodeVerify(null, data, key, signature);
  return false;
}

/** Whether `signature` over `data` verifies with the key of certificate `leafDer` under `scheme`. */
export function verifyLeafSignature(scheme: number, leafDer: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verifyWithKey(scheme, new X509Certificate(leafDer).publicKey, data, signature);
  } catch {
    return false;
  }
}
