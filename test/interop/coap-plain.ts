/**
 * Test-only: a CoapServer on plain sockets (coap:// over UDP on loopback — one RFC 7252 messaging
 * endpoint per client address/port, as serveCoapOverDtls makes one per association — and
 * coap+tcp:// over TCP), so that libcoap's coap-client can drive the request semantics (the same
 * request layer the card-backed coaps:// and coaps+tcp:// servers use) without a handshake per run.
 */
import { createSocket } from 'node:dgram';
import net, { type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { CoapUdpEndpoint, type CoapServer } from '../../src/coap/index.js';

export interface PlainCoap {
  /** coap://127.0.0.1:port */
  readonly udpUrl: string;
  /** coap+tcp://127.0.0.1:port */
  readonly tcpUrl: string;
  /** The UDP endpoints, one per client address:port, in order of creation. */
  readonly endpoints: CoapUdpEndpoint[];
  close(): Promise<void>;
}

export async function servePlainCoap(server: CoapServer): Promise<PlainCoap> {
  const udp = createSocket('udp4');
  const byPeer = new Map<string, CoapUdpEndpoint>();
  const endpoints: CoapUdpEndpoint[] = [];
  udp.on('message', (d, r) => {
    const key = `${r.address}:${r.port}`;
    let ep = byPeer.get(key);
    if (!ep) {
      ep = new CoapUdpEndpoint(server, (out) => udp.send(out, r.port, r.address), { peer: { remoteAddress: r.address, remotePort: r.port } });
      byPeer.set(key, ep);
      endpoints.push(ep);
      while (byPeer.size > 64) {
        const [oldest, old] = byPeer.entries().next().value as [string, CoapUdpEndpoint];
        byPeer.delete(oldest);
        old.close();
      }
    }
    ep.receive(new Uint8Array(d));
  });
  udp.bind(0, '127.0.0.1');
  await once(udp, 'listening');
  const tcp = net.createServer((socket) => {
    socket.on('error', () => undefined);
    server.handleStream(socket);
  });
  tcp.listen(0, '127.0.0.1');
  await once(tcp, 'listening');
  return {
    udpUrl: `coap://127.0.0.1:${udp.address().port}`,
    tcpUrl: `coap+tcp://127.0.0.1:${(tcp.address() as AddressInfo).port}`,
    endpoints,
    async close() {
      for (const ep of byPeer.values()) ep.close();
      udp.close();
      await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
}
