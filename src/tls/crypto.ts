/**
 * The engine's only door to cryptography: hashes, HMAC, HKDF (RFC 5869 / RFC 8446 §7.1),
 * AEAD seal/open and ephemeral key exchange, all backed by node:crypto. No primitive is written here.
 * Also the suite table and group table (new suites/groups slot in as rows).
 * imports node:crypto and bytes/ only.
 */
import {
  createCipheriv,
  createDecipheriv,
  createECDH,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  verify as nodeVerify,
  type KeyObject,
} from 'node:crypto';
import { SetlsError, concat, fromHex } from '../bytes/index.js';
import { CipherSuite, NamedGroup } from './constants.js';

export type HashName = 'sha256' | 'sha384';
export type AeadName = 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305' | 'aes-128-ccm';

/** One row of the cipher suite table. */
export interface SuiteParams {
  readonly id: number;
  readonly hash: HashName;
  readonly hashLength: number;
  readonly aead: AeadName;
  readonly keyLength: number;
  readonly ivLength: number;
  readonly tagLength: number;
  /**
   * Hard limit: records one key may protect (RFC 8446 §5.5). AES-GCM: 2^24.5 full-size records keep
   * the confidentiality margin at ~2^-57; we cap at 2^24. AES-CCM / CCM_8 have the same confidentiality
   * bound (draft-irtf-cfrg-aead-limits) and get the same cap. ChaCha20-Poly1305 has no practical limit
   * before the 64-bit sequence number wraps: capped at 2^53-1, the largest sequence JS numbers hold
   * exactly (so 2^64-1 is never reached either).
   */
  readonly maxRecordsPerKey: number;
}

/** Default number of records after which the engine rotates its write key with a KeyUpdate. */
export const DEFAULT_KEY_UPDATE_AFTER_RECORDS = 2 ** 23;

function suite(
  id: number,
  hashName: HashName,
  aead: AeadName,
  keyLength: number,
  tagLength: number,
  maxRecordsPerKey: number,
): SuiteParams {
  return { id, hash: hashName, hashLength: hashName === 'sha256' ? 32 : 48, aead, keyLength, ivLength: 12, tagLength, maxRecordsPerKey };
}

/**
 * Suites this engine implements, keyed by code point, in the default server preference order.
 * TLS_AES_128_CCM_8_SHA256 is implemented but not in DEFAULT_CIPHER_SUITES (8-byte tag, an IoT suite):
 * it is negotiated only when `config.cipherSuites` lists it.
 */
export const SUITES: ReadonlyMap<number, SuiteParams> = new Map([
  [CipherSuite.TLS_AES_128_GCM_SHA256, suite(CipherSuite.TLS_AES_128_GCM_SHA256, 'sha256', 'aes-128-gcm', 16, 16, 2 ** 24)],
  [CipherSuite.TLS_AES_256_GCM_SHA384, suite(CipherSuite.TLS_AES_256_GCM_SHA384, 'sha384', 'aes-256-gcm', 32, 16, 2 ** 24)],
  [
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
    suite(CipherSuite.TLS_CHACHA20_POLY1305_SHA256, 'sha256', 'chacha20-poly1305', 32, 16, Number.MAX_SAFE_INTEGER),
  ],
  [CipherSuite.TLS_AES_128_CCM_SHA256, suite(CipherSuite.TLS_AES_128_CCM_SHA256, 'sha256', 'aes-128-ccm', 16, 16, 2 ** 24)],
  [CipherSuite.TLS_AES_128_CCM_8_SHA256, suite(CipherSuite.TLS_AES_128_CCM_8_SHA256, 'sha256', 'aes-128-ccm', 16, 8, 2 ** 24)],
]);

/** Server preference when `config.cipherSuites` is absent (CCM_8 deliberately left out). */
export const DEFAULT_CIPHER_SUITES: readonly number[] = [
  CipherSuite.TLS_AES_128_GCM_SHA256,
  CipherSuite.TLS_AES_256_GCM_SHA384,
  CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
  CipherSuite.TLS_AES_128_CCM_SHA256,
];

/** A digest Buffer as a plain Uint8Array over the same memory (digests own their ArrayBuffer: no copy, nothing left unwiped). */
function digestBytes(d: Buffer): Uint8Array {
  return new Uint8Array(d.buffer, d.byteOffset, d.length);
}

