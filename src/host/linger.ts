/**
 * The last act on a client connection: our final bytes (a fatal alert, or close_notify) then FIN,
 * then whatever the client still sends is read and thrown away until it closes too — for at most
 * `ms` and `maxBytes` — and only then is the socket destroyed.
 *
 * Why not destroy() at once: closing a TCP socket that still holds unread bytes makes the kernel
 * send a reset (RFC 1122 §4.2.2.13, RFC 2525 §2.17), and a client that wrote more after the record
 * that failed (a GET behind a bad KeyUpdate, the rest of a pipeline) then gets EPIPE/ECONNRESET on
 * its write and never reads the alert we sent. Draining keeps the connection readable for it.
 * imports nothing.
 */
import type { Socket } from 'node:net';

/** How long the client may keep sending after our FIN, ms. */
export const LINGER_MS = 2_000;
/** How much it may send meanwhile (bytes read and discarded) before we give up and reset. */
export const LINGER_MAX_BYTES = 1 << 20;

export interface LingerOptions {
  readonly ms?: number;
  readonly maxBytes?: number;
}

const lingering = new WeakSet<Socket>();

/**
 * Writes `last` (if any) and FIN, drains the client's reads (discarding them) until it closes, the
 * deadline passes or `maxBytes` arrived, then destroys the socket. Idempotent; a no-op on a
 * destroyed socket. Other 'data' listeners must be gone (or be happy to see the discarded bytes).
 */
export function endAndDrain(socket: Socket, last?: Uint8Array, opts: LingerOptions = {}): void {
  if (socket.destroyed) return;
  if (!socket.writableEnded && socket.writable) {
    if (last && last.length > 0) socket.end(last);
    else socket.end();
  }
  if (lingering.has(socket)) return;
  lingering.add(socket);
  const ms = opts.ms ?? LINGER_MS;
  const maxBytes = opts.maxBytes ?? LINGER_MAX_BYTES;
  let seen = 0;
  const stop = (): void => {
    clearTimeout(timer);
    socket.off('data', onData);
  };
  const onData = (chunk: Buffer): void => {
    seen += chunk.length;
    if (seen > maxBytes) {
      stop();
      socket.destroy();
    }
  };
  const timer = setTimeout(() => {
    stop();
    socket.destroy();
  }, ms);
  timer.unref();
  socket.once('close', stop);
  socket.on('error', () => undefined);
  socket.on('data', onData);
  socket.resume();
}
