/**
 * The record-protection facts of the TLS 1.2 / DTLS 1.2 cipher suites (AEAD only): suite id → AEAD,
 * key length, implicit IV length, explicit nonce length, tag length, PRF hash, records per key.
 * One table for the card's engine (tls12/suites12.ts adds key exchange and name) and for the
 * TLS-Tandem host record layer (host/host-record.ts), which may import tls/record but not tls12/.
 *   AES-GCM (RFC 5288, RFC 5289, RFC 5487), ChaCha20-Poly1305 (RFC 7905), AES-CCM_8 (RFC 6655, RFC 7251).
 * GCM/CCM records carry an explicit 8-byte nonce after a 4-byte implicit salt (RFC 5288 §3, RFC 6655 §3);
 * ChaCha20-Poly1305 uses a 12-byte IV xor the sequence number (RFC 7905 §2).
 * Data only. imports tls/ siblings only (types).
 */
import type { AeadName, HashName } from '../crypto.js';

export const CipherSuite12 = {
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 0xc02b,
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 0xc02c,
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 0xcca9,
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 0xc02f,
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 0xc030,
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 0xcca8,
  TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8: 0xc0ae,
  TLS_PSK_WITH_AES_128_CCM_8: 0xc0a8,
  TLS_PSK_WITH_AES_128_GCM_SHA256: 0x00a8,
} as const;

export interface AeadSuite12 {
  readonly id: number;
  /** PRF / transcript hash. */
  readonly hash: HashName;
  readonly hashLength: number;
  readonly aead: AeadName;
  readonly keyLength: number;
  /** Implicit part of the nonce from the key block: 4 (GCM/CCM) or 12 (ChaCha20). */
  readonly fixedIvLength: number;
  /** Explicit nonce bytes in each record: 8 (GCM/CCM) or 0 (ChaCha20). */
  readonly explicitNonceLength: number;
  readonly tagLength: number;
  /** Records one key may protect (same bounds as the TLS 1.3 table in crypto.ts). */
  readonly maxRecordsPerKey: number;
}

const GCM_LIMIT = 2 ** 24;

function row(id: number, hash: HashName, aead: AeadName, keyLength: number, tagLength = 16): AeadSuite12 {
  const chacha = aead === 'chacha20-poly1305';
  return {
    id,
    hash,
    hashLength: hash === 'sha256' ? 32 : 48,
    aead,
    keyLength,
    fixedIvLength: chacha ? 12 : 4,
    explicitNonceLength: chacha ? 0 : 8,
    tagLength,
    maxRecordsPerKey: chacha ? Number.MAX_SAFE_INTEGER : GCM_LIMIT,
  };
}

const C = CipherSuite12;

export const AEAD_SUITES12: ReadonlyMap<number, AeadSuite12> = new Map(
  [
    row(C.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 'sha256', 'aes-128-gcm', 16),
    row(C.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, 'sha384', 'aes-256-gcm', 32),
    row(C.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, 'sha256', 'chacha20-poly1305', 32),
    row(C.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 'sha256', 'aes-128-gcm', 16),
    row(C.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, 'sha384', 'aes-256-gcm', 32),
    row(C.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, 'sha256', 'chacha20-poly1305', 32),
    row(C.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, 'sha256', 'aes-128-ccm', 16, 8),
    row(C.TLS_PSK_WITH_AES_128_CCM_8, 'sha256', 'aes-128-ccm', 16, 8),
    row(C.TLS_PSK_WITH_AES_128_GCM_SHA256, 'sha256', 'aes-128-gcm', 16),
  ].map((s) => [s.id, s]),
);