export function hash(alg: HashName, data: Uint8Array): Uint8Array {
  return digestBytes(createHash(alg).update(data).digest());
}

const EMPTY_HASHES: Readonly<Record<HashName, Uint8Array>> = {
  sha256: hash('sha256', new Uint8Array(0)),
  sha384: hash('sha384', new Uint8Array(0)),
};

/** Hash("") of `alg` (public, shared: callers must not modify it). */
export function emptyHash(alg: HashName): Uint8Array {
  return EMPTY_HASHES[alg];
}

export function hmac(alg: HashName, key: Uint8Array, data: Uint8Array): Uint8Array {
  return digestBytes(createHmac(alg, key).update(data).digest());
}

/** HKDF-Extract(salt, IKM) = HMAC-Hash(salt, IKM) (RFC 5869 §2.2). Returns a secret. */
export function hkdfExtract(alg: HashName, salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return hmac(alg, salt, ikm);
}

const hashLength = (alg: HashName): number => (alg === 'sha256' ? 32 : 48);

/**
 * T(1) = HMAC(PRK, info ‖ 0x01) cut to `length` ≤ Hash.length: HKDF-Expand when one block is enough.
 * `infoAndOne` is info with the counter byte 0x01 already appended.
 */
function expandOneBlock(alg: HashName, prk: Uint8Array, infoAndOne: Uint8Array, length: number): Uint8Array {
  const t = digestBytes(createHmac(alg, prk).update(infoAndOne).digest());
  if (length === t.length) return t;
  const out = t.slice(0, length);
  t.fill(0);
  return out;
}

const ONE = Uint8Array.of(1);

/** HKDF-Expand(PRK, info, L) (RFC 5869 §2.3). Returns a secret. */
export function hkdfExpand(alg: HashName, prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const hashLen = hashLength(alg);
  if (length > 255 * hashLen) throw new SetlsError('ERR_TLS_HKDF_LENGTH', `HKDF output ${length} too long`);
  if (length >= 0 && length <= hashLen) return expandOneBlock(alg, prk, concat(info, ONE), length);
  const out = new Uint8Array(length);
  let t: Uint8Array = new Uint8Array(0);
  let o = 0;
  for (let i = 1; o < length; i++) {
    const next = digestBytes(createHmac(alg, prk).update(t).update(info).update(Uint8Array.of(i)).digest());
    t.fill(0);
    t = next;
    const n = Math.min(t.length, length - o);
    out.set(t.subarray(0, n), o);
    o += n;
  }
  t.fill(0);
  return out;
}

const UTF8 = new TextEncoder();
/** Encoded "tls13 " + label, for the labels in use (public; bounded). */
const LABELS = new Map<string, Uint8Array>();
const MAX_CACHED_LABELS = 64;

function fullLabel(label: string): Uint8Array {
  let b = LABELS.get(label);
  if (b === undefined) {
    b = UTF8.encode('tls13 ' + label);
    if (LABELS.size < MAX_CACHED_LABELS) LABELS.set(label, b);
  }
  return b;
}

/**
 *   struct {
 *       uint16 length = Length;
 *       opaque label<7..255> = "tls13 " + Label;
 *       opaque context<0..255> = Context;
 *   } HkdfLabel;
 * HKDF-Expand-Label(Secret, Label, Context, Length) = HKDF-Expand(Secret, HkdfLabel, Length)
 */
export function hkdfExpandLabel(
  alg: HashName,
  secret: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): Uint8Array {
  const l = fullLabel(label);
  if (l.length > 0xff) throw new RangeError(`vector of ${l.length} bytes exceeds 1-byte length prefix`);
  if (context.length > 0xff) throw new RangeError(`vector of ${context.length} bytes exceeds 1-byte length prefix`);
  // HkdfLabel ‖ 0x01: the counter byte of the first HKDF-Expand block rides along
  const n = 2 + 1 + l.length + 1 + context.length;
  const info = new Uint8Array(n + 1);
  info[0] = (length >>> 8) & 0xff;
  info[1] = length & 0xff;
  info[2] = l.length;
  info.set(l, 3);
  info[3 + l.length] = context.length;
  info.set(context, 4 + l.length);
  info[n] = 1;
  if (length >= 0 && length <= hashLength(alg)) return expandOneBlock(alg, secret, info, length);
  return hkdfExpand(alg, secret, info.subarray(0, n), length);
}

