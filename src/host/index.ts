/**
 * host/: the SE-TLS host framework (public API). The card is reached only through APDU bytes.
 * imports apdu/, bytes/, eap/, tls/record/, tls/crypto.ts (primitives, TLS-Tandem), transport/ and host/.
 */
export { CardClient, CardState, SETLS_AID, CLA_PROPRIETARY, type CardClientOptions, type PinKind, type ApduEvent } from './card-client.js';
export type { CardInfo, IdentityInfo, SessionInfo, CsrRequest, CardPolicy, KeyTypeName } from './card-codec.js';
export type { IdentityPolicy, ClientAuth, PskSpec, PskHash, ExportedSessionBlob, PeerIdentityInfo, Resumption } from './card-codec.js';
export { KeyType, encodePolicy, encodeIdentityPolicy, encodeTrustAnchor, encodePsk, encodeExporter, parseExportedSession, wipeExportedSession } from './card-codec.js';
export { HostSession, type HostSessionOptions } from './host-record.js';
export { encodePin, encodeLabel, encodeChain, encodeCsrRequest, ipToBytes, parseSessionInfo, parseCardInfo, parseIdentityInfo } from './card-codec.js';
export { CardError, TlsAlertError, cardError, cardErrorCode } from './errors.js';
export { EapSession, groupRecords, MAX_PLAINTEXT, type HandshakeStep, type DecryptResult, type EapSessionOptions } from './eap-session.js';
export { RecordLayer, type RecordLayerOptions } from './record-layer.js';
export { SocketReader } from './socket-reader.js';
export { SeTlsSocket } from './socket.js';
export { TlsTandem, type TlsTandemOptions, type SessionEvent, type PeerInfo } from './tandem.js';
export { EapDriver, type SeSession, type SeSessionPhase, type SessionDriver, type EapDriverOptions } from './session-driver.js';
export { TlsSeDriver, TlsSeSession, tlsSeExchange, tlsSeMaxPlaintext, TLS_SE_AID, TLS_SE_FRAGMENT, TLS_SE_RX_SIZE, TLS_SE_SW, TlsSeP1, type TlsSeDriverOptions, type TlsSeSessionOptions, type TlsSeExchange } from './tls-se-driver.js';
export * from '../transport/index.js';
export { TlsPool, probeLogicalChannels, type TlsPoolOptions, type PoolSlot, type SlotHealth, type ChannelLease, type PoolStats } from './pool.js';
export { HelloStage, answerOverloaded, plaintextAlert, type HelloStageOptions } from './hello-stage.js';
export { PeerTable, peerKey } from './peer-table.js';
export { ServiceEstimate } from './service-estimate.js';
export { peekClientHello, ticketKeyIdInFlight, type HelloPeek } from './pool-hello.js';
export { createMetrics, startAdminServer, type SetlsMetrics } from './metrics.js';
