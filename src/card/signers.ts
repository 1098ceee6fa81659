/**
 * Signatures whose randomness comes from the card's RNG (deterministic card mode, used when the card
 * was given `random`): ECDSA P-256 with the nonce k drawn from it, and RSASSA-PSS (RFC 8017 §8.1,
 * EMSA-PSS §9.1.1) with the salt drawn from it. Also the P-256 scalar for ephemeral ECDHE keys.
 *
 * The elliptic-curve point multiplications stay in OpenSSL (k·G through node:crypto ECDH) and the
 * RSA private operation too (privateEncrypt without padding, with OpenSSL's blinding); only the
 * final ECDSA arithmetic s = k⁻¹(e + r·d) mod n uses BigInt, which is not constant-time — test mode
 * only. The default card mode signs with node:crypto's own RNG (identity.ts).
 *
 * Secrets: the private scalar d (a BigInt and a JWK string: not wipeable in JS), k, the EM block.
 * imports bytes/ and node built-ins.
 */
import { constants as cryptoConstants, createECDH, createHash, privateEncrypt, type KeyObject } from 'node:crypto';
import { SetlsError, concat, wipe } from '../bytes/index.js';

export type RandomSource = (n: number) => Uint8Array;

/** Order of the P-256 base point. */
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
/** Draws before giving up (each draw fails with probability < 2^-32). */
const MAX_DRAWS = 64;

const toBig = (b: Uint8Array): bigint => (b.length === 0 ? 0n : BigInt('0x' + Buffer.from(b).toString('hex')));

function toBytes(v: bigint, len: number): Uint8Array {
  const hex = v.toString(16).padStart(len * 2, '0');
  if (hex.length > len * 2) throw new SetlsError('ERR_CARD_INTERNAL', 'integer too large');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

function modPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  b %= m;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return r;
}

/**
 * A P-256 private scalar in [1, n-1] from `random`: 32 bytes, redrawn while out of range
 * (rejection sampling, no modular bias). Returned as 32 big-endian bytes (a secret: wipe it).
 */
export function p256Scalar(random: RandomSource): Uint8Array {
  for (let i = 0; i < MAX_DRAWS; i++) {
    const b = random(32);
    const v = toBig(b);
    if (v >= 1n && v < P256_N) return b;
    wipe(b);
  }
  throw new SetlsError('ERR_CARD_RANDOM', 'the card RNG gave no valid P-256 scalar');
}

function derInt(v: bigint): Uint8Array {
  let b = toBytes(v, 32);
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  b = b.subarray(i);
  if (b[0]! & 0x80) b = concat(Uint8Array.of(0), b);
  return concat(Uint8Array.of(0x02, b.length), b);
}

/** ECDSA P-256 / SHA-256 (DER signature) with k from `random`. */
export function ecdsaP256Sign(key: KeyObject, data: Uint8Array, random: RandomSource): Uint8Array {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.d !== 'string') throw new SetlsError('ERR_CARD_INTERNAL', 'not a P-256 private key');
  const d = toBig(new Uint8Array(Buffer.from(jwk.d, 'base64url')));
  const e = toBig(new Uint8Array(createHash('sha256').update(data).digest())) % P256_N;
  for (let i = 0; i < MAX_DRAWS; i++) {
    const kb = p256Scalar(random);
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(kb);
    const point = ecdh.getPublicKey(); // 04 ‖ X ‖ Y = k·G
    const k = toBig(kb);
    wipe(kb);
    const r = toBig(point.subarray(1, 33)) % P256_N;
    if (r === 0n) continue;
    const s = (modPow(k, P256_N - 2n, P256_N) * ((e + r * d) % P256_N)) % P256_N;
    if (s === 0n) continue;
    const body = concat(derInt(r), derInt(s));
    return concat(Uint8Array.of(0x30, body.length), body);
  }
  throw new SetlsError('ERR_CARD_RANDOM', 'ECDSA signing failed: no usable nonce');
}

export type PssHash = 'sha256' | 'sha384' | 'sha512';
const HASH_LEN: Record<PssHash, number> = { sha256: 32, sha384: 48, sha512: 64 };

function mgf1(hash: PssHash, seed: Uint8Array, len: number): Uint8Array {
  const out = new Uint8Array(len);
  let o = 0;
  for (let c = 0; o < len; c++) {
    const block = createHash(hash)
      .update(seed)
      .update(Uint8Array.of(c >>> 24, (c >>> 16) & 0xff, (c >>> 8) & 0xff, c & 0xff))
      .digest();
    out.set(block.subarray(0, Math.min(block.length, len - o)), o);
    o += block.length;
  }
  return out;
}

/**
 * RSASSA-PSS (MGF1 with the same hash, salt length = hash length, trailer BC) with the salt from
 * `random`; the RSA private operation is OpenSSL's (no padding: EM is the whole input).
 */
export function rsaPssSign(key: KeyObject, hash: PssHash, data: Uint8Array, random: RandomSource): Uint8Array {
  const modBits = key.asymmetricKeyDetails?.modulusLength;
  if (key.asymmetricKeyType !== 'rsa' || !modBits) throw new SetlsError('ERR_CARD_INTERNAL', 'not an RSA private key');
  const hLen = HASH_LEN[hash];
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const kLen = Math.ceil(modBits / 8);
  if (emLen < 2 * hLen + 2) throw new SetlsError('ERR_CARD_INTERNAL', 'RSA key too small for PSS');
  const mHash = createHash(hash).update(data).digest();
  const salt = random(hLen);
  const h = new Uint8Array(createHash(hash).update(new Uint8Array(8)).update(mHash).update(salt).digest());
  const db = new Uint8Array(emLen - hLen - 1);
  db[db.length - hLen - 1] = 0x01;
  db.set(salt, db.length - hLen);
  const mask = mgf1(hash, h, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  db[0]! &= 0xff >>> (8 * emLen - emBits);
  const em = new Uint8Array(kLen); // EM left-padded to the modulus length (emLen < kLen when modBits ≡ 1 mod 8)
  em.set(db, kLen - emLen);
  em.set(h, kLen - emLen + db.length);
  em[kLen - 1] = 0xbc;
  try {
    return new Uint8Array(privateEncrypt({ key, padding: cryptoConstants.RSA_NO_PADDING }, em));
  } finally {
    wipe(em, db, mask, salt);
  }
}