/** The slice of node:crypto's CipherGCM / CipherCCM / CipherChaCha20Poly1305 (and Decipher*) we use. */
interface AeadCipher {
  setAAD(aad: Uint8Array, options?: { plaintextLength: number }): unknown;
  update(data: Uint8Array): Buffer;
  final(): Buffer;
  getAuthTag(): Buffer;
  setAuthTag(tag: Uint8Array): unknown;
}

function aeadCipher(decrypt: boolean, aead: AeadName, key: Uint8Array, nonce: Uint8Array, tagLength: number): AeadCipher {
  const options = { authTagLength: tagLength };
  // One overload per mode family in @types/node; the union name needs this single cast.
  const make = (decrypt ? createDecipheriv : createCipheriv) as unknown as (
    a: string,
    k: Uint8Array,
    n: Uint8Array,
    o: { authTagLength: number },
  ) => AeadCipher;
  return make(aead, key, nonce, options);
}

const EMPTY_WITH_MEMORY = new Uint8Array(1).subarray(0, 0);

/**
 * AEAD encryption: returns ciphertext || tag. AES-CCM needs the plaintext length with the AAD and a
 * single update() (node:crypto rules); all modes take the tag length (16, or 8 for CCM_8).
 */
export function aeadSeal(
  aead: AeadName,
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
  tagLength = 16,
): Uint8Array {
  const c = aeadCipher(false, aead, key, nonce, tagLength);
  if (aead === 'aes-128-ccm') c.setAAD(aad, { plaintextLength: plaintext.length });
  else c.setAAD(aad);
  // An empty view of a zero-length ArrayBuffer reaches OpenSSL as a NULL pointer, which CCM takes
  // for "no data call" (final() then fails with "tag not set"): give it an empty view of real memory.
  const body = c.update(plaintext.length === 0 ? EMPTY_WITH_MEMORY : plaintext);
  const fin = c.final();
  return concat(body, fin, c.getAuthTag());
}

/**
 * AEAD encryption of `pieces` followed by `last`, as if concatenated, without copying them together:
 * appends one ciphertext chunk per non-empty piece to `out`, then one chunk holding the rest of the
 * ciphertext and the tag. AES-GCM and ChaCha20-Poly1305 only (they take several update() calls;
 * AES-CCM takes one: use aeadSeal). `last` may be empty (TLS 1.2: no inner content type). On an
 * internal length mismatch nothing is left appended and ERR_TLS_INTERNAL is thrown.
 */
export function aeadSealPieces(
  aead: AeadName,
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  pieces: readonly Uint8Array[],
  last: Uint8Array,
  tagLength: number,
  out: Uint8Array[],
): void {
  if (aead === 'aes-128-ccm') throw new SetlsError('ERR_TLS_INTERNAL', 'AES-CCM takes its plaintext in one piece (aeadSeal)');
  const c = aeadCipher(false, aead, key, nonce, tagLength);
  c.setAAD(aad);
  const first = out.length;
  let n = 0;
  let expected = last.length;
  for (const p of pieces) {
    expected += p.length;
    const b = c.update(p);
    n += b.length;
    if (b.length) out.push(b);
  }
  const t = c.update(last);
  const f = c.final();
  const tag = c.getAuthTag();
  // a small pooled Buffer (nothing secret: ciphertext and tag), written to the socket as is
  const tail = Buffer.allocUnsafe(t.length + f.length + tag.length);
  tail.set(t);
  tail.set(f, t.length);
  tail.set(tag, t.length + f.length);
  n += t.length + f.length;
  if (n !== expected || tag.length !== tagLength) {
    out.length = first;
    throw new SetlsError('ERR_TLS_INTERNAL', 'AEAD output length mismatch');
  }
  out.push(tail);
}

