/**
 * host/: the SE-TLS host framework (public API). The card is reached only through APDU bytes.
 * imports apdu/, bytes/, eap/, tls/record/framing.ts, transport/ and host/.
 */
export { CardClient, CardState, SETLS_AID, CLA_PROPRIETARY, type CardClientOptions, type PinKind, type ApduEvent } from './card-client.js';
export type { CardInfo, IdentityInfo, SessionInfo, CsrRequest, CardPolicy, KeyTypeName } from './card-codec.js';
export { KeyType, encodePolicy } from './card-codec.js';
export { encodePin, encodeLabel, encodeChain, encodeCsrRequest, ipToBytes, parseSessionInfo, parseCardInfo, parseIdentityInfo } from './card-codec.js';
export { CardError, cardError, cardErrorCode } from './errors.js';
export { EapSession, groupRecords, MAX_PLAINTEXT, type HandshakeStep, type DecryptResult, type EapSessionOptions } from './eap-session.js';
export { RecordLayer, type RecordLayerOptions } from './record-layer.js';
export { SocketReader } from './socket-reader.js';
export { SeTlsSocket } from './socket.js';
export { TlsTandem, type TlsTandemOptions, type SessionEvent, type PeerInfo } from './tandem.js';
export * from '../transport/index.js';
