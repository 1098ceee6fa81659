/**
 * `setls serve https`: opens the card, starts a TlsTandem on it and serves the demo plug through
 * node:http. Prints the URL once listening; stops cleanly on SIGINT/SIGTERM.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { TlsTandem, PcscTransport, TracingTransport, type CardTransport } from '../host/index.js';
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
  /** A PC/SC reader (through pcscd) instead of the in-process card of --card-dir. */
  reader?: string;
  /** PC/SC share mode (default auto: exclusive, since the binding has no PC/SC transactions). */
  pcscShare?: 'auto' | 'shared' | 'exclusive';
  /** Applet driver: 'eap' (setls applet, default) or 'tls-se' (draft-urien-tls-se applet). */
  driver?: 'eap' | 'tls-se';
  /** TLS-Tandem: records protected in the card (default) or on the host after EXPORT-SESSION. */
  recordLayer?: 'card' | 'host';
}

/** The card of a serve command: a PC/SC reader (the PIN file of --card-dir still applies) or the in-process card. */
async function openServeCard(o: ServeHttpsOptions): Promise<{ transport: CardTransport; closeCard: () => void }> {
  if (o.reader === undefined) {
    const { transport, card } = openCard({ cardDir: o.cardDir, cardKey: o.cardKey, trace: o.trace, traceSink: o.traceSink });
    return { transport, closeCard: () => card.close() };
  }
  let transport: CardTransport = await PcscTransport.open({ reader: o.reader, waitForCardMs: 10_000, ...(o.pcscShare ? { share: o.pcscShare } : {}) });
  if (o.trace) transport = new TracingTransport(transport, o.traceSink ?? ((l) => process.stderr.write(l + '\n')));
  return { transport, closeCard: () => undefined };
}

export interface RunningHttps {
  readonly url: string;
  readonly port: number;
  /** The tandem serving the card (tests inspect inUse / queued / exportedSessions). */
  readonly tandem: TlsTandem;
  close(): Promise<void>;
}

export async function startHttps(o: ServeHttpsOptions, log = pino({ level: process.env.SETLS_LOG ?? 'info' }, pino.destination(2))): Promise<RunningHttps> {
  const paths = cardPaths(o.cardDir, { cardKey: o.cardKey, pinFile: o.pinFile });
  const pin = readPin(paths.pinFile);
  const { transport, closeCard } = await openServeCard(o);
  const tandem = new TlsTandem({
    transport,
    pin,
    backlog: o.backlog,
    ...(o.driver ? { driver: o.driver } : {}),
    ...(o.recordLayer ? { recordLayer: o.recordLayer } : {}),
  });
  try {
    await tandem.start();
  } catch (e) {
    await transport.close();
    closeCard();
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
    tandem,
    async close() {
      await tandem.close();
      http.close();
      await transport.close();
      closeCard();
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