/** AEAD decryption of ciphertext || tag; returns undefined when authentication fails. */
export function aeadOpen(
  aead: AeadName,
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  sealed: Uint8Array,
  tagLength = 16,
): Uint8Array | undefined {
  if (sealed.length < tagLength || nonce.length !== 12) return undefined;
  try {
    const d = aeadCipher(true, aead, key, nonce, tagLength);
    const ct = sealed.subarray(0, sealed.length - tagLength);
    d.setAuthTag(sealed.subarray(sealed.length - tagLength));
    if (aead === 'aes-128-ccm') d.setAAD(aad, { plaintextLength: ct.length });
    else d.setAAD(aad);
    const body = d.update(ct);
    const fin = d.final(); // throws when the tag does not verify
    return fin.length ? concat(body, fin) : new Uint8Array(body);
  } catch {
    return undefined;
  }
}

/** An ephemeral key pair for one handshake. `deriveShared` throws ERR_TLS_BAD_KEY_SHARE on bad peer keys. */
export interface EphemeralKey {
  readonly group: number;
  readonly publicKey: Uint8Array;
  deriveShared(peerPublic: Uint8Array): Uint8Array;
}

/** One row of the group table. */
export interface GroupParams {
  readonly id: number;
  /** Exact length of a valid key_exchange value. */
  readonly keyExchangeLength: number;
  /** Makes a key pair; `privateKey` (raw) is the test override from TlsEntropy.ephemeralPrivateKey. */
  generate(privateKey?: Uint8Array): EphemeralKey;
}

const X25519_PKCS8_PREFIX = fromHex('302e020100300506032b656e04220420');

/**
 * Node 20 (seen on 20.20.2 with OpenSSL 3.0) can deadlock in `keyObject.export({ format: 'jwk' })` on
 * a key made by `generateKeyPairSync`: the export holds a mutex of the key while it allocates the
 * JWK's strings; a garbage collection there that collects the key generation job which made this key
 * runs the job's destructor, which takes the same mutex, and the thread waits on itself forever. A
 * loop of x25519 key shares hung within 50 000 handshakes' worth of keys. So the generation itself
 * exports the public key (the job is still alive then); DER exports, signing and key agreement do not
 * hold that mutex across allocations (150 000 keys each, no hang).
 */
export const JWK_PUBLIC = { publicKeyEncoding: { format: 'jwk' } } as const;

/** The JWK that `generateKeyPairSync(type, { ...JWK_PUBLIC })` returned as its public key. */
export function generatedPublicJwk(publicKey: unknown): JsonWebKey {
  if (typeof publicKey !== 'object' || publicKey === null || !('kty' in publicKey)) throw new SetlsError('ERR_TLS_INTERNAL', 'key generation returned no JWK');
  return publicKey as JsonWebKey;
}

/**
 * X25519 (RFC 7748). Keys cross node:crypto as JWK (`x` = raw 32 bytes, base64url): OpenSSL 3's DER
 * encoder/decoder path costs ~150 µs per key, JWK ~3–16 µs, which is most of the handshake's
 * key-exchange time. The DER prefix is kept for the deterministic (test) private key only.
 */
function x25519(privateRaw?: Uint8Array): EphemeralKey {
  let priv: KeyObject;
  let x: unknown;
  if (privateRaw) {
    if (privateRaw.length !== 32) throw new SetlsError('ERR_TLS_INTERNAL', 'x25519 private key must be 32 bytes');
    const der = concat(X25519_PKCS8_PREFIX, privateRaw);
    priv = createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
    der.fill(0); // held the private key
    x = createPublicKey(priv).export({ format: 'jwk' }).x; // imported, not generated: no job to collect
  } else {
    // The public key is exported by the key generation itself: exporting it afterwards from the
    // KeyObject can deadlock the process (see JWK_PUBLIC).
    const pair = generateKeyPairSync('x25519', JWK_PUBLIC);
    priv = pair.privateKey;
    x = generatedPublicJwk(pair.publicKey).x;
  }
  if (typeof x !== 'string') throw new SetlsError('ERR_TLS_INTERNAL', 'x25519 public key export failed');
  const publicKey = new Uint8Array(Buffer.from(x, 'base64url'));
  if (publicKey.length !== 32) throw new SetlsError('ERR_TLS_INTERNAL', 'x25519 public key export failed');
  return {
    group: NamedGroup.x25519,
    publicKey,
    deriveShared(peerPublic: Uint8Array): Uint8Array {
      if (peerPublic.length !== 32) throw new SetlsError('ERR_TLS_BAD_KEY_SHARE', 'x25519 key share must be 32 bytes');
      let shared: Uint8Array;
      try {
        const jwk = { kty: 'OKP', crv: 'X25519', x: Buffer.from(peerPublic.buffer, peerPublic.byteOffset, 32).toString('base64url') };
        const pub = createPublicKey({ key: jwk, format: 'jwk' });
        shared = new Uint8Array(diffieHellman({ privateKey: priv, publicKey: pub }));
      } catch (e) {
        throw new SetlsError('ERR_TLS_BAD_KEY_SHARE', 'x25519 key agreement failed', { cause: e });
      }
      // RFC 8446 §7.4.2: an all-zero shared secret must be rejected.
      let acc = 0;
      for (const b of shared) acc |= b;
      if (acc === 0) throw new SetlsError('ERR_TLS_BAD_KEY_SHARE', 'x25519 shared secret is all zero');
      return shared;
    },
  };
}

