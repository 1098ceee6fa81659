/**
 * setls TLS 1.3 server engine: the public entry point. Secrets are never reachable from here.
 * imports bytes/ (through siblings) and tls/ siblings only.
 */
import type { TlsServerConfig, TlsServerConnection } from './api.js';
import { TlsServer } from './server/connection.js';

export * from './api.js';
export { CipherSuite, NamedGroup, SignatureScheme, ProtocolVersion, OUR_RECORD_SIZE_LIMIT } from './constants.js';

/** A fresh server connection for one session. */
export function createTlsServer(config: TlsServerConfig): TlsServerConnection {
  return new TlsServer(config);
}
