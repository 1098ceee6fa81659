/**
 * gp/admin/attestation: the attestation statement of AttestKey (function BF22), its byte form and
 * its verification off card. imports bytes/ and node:crypto.
 *
 *   statement = E0 L {                     (the exact bytes signed; fields in this order)
 *     5A 10 UID                            the card
 *     80 01 slot                           identity slot 1..8
 *     81 01 algorithm                      01 P-256, 02 RSA-2048
 *     93 20 SHA-256(SPKI DER)              the attested public key
 *     82 01 policy                         identity policy bits (constants.ts PolicyBits)
 *     9D 01 generated in card              01 = the key pair was generated inside the card
 *     85 L  operator nonce                 8..64 bytes, as sent
 *     99 04 counter                        the audit sequence number of this attestation's own
 *   }                                      audit entry: monotonic per card, ties it to the log
 *   signature = ECDSA P-256 / SHA-256 (DER, X9.62) by the factory attestation key over the E0 TLV
 *
 * The verifier checks the signature with the public key of the attestation certificate (leaf of
 * GET DATA DF51), then the fields against what it asked: UID, slot, nonce, the SHA-256 of the SPKI
 * it holds (from GenerateIdentityKey or the CSR).
 */
import { createHash, createPublicKey, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { SetlsError, ctEqual } from '../../bytes/index.js';
import { Field, IsdLimits, SignedTag, UID_LENGTH } from './constants.js';
import { AdminFormatError, be, opt, readFields, req, tlv, uint, unwrapOne } from './fields.js';

export interface AttestationStatement {
  readonly uid: Uint8Array;
  readonly slot: number;
  readonly algorithm: number;
  readonly spkiSha256: Uint8Array;
  readonly policy: number;
  readonly generatedInCard: boolean;
  readonly nonce: Uint8Array;
  readonly counter: number;
}

export function sha256(b: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(b).digest());
}

/** The E0 TLV (the bytes the attestation key signs). */
export function encodeAttestationStatement(s: AttestationStatement): Uint8Array {
  return tlv(SignedTag.attestation, [
    [Field.uid, s.uid],
    [Field.slot, Uint8Array.of(s.slot)],
    [Field.algorithm, Uint8Array.of(s.algorithm)],
    [Field.digest, s.spkiSha256],
    [Field.policy, Uint8Array.of(s.policy)],
    [Field.generatedInCard, Uint8Array.of(s.generatedInCard ? 1 : 0)],
    [Field.nonce, s.nonce],
    [Field.auditSeq, be(s.counter, 4)],
  ]);
}

const ORDER = [Field.uid, Field.slot, Field.algorithm, Field.digest, Field.policy, Field.generatedInCard, Field.nonce, Field.auditSeq];

/** Parses an E0 TLV strictly (fields exactly once, in order, of the right sizes). */
export function parseAttestationStatement(b: Uint8Array): AttestationStatement {
  const what = 'attestation statement';
  const value = unwrapOne(b, SignedTag.attestation, what);
  const f = readFields(value, Object.fromEntries(ORDER.map((t) => [t, 1])), what);
  const again = tlv(SignedTag.attestation, ORDER.map((t) => [t, opt(f, t)] as const));
  if (!ctEqual(again, b)) throw new AdminFormatError(`${what}: fields missing or out of order`);
  const uid = req(f, Field.uid, what);
  if (uid.length !== UID_LENGTH) throw new AdminFormatError(`${what}: UID of ${uid.length} bytes`);
  const digest = req(f, Field.digest, what);
  if (digest.length !== 32) throw new AdminFormatError(`${what}: SPKI digest of ${digest.length} bytes`);
  const nonce = req(f, Field.nonce, what);
  if (nonce.length < IsdLimits.minNonce || nonce.length > IsdLimits.maxNonce) throw new AdminFormatError(`${what}: nonce of ${nonce.length} bytes`);
  const gen = uint(req(f, Field.generatedInCard, what), 1, what);
  if (gen > 1) throw new AdminFormatError(`${what}: generated-in-card flag ${gen}`);
  return {
    uid,
    slot: uint(req(f, Field.slot, what), 1, what),
    algorithm: uint(req(f, Field.algorithm, what), 1, what),
    spkiSha256: digest,
    policy: uint(req(f, Field.policy, what), 1, what),
    generatedInCard: gen === 1,
    nonce,
    counter: uint(req(f, Field.auditSeq, what), 4, what),
  };
}

/** The public key of a certificate (DER) or an SPKI (DER). */
export function publicKeyOf(certOrSpki: Uint8Array): KeyObject {
  if (certOrSpki[0] === 0x30) {
    try {
      return new X509Certificate(certOrSpki).publicKey;
    } catch {
      // not a certificate: an SPKI
    }
  }
  return createPublicKey({ key: certOrSpki as Buffer, format: 'der', type: 'spki' });
}

/** Whether `signature` is an ECDSA-P256/SHA-256 (or RSA PKCS#1 v1.5/SHA-256) signature of `data` by `key`. */
export function verifySha256(key: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify('sha256', data, key, signature);
  } catch {
    return false;
  }
}

/**
 * Off card: checks a statement's signature with the attestation certificate (or SPKI) and returns
 * the parsed statement; throws ERR_ADMIN_SIGNATURE when the signature does not verify.
 */
export function verifyAttestation(statement: Uint8Array, signature: Uint8Array, attestationCertOrSpki: Uint8Array): AttestationStatement {
  const parsed = parseAttestationStatement(statement);
  if (!verifySha256(publicKeyOf(attestationCertOrSpki), statement, signature)) {
    throw new SetlsError('ERR_ADMIN_SIGNATURE', 'attestation statement: the signature does not verify with the attestation key');
  }
  return parsed;
}