/** Uncompressed SEC1 point for P-256: 0x04 || X(32) || Y(32) (RFC 8446 §4.2.8.2). */
const P256_POINT_LENGTH = 65;

/**
 * secp256r1 ECDHE (RFC 8446 §4.2.8.2, §7.4.2). The peer's key_exchange must be an uncompressed point
 * on the curve: wrong length, a format byte other than 0x04 (compressed/hybrid/infinity) or a point
 * not on P-256 all throw ERR_TLS_BAD_KEY_SHARE (→ illegal_parameter). node:crypto's ECDH checks the
 * point is on the curve (EC_POINT_oct2point). The shared secret is the X coordinate (32 bytes).
 */
function secp256r1(privateRaw?: Uint8Array): EphemeralKey {
  const ecdh = createECDH('prime256v1');
  if (privateRaw) {
    if (privateRaw.length !== 32) throw new SetlsError('ERR_TLS_INTERNAL', 'secp256r1 private key must be 32 bytes');
    ecdh.setPrivateKey(privateRaw);
  } else {
    ecdh.generateKeys();
  }
  const publicKey = new Uint8Array(ecdh.getPublicKey());
  return {
    group: NamedGroup.secp256r1,
    publicKey,
    deriveShared(peerPublic: Uint8Array): Uint8Array {
      if (peerPublic.length !== P256_POINT_LENGTH) {
        throw new SetlsError('ERR_TLS_BAD_KEY_SHARE', `secp256r1 key share of ${peerPublic.length} bytes (65 expected)`);
      }
      if (peerPublic[0] !== 0x04) throw new SetlsError('ERR_TLS_BAD_KEY_SHARE', 'secp256r1 key share is not an uncompressed point');
      try {
        return new Uint8Array(ecdh.computeSecret(peerPublic));
      } catch (e) {
        throw new SetlsError('ERR_TLS_BAD_KEY_SHARE', 'secp256r1 key share is not a point on the curve', { cause: e });
      }
    },
  };
}

/** Server preference when `config.groups` is absent. */
export const DEFAULT_GROUPS: readonly number[] = [NamedGroup.x25519, NamedGroup.secp256r1];

/** Groups this engine implements (secp384r1 etc. slot in here as rows). */
export const GROUPS: ReadonlyMap<number, GroupParams> = new Map([
  [NamedGroup.x25519, { id: NamedGroup.x25519, keyExchangeLength: 32, generate: x25519 }],
  [NamedGroup.secp256r1, { id: NamedGroup.secp256r1, keyExchangeLength: P256_POINT_LENGTH, generate: secp256r1 }],
]);

/**
 * Signature verification (not used by the server handshake itself; kept for client-certificate
 * support later and tested with Wycheproof). ECDSA signatures are DER-encoded, as in TLS.
 */
export function verifySignature(scheme: number, spkiDer: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    const key = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
    switch (scheme) {
      case 0x0403:
        return nodeVerify('sha256', data, { key, dsaEncoding: 'der' }, signature);
      case 0x0804:
        return nodeVerify('sha256', data, { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 }, signature);
      case 0x0805:
        return nodeVerify('sha384', data, { key, padding: 6, saltLength: 48 }, signature);
      case 0x0806:
        return nodeVerify('sha512', data, { key, padding: 6, saltLength: 64 }, signature);
      default:
        return false;
    }
  } catch {
    return false;
  }
}
