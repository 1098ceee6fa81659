/**
 * HTTPS over card-terminated TLS: Node's own HTTP/1.1 server fed with the plaintext Duplexes that
 * the host framework emits (`server.emit('connection', socket)`); no hand-written HTTP parser.
 *
 * Requests node:http cannot parse ('clientError') are answered here rather than by node:http's
 * default, which writes its 400 and then destroy()s the socket at once (the response, still in the
 * SeTlsSocket's write coalescing, was lost and the client saw a bare TCP close): we end() the
 * socket after the response, so it goes out, then close_notify (RFC 8446 §6.1), then FIN.
 *
 * Bare LF line ends (RFC 9112 §2.2 lets a recipient accept them): Node 20's parser (llhttp 9)
 * rejects `GET / HTTP/1.0\n\n` with HPE_INVALID_VERSION ("Expected CRLF after version"); the only
 * switch that relaxes it, `insecureHTTPParser`, also accepts invalid header characters and
 * conflicting framing headers (request smuggling) and still stalls on that very request, so it stays
 * off: such requests get `400 Bad Request` with `Connection: close`, then close_notify.
 * imports nothing from the other folders (the sockets are plain Duplexes here).
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

/** The answer to a request node:http rejected (as node:http's own choice of status), connection closed after it. */
export function clientErrorResponse(code: string | undefined): string {
  const status =
    code === 'HPE_HEADER_OVERFLOW'
      ? '431 Request Header Fields Too Large'
      : code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW'
        ? '413 Payload Too Large'
        : code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? '408 Request Timeout'
          : '400 Bad Request';
  return `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`;
}

/**
 * node:http's 'clientError': a parse error or a request timeout answered with its status, then a
 * graceful end (the SeTlsSocket sends close_notify); when a response is already under way, or for
 * an error of the connection itself (already destroyed), the socket is destroyed — which for a
 * SeTlsSocket still sends close_notify unless the TLS session failed.
 */
export function onClientError(err: Error & { code?: string }, socket: Duplex): void {
  if (socket.destroyed) return;
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (socket.writable && !socket.writableEnded && !inFlight?.headersSent) {
    socket.end(clientErrorResponse(err.code));
    return;
  }
  if (!socket.writableEnded) socket.destroy();
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
  server.on('clientError', onClientError);
  const onConn = (socket: Duplex): void => {
    server.emit('connection', socket);
  };
  source.on('secureConnection', onConn);
  server.on('close', () => source.off?.('secureConnection', onConn));
  return server;
}
