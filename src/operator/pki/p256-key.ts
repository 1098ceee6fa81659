/**
 * operator/pki/p256-key: a P-256 public key imported from its SubjectPublicKeyInfo's coordinates as
 * a JWK — OpenSSL 3's DER decoder costs ~2.5× as much (≈ 180 µs against 70 µs; the largest share of
 * the CSR check and of the attestation key's import in bench/scale.ts --cpu-prof). The import is as
 * strict: OpenSSL checks the point (coordinates below p, on the curve, of the group's order) and
 * throws otherwise. imports node:crypto.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';

/** SubjectPublicKeyInfo of a P-256 key with an uncompressed point, up to the point's 64 bytes. */
export const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d03010703420004', 'hex');

/** Whether `spki` has the exact shape p256PublicKey imports (the point itself is checked by the import). */
export function isP256Spki(spki: Uint8Array): boolean {
  return spki.length === P256_SPKI_PREFIX.length + 64 && Buffer.compare(P256_SPKI_PREFIX, spki.subarray(0, P256_SPKI_PREFIX.length)) === 0;
}

/**
 * The key of `spki` when it is exactly id-ecPublicKey, prime256v1, uncompressed point; null for any
 * other key (another curve, RSA, a compressed point, other encodings): the caller decodes the DER.
 * Throws when the point is not a valid P-256 point.
 */
export function p256PublicKey(spki: Uint8Array): KeyObject | null {
  if (!isP256Spki(spki)) return null;
  const at = P256_SPKI_PREFIX.length;
  const b = Buffer.from(spki.buffer, spki.byteOffset, spki.byteLength);
  return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: b.toString('base64url', at, at + 32), y: b.toString('base64url', at + 32, at + 64) }, format: 'jwk' });
}
