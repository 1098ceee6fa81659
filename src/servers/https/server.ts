/**
 * HTTPS over card-terminated TLS: Node's own HTTP/1.1 server fed with the plaintext Duplexes that
 * the host framework emits (`server.emit('connection', socket)`); no hand-written HTTP parser.
 * imports host/ (types) only.
 */
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** Anything that emits card-terminated plaintext connections (a TlsTandem). */
export interface SecureConnectionSource {
  on(event: 'secureConnection', listener: (socket: Duplex) => void): unknown;
  off?(event: 'secureConnection', listener: (socket: Duplex) => void): unknown;
}

export interface HttpsOverCardOptions {
  /** Keep-alive idle timeout of node:http (ms). The card's own idle deadline also applies. */
  readonly keepAliveTimeoutMs?: number;
  /** Headers timeout (ms): a slow client cannot hold the card forever. */
  readonly headersTimeoutMs?: number;
}

export function serveHttps(
  source: SecureConnectionSource,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  opts: HttpsOverCardOptions = {},
): Server {
  const server = createServer(handler);
  server.keepAliveTimeout = opts.keepAliveTimeoutMs ?? 5000;
  server.headersTimeout = opts.headersTimeoutMs ?? 10000;
  server.requestTimeout = 60000;
  const onConn = (socket: Duplex): void => {
    server.emit('connection', socket);
  };
  source.on('secureConnection', onConn);
  server.on('close', () => source.off?.('secureConnection', onConn));
  return server;
}
