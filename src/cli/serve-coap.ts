/**
 * `setls serve coap` and the CoAP half of `setls demo`: one card, one TlsTandem, CoAP over TLS
 * (coaps+tcp, RFC 8323) and optionally HTTPS on a second port. Connections to either port share the
 * tandem's rendezvous/backlog (the card serves one session at a time); the sockets are told apart
 * by the local port they arrived on.
 */
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import pino from 'pino';
import { CardClient, TlsTandem, type CardTransport } from '../host/index.js';
import { serveHttps, createPlugHandler, createPlugState } from '../servers/https/index.js';
import { createPlugCoapServer, secureConnectionsWhere, serveCoapOverTls, COAP_ALPN } from '../servers/coap/index.js';
import { openCard, readOperatorPin } from './card-setup.js';
import { cardPaths, readPin } from './card-files.js';

export interface ServeCoapOptions {
  cardDir: string;
  cardKey?: string;
  pinFile?: string;
  /** CoAP over TLS port (5684 by default in the CLI; 0 = any). */
  port: number;
  /** Also serve HTTPS (the same plug, same state) on this port. */
  httpsPort?: number;
  host: string;
  backlog: number;
  trace?: boolean;
  traceSink?: (line: string) => void;
  /** Add "coap" to the card's ALPN policy when it lacks it (operator PIN from <card-dir>.admin.json). */
  fixAlpn?: boolean;
  /** /power notification period, ms. */
  powerIntervalMs?: number;
  /** Tandem idle deadline, ms. */
  idleTimeoutMs?: number;
}

export interface RunningCoap {
  readonly coapPort: number;
  readonly httpsPort: number | undefined;
  readonly url: string;
  /** The card's ALPN policy in force (undefined: the card reported none). */
  readonly alpn: readonly string[] | undefined;
  close(): Promise<void>;
}

async function listenOn(server: net.Server): Promise<number> {
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([e]) => {
      throw e;
    }),
  ]);
  return (server.address() as AddressInfo).port;
}

/** Reads the card's ALPN policy; with `fix`, adds "coap" when a non-empty list lacks it. */
async function coapAlpn(transport: CardTransport, cardDir: string, cardKey: string | undefined, fix: boolean): Promise<readonly string[] | undefined> {
  const client = new CardClient(transport);
  await client.select();
  const alpn = (await client.cardInfo()).policy?.alpn;
  if (!fix || !alpn || alpn.length === 0 || alpn.includes(COAP_ALPN)) return alpn;
  await client.verifyPin(readOperatorPin(cardPaths(cardDir, { cardKey })), 'operator');
  const next = [...alpn, COAP_ALPN];
  await client.putPolicy({ alpn: next });
  return next;
}

export async function startCoap(o: ServeCoapOptions, log = pino({ level: process.env.SETLS_LOG ?? 'info' }, pino.destination(2))): Promise<RunningCoap> {
  const paths = cardPaths(o.cardDir, { cardKey: o.cardKey, pinFile: o.pinFile });
  const pin = readPin(paths.pinFile);
  const { transport, card } = openCard({ cardDir: o.cardDir, cardKey: o.cardKey, trace: o.trace, traceSink: o.traceSink });
  const tandem = new TlsTandem({ transport, pin, backlog: o.backlog, ...(o.idleTimeoutMs !== undefined ? { idleTimeoutMs: o.idleTimeoutMs } : {}) });
  let alpn: readonly string[] | undefined;
  try {
    alpn = await coapAlpn(transport, o.cardDir, o.cardKey, o.fixAlpn ?? false);
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

  const state = createPlugState();
  const coap = createPlugCoapServer(state, o.powerIntervalMs !== undefined ? { powerIntervalMs: o.powerIntervalMs } : {});
  coap.on('clientError', (err: Error & { code?: string }) => log.info({ code: err.code, err: err.message }, 'CoAP connection ended with an error'));

  // The tandem's own listener takes the first port; a second listener feeds the same tandem.
  const primaryIsHttps = o.httpsPort !== undefined;
  const primary = tandem.listen(primaryIsHttps ? o.httpsPort : o.port, o.host);
  const primaryPort = await listenOn(primary);
  let extra: net.Server | undefined;
  let coapPort = primaryPort;
  let httpsPort: number | undefined;
  let http: ReturnType<typeof serveHttps> | undefined;
  const shouldYield = (): boolean => tandem.queued > 0;
  if (primaryIsHttps) {
    httpsPort = primaryPort;
    extra = net.createServer({ pauseOnConnect: true }, (s) => primary.emit('connection', s));
    extra.listen({ port: o.port, host: o.host });
    coapPort = await listenOn(extra);
    const cp = coapPort;
    http = serveHttps(
      secureConnectionsWhere(tandem, (s) => s.localPort !== cp),
      createPlugHandler(state),
    );
    serveCoapOverTls(
      secureConnectionsWhere(tandem, (s) => s.localPort === cp),
      coap,
      { shouldYield },
    );
  } else {
    serveCoapOverTls(tandem, coap, { shouldYield });
  }
  return {
    coapPort,
    httpsPort,
    url: `coaps+tcp://localhost:${coapPort}`,
    alpn,
    async close() {
      extra?.close();
      await coap.close().catch(() => undefined);
      await tandem.close();
      http?.close();
      await transport.close();
      card.close();
    },
  };
}

/** Ready-to-paste libcoap client commands. */
export function coapClientCommands(caPath: string, url: string): string[] {
  const c = `coap-client-openssl -B 5 -C ${caPath}`;
  return [
    `${c} -m get ${url}/status`,
    `${c} -m put -e on ${url}/relay`,
    `${c} -s 5 -w -m get ${url}/power`,
    `${c} -b 1024 -o blob.bin -m get ${url}/blob && sha256sum blob.bin`,
    `${c} -m get ${url}/.well-known/core`,
  ];
}

export async function runServeCoap(o: ServeCoapOptions): Promise<void> {
  const running = await startCoap(o);
  const ca = cardPaths(o.cardDir).caDir + '/ca.crt';
  if (running.httpsPort !== undefined) {
    console.log(`setls: serving HTTPS through the card at https://localhost:${running.httpsPort}/`);
    console.log(`  try: curl --cacert ${ca} https://localhost:${running.httpsPort}/status`);
  }
  console.log(`setls: serving CoAP over TLS through the card at ${running.url} (TCP; DTLS not yet)`);
  if (running.alpn && running.alpn.length > 0 && !running.alpn.includes(COAP_ALPN)) {
    console.log(`  note: the card's ALPN policy is ${running.alpn.join(',')}; clients offering only "coap" (libcoap with certificates) will be refused.`);
    console.log(`        fix: setls card policy --card-dir ${o.cardDir} --alpn ${[...running.alpn, COAP_ALPN].join(',')}`);
  }
  for (const cmd of coapClientCommands(ca, running.url)) console.log(`  try: ${cmd}`);
  const stop = (): void => {
    void running.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
