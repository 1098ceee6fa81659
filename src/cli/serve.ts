/**
 * `setls serve https`: opens the card, starts a TlsTandem on it and serves the demo plug through
 * node:http. Prints the URL once listening; stops cleanly on SIGINT/SIGTERM.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { TlsTandem } from '../host/index.js';
import { serveHttps, createPlugHandler, createPlugState } from '../servers/https/index.js';
import { openCard } from './card-setup.js';
import { cardPaths, readPin } from './card-files.js';

export interface ServeHttpsOptions {
  cardDir: string;
  cardKey?: string;
  pinFile?: string;
  port: number;
  host: string;
  backlog: number;
  trace?: boolean;
  /** Where trace lines go (default: stderr). */
  traceSink?: (line: string) => void;
}

export interface RunningHttps {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startHttps(o: ServeHttpsOptions, log = pino({ level: process.env.SETLS_LOG ?? 'info' }, pino.destination(2))): Promise<RunningHttps> {
  const paths = cardPaths(o.cardDir, { cardKey: o.cardKey, pinFile: o.pinFile });
  const pin = readPin(paths.pinFile);
  const { transport, card } = openCard({ cardDir: o.cardDir, cardKey: o.cardKey, trace: o.trace, traceSink: o.traceSink });
  const tandem = new TlsTandem({ transport, pin, backlog: o.backlog });
  try {
    await tandem.start();
  } catch (e) {
    await transport.close();
    card.close();
    throw e;
  }
  tandem.on('sessionError', (err: Error & { code?: string }, peer: { remoteAddress?: string; remotePort?: number }) => {
    log.info({ code: err.code, err: err.message, peer: peer?.remoteAddress ? `${peer.remoteAddress}:${peer.remotePort}` : undefined }, 'session ended with an error');
  });
  tandem.on('refused', (peer: { remoteAddress?: string; remotePort?: number }) => log.warn({ peer }, 'backlog full: connection refused'));
  const http = serveHttps(tandem, createPlugHandler(createPlugState()));
  const server = tandem.listen(o.port, o.host);
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([e]) => {
      throw e;
    }),
  ]);
  const port = (server.address() as AddressInfo).port;
  const url = `https://localhost:${port}/`;
  return {
    url,
    port,
    async close() {
      await tandem.close();
      http.close();
      await transport.close();
      card.close();
    },
  };
}

export async function runServeHttps(o: ServeHttpsOptions): Promise<void> {
  const running = await startHttps(o);
  const ca = cardPaths(o.cardDir).caDir + '/ca.crt';
  console.log(`setls: serving HTTPS through the card at ${running.url}`);
  console.log(`  try: curl --cacert ${ca} ${running.url}status`);
  const stop = (): void => {
    void running.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
