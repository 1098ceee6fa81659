/**
 * card/applets/tls-se/config: the engine configuration of a TLS-SE session (draft-urien-tls-se §3.1): TLS 1.3 only,
 * TLS_AES_128_CCM_SHA256 preferred (the draft's suite) with the other AEAD suites after it, secp256r1
 * preferred (the draft's group), the card's identities for certificate mode, and the external PSKs
 * installed with SET-KEY for psk_dhe_ke (used once the engine implements `findPsk`); one record per
 * handshake message and no middlebox-compatibility CCS, as the real applet sends its flight.
 * imports bytes/ and tls/ (api types).
 */
import { fromHex, toHex } from '../../../bytes/index.js';
import type { TlsEntropy, TlsIdentity, TlsPsk, TlsServerConfig } from '../../../tls/api.js';

export const TLS_SE_CIPHER_SUITES: readonly number[] = [0x1304, 0x1301, 0x1302, 0x1303];
export const TLS_SE_GROUPS: readonly number[] = [0x0017, 0x001d];

export interface TlsSeConfigInput {
  readonly entropy: TlsEntropy;
  selectIdentity(serverName: string | undefined): TlsIdentity | undefined;
  readonly alpn: readonly string[];
  /** identity (hex) → key. */
  readonly psks: ReadonlyMap<string, Uint8Array>;
}

export function tlsSeEngineConfig(i: TlsSeConfigInput): TlsServerConfig {
  return {
    entropy: i.entropy,
    selectIdentity: (sn) => i.selectIdentity(sn),
    cipherSuites: [...TLS_SE_CIPHER_SUITES],
    groups: [...TLS_SE_GROUPS],
    alpnProtocols: [...i.alpn],
    versions: [0x0304],
    // Like Urien's applet (tls_se.java tls(): S_READY → ServerHello, S_EXTENSION → EncryptedExtensions,
    // S_SFINISHED → Finished, each its own record and no change_cipher_spec of its own).
    handshakeRecordPerMessage: true,
    middleboxCompatibilityCcs: false,
    findPsk: (identity: Uint8Array): TlsPsk | undefined => {
      const key = i.psks.get(toHex(identity));
      return key ? { identity: fromHex(toHex(identity)), key, hash: 'sha256' } : undefined;
    },
  };
}
