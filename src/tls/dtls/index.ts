/**
 * DTLS 1.2 server engine (RFC 6347, RFC 7925): the public entry point for the card.
 * imports tls/ siblings only.
 */
export { DtlsServerConnection, createDtlsServer, type DtlsServerOptions } from './connection.js';
export { ReplayWindow } from './record.js';
