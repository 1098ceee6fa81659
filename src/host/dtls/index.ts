/**
 * host/dtls: the host side of DTLS 1.2 with the handshake in a key holder (the card): stateless
 * HelloVerifyRequest cookies, handshake fragmentation/reassembly, flight retransmission, the
 * association table (draft-urien-uta-tls-dtls-security-module; docs/apdu-protocol.md §8).
 * imports tls/record (framing) and host/ siblings.
 */
export { DtlsAssociation, type DtlsBackend, type DtlsBackendOutput, type DtlsAssociationOptions, type AssociationState } from './association.js';
export { DtlsServer, type DtlsServerOptions, type DtlsPeer, type DtlsServerStats } from './server.js';
export { CookieJar, helloVerifyRequest, COOKIE_LENGTH } from './cookie.js';
export { CardDtlsBackends, CardGate, type CardDtlsOptions } from './card-backend.js';
