/**
 * operator/pki/csr: a card's PKCS#10 request as the operator checks it — parses, verifies the
 * self-signature, extracts the SubjectPublicKeyInfo and its SHA-256, and applies the key policy
 * (ECDSA P-256, or RSA of at least 2048 bits). imports pki/x509, errors.
 */
import { createPublicKey } from 'node:crypto';
import { OpError, OpErrorCode } from '../errors.js';
import { sha256, x509 } from './x509.js';

export interface CheckedCsr {
  readonly spkiDer: Uint8Array;
  readonly spkiSha256: Uint8Array;
  /** 'p256' or 'rsa<bits>'. */
  readonly alg: string;
}

/** Parses and verifies `csrDer`; ERR_OP_CSR_INVALID / ERR_OP_CSR_SIGNATURE / ERR_OP_KEY_POLICY. */
export async function checkCsr(csrDer: Uint8Array): Promise<CheckedCsr> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(new Uint8Array(csrDer));
  } catch (e) {
    throw new OpError(OpErrorCode.csrInvalid, `the CSR does not parse: ${(e as Error).message}`);
  }
  const spkiDer = new Uint8Array(csr.publicKey.rawData);
  let alg: string;
  try {
    const key = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') alg = 'p256';
    else if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) alg = `rsa${key.asymmetricKeyDetails!.modulusLength}`;
    else throw new OpError(OpErrorCode.keyPolicy, `key type ${key.asymmetricKeyType} ${key.asymmetricKeyDetails?.namedCurve ?? key.asymmetricKeyDetails?.modulusLength ?? ''} is not allowed (ECDSA P-256 or RSA ≥ 2048)`);
  } catch (e) {
    if (e instanceof OpError) throw e;
    throw new OpError(OpErrorCode.csrInvalid, `the CSR's public key does not parse: ${(e as Error).message}`);
  }
  let ok = false;
  try {
    ok = await csr.verify();
  } catch {
    ok = false;
  }
  if (!ok) throw new OpError(OpErrorCode.csrSignature, 'the CSR signature does not verify with its own key');
  return { spkiDer, spkiSha256: sha256(spkiDer), alg };
}
