/**
 * The engine's only door to cryptography: hashes, HMAC, HKDF (RFC 5869 / RFC 8446 §7.1),
 * AEAD seal/open and ephemeral key exchange, all backed by node:crypto. No primitive is written here.
 * Also the suite table and group table (new suites/groups slot in as rows).
 * imports node:crypto and bytes/ only.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  verify as nodeVerify,
  type KeyObject,
} from 'node:crypto';
import { ByteWriter, SetlsError, concat, fromHex } from '../bytes/index.js';
import { CipherSuite, NamedGroup } from './constants.js';

export type HashName = 'sha256' | 'sha384';
export type AeadName = 'aes-128-gcm' | 'aes-256-gcm';

/** One row of the cipher suite table. */
export interface SuiteParams {
  readonly id: number;
  readonly hash: HashName;
  readonly hashLength: number;
  readonly aead: AeadName;
  readonly keyLength: number;
  readonly ivLength: number;
  readonly tagLength: number;
  /** Records one key may protect before a KeyUpdate is needed (RFC 8446 §5.5; AES-GCM: 2^24.5). */
  readonly maxRecordsPerKey: number;
}

/** Suites this engine implements, keyed by code point. TLS_AES_256_GCM_SHA384 etc. slot in here. */
export const SUITES: ReadonlyMap<number, SuiteParams> = new Map([
  [
    CipherSuite.TLS_AES_128_GCM_SHA256,
    {
      id: CipherSuite.TLS_AES_128_GCM_SHA256,
      hash: 'sha256',
      hashLength: 32,
      aead: 'aes-128-gcm',
      keyLength: 16,
      ivLength: 12,
      tagLength: 16,
      maxRecordsPerKey: 2 ** 24,
    },
  ],
]);

export function hash(alg: HashName, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash(alg).update(data).digest());
}

export function hmac(alg: HashName, key: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac(alg, key).update(data).digest());
}

/** HKDF-Extract(salt, IKM) = HMAC-Hash(salt, IKM) (RFC 5869 §2.2). Returns a secret. */
export function hkdfExtract(alg: HashName, salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return hmac(alg, salt, ikm);
}

/** HKDF-Expand(PRK, info, L) (RFC 5869 §2.3). Returns a secret. */
export function hkdfExpand(alg: HashName, prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const hashLen = alg === 'sha256' ? 32 : 48;
  if (length > 255 * hashLen) throw new SetlsError('ERR_TLS_HKDF_LENGTH', `HKDF output ${length} too long`);
  const out = new Uint8Array(length);
  let t: Uint8Array = new Uint8Array(0);
  let o = 0;
  for (let i = 1; o < length; i++) {
    const next = new Uint8Array(createHmac(alg, prk).update(t).update(info).update(Uint8Array.of(i)).digest());
    t.fill(0);
    t = next;
    const n = Math.min(t.length, length - o);
    out.set(t.subarray(0, n), o);
    o += n;
  }
  t.fill(0);
  return out;
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
  const info = new ByteWriter(64)
    .u16(length)
    .vec(1, new TextEncoder().encode('tls13 ' + label))
    .vec(1, context)
    .finish();
  return hkdfExpand(alg, secret, info, length);
}

/** AEAD encryption: returns ciphertext || tag. */
export function aeadSeal(
  aead: AeadName,
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
): Uint8Array {
  const c = createCipheriv(aead, key, nonce, { authTagLength: 16 });
  c.setAAD(aad);
  const body = c.update(plaintext);
  const fin = c.final();
  return concat(body, fin, c.getAuthTag());
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
    const d = createDecipheriv(aead, key, nonce, { authTagLength: tagLength });
    d.setAAD(aad);
    d.setAuthTag(sealed.subarray(sealed.length - tagLength));
    const body = d.update(sealed.subarray(0, sealed.length - tagLength));
    const fin = d.final();
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
const X25519_SPKI_PREFIX = fromHex('302a300506032b656e032100');

function x25519(privateRaw?: Uint8Array): EphemeralKey {
  let priv: KeyObject;
  if (privateRaw) {
    if (privateRaw.length !== 32) throw new SetlsError('ERR_TLS_INTERNAL', 'x25519 private key must be 32 bytes');
    const der = concat(X25519_PKCS8_PREFIX, privateRaw);
    priv = createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
    der.fill(0); // held the private key
  } else {
    priv = generateKeyPairSync('x25519').privateKey;
  }
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  const publicKey = new Uint8Array(spki.subarray(spki.length - 32));
  return {
    group: NamedGroup.x25519,
    publicKey,
    deriveShared(peerPublic: Uint8Array): Uint8Array {
      if (peerPublic.length !== 32) throw new SetlsError('ERR_TLS_BAD_KEY_SHARE', 'x25519 key share must be 32 bytes');
      let shared: Uint8Array;
      try {
        const pub = createPublicKey({ key: Buffer.from(concat(X25519_SPKI_PREFIX, peerPublic)), format: 'der', type: 'spki' });
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

/** Groups this engine implements. secp256r1 etc. slot in here. */
export const GROUPS: ReadonlyMap<number, GroupParams> = new Map([
  [NamedGroup.x25519, { id: NamedGroup.x25519, keyExchangeLength: 32, generate: x25519 }],
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
      default:
        return false;
    }
  } catch {
    return false;
  }
}
