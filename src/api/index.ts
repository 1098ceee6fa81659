/**
 * `setls`: the package's main entry.
 *
 *   import { createServer } from 'setls';
 *   createServer({ cardDir: '.setls/card' }, app).listen(8443);
 *
 * createServer (node:https's shape; the socket handed to handlers is a SeTlsSocket, close to a
 * tls.TLSSocket), openCard / initCard (card folders), resolvePin (where the PIN comes from), and the
 * error classes. The lower layer (the paper's TlsTandem / openSession() / RecordLayer, CardClient,
 * transports, TlsPool) is `setls/host`; CoAP is `setls/coap`; PC/SC is `setls/pcsc`.
 * imports api/, host/ and bytes/.
 */
export { createServer, SetlsServer, type ServerOptions, type CardSource } from './server.js';
export { openCard, initCard, type OpenCardOptions, type OpenedCard, type InitCardOptions, type InitCardResult } from './card.js';
export { resolvePin, type PinSource, type ResolvedPin } from './pin.js';
export { SeTlsSocket, CardError, TlsAlertError, type PeerInfo, type SessionInfo, type PeerIdentityInfo, type CardTransport } from '../host/index.js';
export { SetlsError } from '../bytes/index.js';

import { SeTlsSocket as Socket } from '../host/index.js';
/**
 * A handler's `req.socket` (typed net.Socket by node:http) as the SeTlsSocket it is, or undefined:
 * `asSeTlsSocket(req.socket)?.getPeerIdentity()`. (Casting to tls.TLSSocket also works for what both
 * have: getProtocol, getCipher, getPeerCertificate, alpnProtocol, servername, encrypted, authorized.)
 */
export function asSeTlsSocket(socket: unknown): Socket | undefined {
  return socket instanceof Socket ? socket : undefined;
}
