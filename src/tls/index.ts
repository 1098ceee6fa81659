/**
 * setls TLS 1.3 server engine: the public entry point. Secrets are never reachable from here.
 * imports bytes/ (through siblings) and tls/ siblings only.
 */
import type { TlsServerConfig, TlsServerConnection } from './api.js';
import { TlsServer } from './server/connection.js';

export * from './api.js';
export { CipherSuite, NamedGroup, SignatureScheme, ProtocolVersion, OUR_RECORD_SIZE_LIMIT, KeyUpdateRequest } from './constants.js';
/** Default server preferences and the default KeyUpdate interval (no secrets: code points and a count). */
export { DEFAULT_CIPHER_SUITES, DEFAULT_GROUPS, DEFAULT_KEY_UPDATE_AFTER_RECORDS } from './crypto.js';
/** TLS 1.2 suite code points and the default TLS 1.2 server preference (AEAD ECDHE suites). */
export { CipherSuite12, DEFAULT_CIPHER_SUITES_12 } from './tls12/suites12.js';

/** A fresh server connection for one session. */
export function createTlsServer(config: TlsServerConfig): TlsServerConnection {
  return new TlsServer(config);
}
