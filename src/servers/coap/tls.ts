/**
 * CoAP over TLS (`coaps+tcp`, RFC 8323, default port 5684) on the plaintext sockets of a
 * TlsTandem: each SeTlsSocket (TLS ended in the card) becomes one RFC 8323 connection of a
 * CoapServer. ALPN "coap" is accepted but not required (libcoap's PSK clients send none); a
 * session that negotiated another protocol (e.g. http/1.1) is not CoAP and is closed.
 * imports host/ (types) and coap/.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { CoapServer, CoapStreamConnection } from '../../coap/index.js';

export const COAPS_TCP_PORT = 5684;
export const COAP_ALPN = 'coap';

/** Anything that emits card-terminated plaintext connections (a TlsTandem). */
export interface SecureConnectionSource {
  on(event: 'secureConnection', listener: (socket: Duplex) => void): unknown;
  off?(event: 'secureConnection', listener: (socket: Duplex) => void): unknown;
}

export interface CoapOverTlsOptions {
  /**
   * Polled about once a second per connection; true makes long-lived connections (observers) yield
   * the card with a Release once they are `minHoldMs` old. For a TlsTandem: () => tandem.queued > 0.
   */
  readonly shouldYield?: () => boolean;
  readonly minHoldMs?: number;
}

interface SocketFacts {
  alpnProtocol?: string | false;
  localPort?: number;
}

/** Feeds the source's secure connections to `server` as RFC 8323 connections. Returns a stop function. */
export function serveCoapOverTls(source: SecureConnectionSource, server: CoapServer, opts: CoapOverTlsOptions = {}): () => void {
  const onConn = (socket: Duplex): void => {
    const alpn = (socket as Duplex & SocketFacts).alpnProtocol;
    if (alpn && alpn !== COAP_ALPN) {
      socket.destroy();
      return;
    }
    socket.on('error', () => undefined); // the tandem reports session errors
    const conn: CoapStreamConnection = server.handleStream(socket, {
      ...(opts.shouldYield ? { shouldYield: opts.shouldYield } : {}),
      ...(opts.minHoldMs !== undefined ? { minHoldMs: opts.minHoldMs } : {}),
    });
    void conn;
  };
  source.on('secureConnection', onConn);
  return () => source.off?.('secureConnection', onConn);
}

/**
 * Splits one source by the local port the client connected to (one card, one TlsTandem, several
 * listening ports: HTTPS on one, CoAP on another). The returned emitter re-emits only the sockets
 * whose `localPort` satisfies `accept`.
 */
export function secureConnectionsWhere(source: SecureConnectionSource, accept: (socket: Duplex & SocketFacts) => boolean): SecureConnectionSource & EventEmitter {
  const out = new EventEmitter();
  source.on('secureConnection', (socket: Duplex) => {
    if (accept(socket as Duplex & SocketFacts)) out.emit('secureConnection', socket);
  });
  return out as SecureConnectionSource & EventEmitter;
}
