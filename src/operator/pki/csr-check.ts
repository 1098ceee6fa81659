/**
 * operator/pki/csr-check: the enrolment hot path's PKCS#10 check, synchronous and without
 * @peculiar/x509 (usable in a worker thread): the request's structure is checked with der.ts, the
 * signed CertificationRequestInfo is taken as its exact bytes, the key policy is applied with node:crypto, and the self-signature is verified with node:crypto.
 * Same result and same refusal codes as csr.ts's checkCsr (ERR_OP_CSR_INVALID, ERR_OP_KEY_POLICY,
 * ERR_OP_CSR_SIGNATURE). imports pki/der, pki/csr (type), errors, @peculiar/asn1-x509 (algorithm identifiers, encoded once).
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { createHash, createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { OpError, OpErrorCode } from '../errors.js';
import type { CheckedCsr } from './csr.js';
import { derChildren } from './der.js';
import { isP256Spki, p256PublicKey } from './p256-key.js';

/** Signature algorithms a card's CSR may use: the AlgorithmIdentifier's DER (hex) → [hash, key type]. */
const SIG_ALGS = new Map<string, readonly [string, 'ec' | 'rsa']>();
for (const [oid, hash, type] of [
  ['1.2.840.10045.4.3.2', 'sha256', 'ec'],
  ['1.2.840.10045.4.3.3', 'sha384', 'ec'],
  ['1.2.840.10045.4.3.4', 'sha512', 'ec'],
  ['1.2.840.113549.1.1.11', 'sha256', 'rsa'],
  ['1.2.840.113549.1.1.12', 'sha384', 'rsa'],
  ['1.2.840.113549.1.1.13', 'sha512', 'rsa'],
] as const) {
  const noParams = Buffer.from(AsnConvert.serialize(new AlgorithmIdentifier({ algorithm: oid }))).toString('hex');
  SIG_ALGS.set(noParams, [hash, type]);
  if (type === 'rsa') SIG_ALGS.set(Buffer.from(AsnConvert.serialize(new AlgorithmIdentifier({ algorithm: oid, parameters: null }))).toString('hex'), [hash, type]);
}

/** How CSR keys were imported (tests, metrics): the P-256 fast path (pki/p256-key.ts), or OpenSSL's SPKI decoder. */
export const csrKeyImports = { p256: 0, spki: 0 };

/** A P-256 key from its coordinates (pki/p256-key.ts); null for any other key: the caller decodes the DER. */
function p256Key(spki: Uint8Array): KeyObject | null {
  if (!isP256Spki(spki)) {
    csrKeyImports.spki++;
    return null;
  }
  csrKeyImports.p256++;
  return p256PublicKey(spki);
}

/** The DER element's tag and contents (one-byte tags). */
function contents(el: Uint8Array): { tag: number; value: Uint8Array } {
  const n = el[1]! & 0x80 ? el[1]! & 0x7f : 0;
  return { tag: el[0]!, value: el.subarray(2 + n) };
}

/**
 * Parses and verifies `csrDer`; throws the refusal's OpError. The structure is checked element by
 * element (der.ts enforces definite lengths that add up, with nothing after the request):
 * CertificationRequest = SEQUENCE { CertificationRequestInfo = SEQUENCE { INTEGER 0, Name,
 * SubjectPublicKeyInfo, [0] attributes }, AlgorithmIdentifier, BIT STRING (no unused bits) } — the
 * asn1-csr schema parse this replaced cost half of the check (bench/scale.ts --cpu-prof).
 */
export function checkCsrDer(csrDer: Uint8Array): CheckedCsr {
  let criDer: Uint8Array;
  let spkiDer: Uint8Array;
  let algHex: string;
  let signature: Uint8Array;
  try {
    if (csrDer[0] !== 0x30) throw new Error('not a SEQUENCE');
    const top = derChildren(csrDer);
    if (top.length !== 3 || top[0]![0] !== 0x30 || top[1]![0] !== 0x30 || top[2]![0] !== 0x03) throw new Error('a CertificationRequest is SEQUENCE { info, algorithm, signature }');
    criDer = top[0]!;
    const cri = derChildren(criDer);
    if (cri.length !== 4 || Buffer.compare(cri[0]!, Buffer.from([0x02, 0x01, 0x00])) !== 0 || cri[1]![0] !== 0x30 || cri[2]![0] !== 0x30 || cri[3]![0] !== 0xa0) {
      throw new Error('a CertificationRequestInfo is SEQUENCE { version 0, subject, subjectPKInfo, [0] attributes }');
    }
    derChildren(cri[1]!); // the subject's own framing
    derChildren(cri[3]!);
    spkiDer = new Uint8Array(cri[2]!);
    algHex = Buffer.from(top[1]!).toString('hex');
    const bits = contents(top[2]!).value;
    if (bits.length < 2 || bits[0] !== 0) throw new Error('the signature BIT STRING has unused bits');
    signature = bits.subarray(1);
  } catch (e) {
    throw new OpError(OpErrorCode.csrInvalid, `the CSR does not parse: ${(e as Error).message}`);
  }
  let alg: string;
  let key: KeyObject;
  let p256 = false;
  try {
    const fast = p256Key(spkiDer);
    p256 = fast !== null;
    key = fast ?? createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
  } catch (e) {
    throw new OpError(OpErrorCode.csrInvalid, `the CSR's public key does not parse: ${(e as Error).message}`);
  }
  // a key imported as P-256 is one (OpenSSL checked the point on that curve): no details to read (~25 µs)
  if (p256 || (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1')) alg = 'p256';
  else if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) alg = `rsa${key.asymmetricKeyDetails!.modulusLength}`;
  else throw new OpError(OpErrorCode.keyPolicy, `key type ${key.asymmetricKeyType} ${key.asymmetricKeyDetails?.namedCurve ?? key.asymmetricKeyDetails?.modulusLength ?? ''} is not allowed (ECDSA P-256 or RSA ≥ 2048)`);
  const sigAlg = SIG_ALGS.get(algHex);
  let ok = false;
  if (sigAlg && sigAlg[1] === key.asymmetricKeyType) {
    try {
      ok = nodeVerify(sigAlg[0], criDer, sigAlg[1] === 'ec' ? { key, dsaEncoding: 'der' } : key, signature);
    } catch {
      ok = false;
    }
  }
  if (!ok) throw new OpError(OpErrorCode.csrSignature, 'the CSR signature does not verify with its own key');
  return { spkiDer, spkiSha256: new Uint8Array(createHash('sha256').update(spkiDer).digest()), alg };
}
