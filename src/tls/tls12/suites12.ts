/**
 * The TLS 1.2 cipher suite table: AEAD suites only (no CBC, no RSA key transport, no static DH).
 *   ECDHE_ECDSA / ECDHE_RSA with AES-GCM (RFC 5289), ChaCha20-Poly1305 (RFC 7905), AES-CCM_8 (RFC 7251);
 *   plain PSK with AES-128-CCM_8 (RFC 6655) and AES-128-GCM (RFC 5487).
 * The record-protection facts (AEAD, key/IV/nonce/tag lengths, hash) are record/aead-suites12.ts,
 * shared with the host's record layer; this table adds the key exchange and the OpenSSL name.
 * imports bytes/ and tls/ siblings only.
 */
import { SetlsError } from '../../bytes/index.js';
import { AEAD_SUITES12, CipherSuite12, type AeadSuite12 } from '../record/aead-suites12.js';

export { CipherSuite12 } from '../record/aead-suites12.js';

export type KeyExchange12 = 'ecdhe_ecdsa' | 'ecdhe_rsa' | 'psk';

export interface Suite12 extends AeadSuite12 {
  /** OpenSSL name (documentation and tests). */
  readonly name: string;
  readonly kx: KeyExchange12;
}

const C = CipherSuite12;

function row(id: number, name: string, kx: KeyExchange12): Suite12 {
  const aead = AEAD_SUITES12.get(id);
  if (!aead) throw new SetlsError('ERR_TLS_INTERNAL', `no record parameters for 0x${id.toString(16)}`);
  return { ...aead, name, kx };
}

export const SUITES12: ReadonlyMap<number, Suite12> = new Map(
  [
    row(C.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 'ECDHE-ECDSA-AES128-GCM-SHA256', 'ecdhe_ecdsa'),
    row(C.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ecdhe_ecdsa'),
    row(C.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ecdhe_ecdsa'),
    row(C.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 'ECDHE-RSA-AES128-GCM-SHA256', 'ecdhe_rsa'),
    row(C.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, 'ECDHE-RSA-AES256-GCM-SHA384', 'ecdhe_rsa'),
    row(C.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, 'ECDHE-RSA-CHACHA20-POLY1305', 'ecdhe_rsa'),
    row(C.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, 'ECDHE-ECDSA-AES128-CCM8', 'ecdhe_ecdsa'),
    row(C.TLS_PSK_WITH_AES_128_CCM_8, 'PSK-AES128-CCM8', 'psk'),
    row(C.TLS_PSK_WITH_AES_128_GCM_SHA256, 'PSK-AES128-GCM-SHA256', 'psk'),
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
