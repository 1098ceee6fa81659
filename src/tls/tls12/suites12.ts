/**
 * The TLS 1.2 cipher suite table: AEAD suites only (no CBC, no RSA key transport, no static DH).
 *   ECDHE_ECDSA / ECDHE_RSA with AES-GCM (RFC 5289), ChaCha20-Poly1305 (RFC 7905), AES-CCM_8 (RFC 7251);
 *   plain PSK with AES-128-CCM_8 (RFC 6655) and AES-128-GCM (RFC 5487).
 * GCM/CCM records carry an explicit 8-byte nonce after a 4-byte implicit salt (RFC 5288 §3, RFC 6655 §3);
 * ChaCha20-Poly1305 uses a 12-byte IV xor the sequence number (RFC 7905 §2).
 * imports tls/ siblings only.
 */
import type { AeadName, HashName } from '../crypto.js';

export type KeyExchange12 = 'ecdhe_ecdsa' | 'ecdhe_rsa' | 'psk';

export interface Suite12 {
  readonly id: number;
  /** OpenSSL name (documentation and tests). */
  readonly name: string;
  readonly kx: KeyExchange12;
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

function row(id: number, name: string, kx: KeyExchange12, hash: HashName, aead: AeadName, keyLength: number, tagLength = 16): Suite12 {
  const chacha = aead === 'chacha20-poly1305';
  return {
    id,
    name,
    kx,
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

const C = CipherSuite12;

export const SUITES12: ReadonlyMap<number, Suite12> = new Map(
  [
    row(C.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 'ECDHE-ECDSA-AES128-GCM-SHA256', 'ecdhe_ecdsa', 'sha256', 'aes-128-gcm', 16),
    row(C.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ecdhe_ecdsa', 'sha384', 'aes-256-gcm', 32),
    row(C.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ecdhe_ecdsa', 'sha256', 'chacha20-poly1305', 32),
    row(C.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 'ECDHE-RSA-AES128-GCM-SHA256', 'ecdhe_rsa', 'sha256', 'aes-128-gcm', 16),
    row(C.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, 'ECDHE-RSA-AES256-GCM-SHA384', 'ecdhe_rsa', 'sha384', 'aes-256-gcm', 32),
    row(C.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, 'ECDHE-RSA-CHACHA20-POLY1305', 'ecdhe_rsa', 'sha256', 'chacha20-poly1305', 32),
    row(C.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, 'ECDHE-ECDSA-AES128-CCM8', 'ecdhe_ecdsa', 'sha256', 'aes-128-ccm', 16, 8),
    row(C.TLS_PSK_WITH_AES_128_CCM_8, 'PSK-AES128-CCM8', 'psk', 'sha256', 'aes-128-ccm', 16, 8),
    row(C.TLS_PSK_WITH_AES_128_GCM_SHA256, 'PSK-AES128-GCM-SHA256', 'psk', 'sha256', 'aes-128-gcm', 16),
  ].map((s) => [s.id, s]),
);

/** Server preference when `config.cipherSuites12` is absent (CCM_8 and PSK suites only when listed). */
export const DEFAULT_CIPHER_SUITES_12: readonly number[] = [
  C.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
  C.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
  C.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
  C.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
  C.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
  C.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/** TLS_EMPTY_RENEGOTIATION_INFO_SCSV (RFC 5746 §3.3). */
export const EMPTY_RENEGOTIATION_INFO_SCSV = 0x00ff;
