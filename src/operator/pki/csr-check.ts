/**
 * operator/pki/csr-check: the enrolment hot path's PKCS#10 check, synchronous and without
 * @peculiar/x509 (usable in a worker thread): the request is parsed with the @peculiar/asn1-csr
 * schema (structure), the signed CertificationRequestInfo is taken as its exact bytes (der.ts), the
 * key policy is applied with node:crypto, and the self-signature is verified with node:crypto.
 * Same result and same refusal codes as csr.ts's checkCsr (ERR_OP_CSR_INVALID, ERR_OP_KEY_POLICY,
 * ERR_OP_CSR_SIGNATURE). imports pki/der, pki/csr (type), errors, @peculiar/asn1-*.
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { createHash, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { OpError, OpErrorCode } from '../errors.js';
import type { CheckedCsr } from './csr.js';
import { derChildren } from './der.js';

/** Signature algorithms a card's CSR may use: OID → [hash, key type]. */
const SIG_ALGS: Readonly<Record<string, readonly [string, 'ec' | 'rsa']>> = {
  '1.2.840.10045.4.3.2': ['sha256', 'ec'],
  '1.2.840.10045.4.3.3': ['sha384', 'ec'],
  '1.2.840.10045.4.3.4': ['sha512', 'ec'],
  '1.2.840.113549.1.1.11': ['sha256', 'rsa'],
  '1.2.840.113549.1.1.12': ['sha384', 'rsa'],
  '1.2.840.113549.1.1.13': ['sha512', 'rsa'],
};

/** Parses and verifies `csrDer`; throws the refusal's OpError. */
export function checkCsrDer(csrDer: Uint8Array): CheckedCsr {
  let req: CertificationRequest;
  let criDer: Uint8Array;
  let spkiDer: Uint8Array;
  try {
    req = AsnConvert.parse(csrDer, CertificationRequest);
    const top = derChildren(csrDer);
    if (top.length !== 3) throw new Error('a CertificationRequest has three elements');
    criDer = top[0]!;
    const cri = derChildren(criDer);
    if (cri.length < 3 || cri[2]![0] !== 0x30) throw new Error('no subjectPKInfo');
    spkiDer = new Uint8Array(cri[2]!);
  } catch (e) {
    throw new OpError(OpErrorCode.csrInvalid, `the CSR does not parse: ${(e as Error).message}`);
  }
  let alg: string;
  let key;
  try {
    key = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
  } catch (e) {
    throw new OpError(OpErrorCode.csrInvalid, `the CSR's public key does not parse: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') alg = 'p256';
  else if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) alg = `rsa${key.asymmetricKeyDetails!.modulusLength}`;
  else throw new OpError(OpErrorCode.keyPolicy, `key type ${key.asymmetricKeyType} ${key.asymmetricKeyDetails?.namedCurve ?? key.asymmetricKeyDetails?.modulusLength ?? ''} is not allowed (ECDSA P-256 or RSA ≥ 2048)`);
  const sigAlg = SIG_ALGS[req.signatureAlgorithm.algorithm];
  let ok = false;
  if (sigAlg && sigAlg[1] === key.asymmetricKeyType) {
    try {
      ok = nodeVerify(sigAlg[0], criDer, sigAlg[1] === 'ec' ? { key, dsaEncoding: 'der' } : key, new Uint8Array(req.signature));
    } catch {
      ok = false;
    }
  }
  if (!ok) throw new OpError(OpErrorCode.csrSignature, 'the CSR signature does not verify with its own key');
  return { spkiDer, spkiSha256: new Uint8Array(createHash('sha256').update(spkiDer).digest()), alg };
}
