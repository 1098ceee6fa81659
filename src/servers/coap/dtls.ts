/**
 * CoAP over DTLS (`coaps://`, RFC 7252 §9, default port 5684/udp): each DTLS association of a host
 * DtlsServer (the handshake and record layer in the card, or any DtlsBackend) gets one RFC 7252
 * messaging endpoint (coap/udp-messaging.ts) in front of the CoapServer's request layer, so the same
 * resources (createPlugCoapServer) answer over UDP: piggybacked responses, NON/CON notifications,
 * Block2 sized to the datagram. One CoAP message = one DTLS record = one datagram.
 * imports host/ and coap/.
 */
import type { DtlsAssociation, DtlsServer } from '../../host/dtls/index.js';
import { CoapUdpEndpoint, type CoapPeer, type CoapServer, type UdpMessagingOptions } from '../../coap/index.js';

export const COAPS_UDP_PORT = 5684;

/** Serves `server` on every association `dtls` establishes. Returns a stop function. */
export function serveCoapOverDtls(dtls: DtlsServer, server: CoapServer, opts: Omit<UdpMessagingOptions, 'peer'> = {}): () => void {
  const endpoints = new Set<CoapUdpEndpoint>();
  const onSession = (a: DtlsAssociation): void => {
    // `transport` marks DTLS peers for the resources (e.g. /status reports "coaps").
    const peer: CoapPeer & { transport: 'coaps' } = { remoteAddress: a.address, remotePort: a.port, transport: 'coaps' };
    const ep = new CoapUdpEndpoint(
      server,
      (d) => {
        a.send(d).catch(() => undefined);
      },
      { ...opts, peer },
    );
    endpoints.add(ep);
    a.on('message', (m: Uint8Array) => ep.receive(m));
    a.once('close', () => {
      ep.close();
      endpoints.delete(ep);
    });
  };
  dtls.on('session', onSession);
  return () => {
    dtls.off('session', onSession);
    for (const ep of endpoints) ep.close();
  };
}
