/**
 * api/listen: what createServer (HTTPS) and the CoAP createServer both do to start a tandem or pool
 * listening in node's shape — session failures become the server's 'cardError' (no peer: the card
 * between sessions) or 'tlsClientError' (err, peer); listen() resolves once listening, a listen
 * error rejects it (and is not reported as a session failure too); a later listener error is the
 * server's 'error'. imports host/ (types).
 */
import type { EventEmitter } from 'node:events';
import type { Server as NetServer } from 'node:net';
import type { PeerInfo } from '../host/index.js';

/** A TlsTandem or TlsPool, as far as listening goes. */
interface Listenable {
  on(event: 'sessionError', listener: (err: Error, peer: PeerInfo) => void): unknown;
  listen(port: number, host?: string): NetServer;
}

export async function listenAndRoute(source: Listenable, port: number, host: string | undefined, target: EventEmitter): Promise<NetServer> {
  const listenError = new WeakSet<Error>();
  source.on('sessionError', (err: Error, peer: PeerInfo) => {
    if (listenError.has(err)) return;
    if (peer?.remoteAddress === undefined) target.emit('cardError', err);
    else target.emit('tlsClientError', err, peer);
  });
  const listener = source.listen(port, host);
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => {
      listenError.add(e);
      listener.off('listening', onListening);
      reject(e);
    };
    const onListening = (): void => {
      listener.off('error', onError);
      resolve();
    };
    listener.once('error', onError);
    listener.once('listening', onListening);
  });
  listener.on('error', (e: Error) => {
    listenError.add(e);
    target.emit('error', e);
  });
  return listener;
}
