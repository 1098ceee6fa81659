/**
 * `setls serve coap` and the CoAP half of `setls demo`: one card, CoAP over TLS (coaps+tcp, RFC 8323)
 * on TCP and CoAP over DTLS (coaps, RFC 7252; the DTLS handshake and record layer in the card,
 * docs/apdu-protocol.md §8) on UDP with the same port number, and optionally HTTPS on a second port.
 * ONE scheduler shares the card's logical channels between both transports (TlsPool,
 * docs/architecture.md "Sessions under pressure"): TCP connections to either port go through its
 * hello stage and queue (sockets are told apart by their local port); a DTLS association asks it for
 * a channel once its cookie checked out and its ClientHello is whole (TlsPool.acquireChannel), taking
 * turns with TLS; no session of either kind holds a channel past the hold limit while others wait,
 * and a DTLS handshake without progress gives its channel back after the stall deadline.
 */
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import pino from 'pino';
import { CardClient, TlsPool, type CardTransport } from '../host/index.js';
import { CardDtlsBackends, DtlsServer } from '../host/dtls/index.js';
import { serveHttps, createPlugHandler, createPlugState } from '../servers/https/index.js';
import { createPlugCoapServer, secureConnectionsWhere, serveCoapOverDtls, serveCoapOverTls, COAP_ALPN } from '../servers/coap/index.js';
import { openCardFolder, readOperatorPin } from './card-setup.js';
import { existsSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { cardPaths, readSecretFile, writeSecretFile } from './card-files.js';
import { servePin } from './serve.js';
import { cliLogger, logFormat } from './log.js';
import { stopHint, stopOnSignals } from './stop.js';
import { startAdminSocket } from './admin-access.js';
import type { AdminRelay } from '../transport/admin-relay.js';
import { logPoolEvents, poolPressureOptions, servingChannels, type PressureFlags } from './serve-pressure.js';

export interface ServeCoapOptions extends PressureFlags {
  cardDir: string;
  /** The emulated card in a worker thread of its own (cli/card-thread.ts). */
  cardThread?: boolean;
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
  /** Also serve CoAP over DTLS on UDP with the CoAP port number (default true). */
  dtls?: boolean;
  /** Log format: json, pretty, auto (default: pretty on a terminal). */
  logFormat?: string;
  /**
   * The demo: make sure the card holds the PSK `setls-demo` (key in `<card-dir>.psk`, hex, mode 0600;
   * created when missing) and lists the DTLS and TLS 1.2 PSK suites in its policy.
   */
  demoPsk?: boolean;
}

export const DEMO_PSK_IDENTITY = 'setls-demo';
/** The DTLS suites (§8) and the TLS 1.2 PSK suites the demo card lists after its TLS 1.2 defaults. */
const DEMO_SUITES12 = [0xc0ae, 0xc0a8, 0x00a8];

/** `<card-dir>.psk`: the demo PSK as hex of an ASCII key (so `coap-client -k` can take it as typed). */
export function demoPskFile(cardDir: string): string {
  return `${cardPaths(cardDir).dir}.psk`;
}

/** The demo PSK key as text (created when the file is missing). */
export function demoPskKey(cardDir: string): string {
  const file = demoPskFile(cardDir);
  if (!existsSync(file)) {
    const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
    let key = '';
    for (let i = 0; i < 24; i++) key += alphabet[randomInt(alphabet.length)];
    writeSecretFile(file, Buffer.from(key, 'ascii').toString('hex') + '\n');
  }
  return Buffer.from(readSecretFile(file, 'PSK key').trim(), 'hex').toString('ascii');
}

/** Puts the demo PSK into the card (PUT-PSK) and adds the DTLS / PSK suites to policy tag 35. */
async function ensureDemoPsk(transport: CardTransport, cardDir: string, cardKey: string | undefined): Promise<void> {
  const key = demoPskKey(cardDir);
  const client = new CardClient(transport);
  await client.select();
  const info = await client.cardInfo();
  await client.verifyPin(readOperatorPin(cardPaths(cardDir, { cardKey })), 'operator');
  const have = info.policy?.cipherSuites12 ?? [];
  const missing = DEMO_SUITES12.filter((x) => !have.includes(x));
  if (missing.length > 0) await client.putPolicy({ cipherSuites12: [...have, ...missing] });
  if (info.pskIdentities.some((b) => Buffer.from(b).toString('utf8') === DEMO_PSK_IDENTITY)) return; // (a new key file: setls card add-psk)
  const bytes = new Uint8Array(Buffer.from(key, 'ascii'));
  await client.putPsk({ identity: DEMO_PSK_IDENTITY, key: bytes });
  bytes.fill(0);
}

export interface RunningCoap {
  readonly coapPort: number;
  /** UDP port of coaps:// (the same number as coapPort), when DTLS is served. */
  readonly dtlsPort: number | undefined;
  /** The scheduler of the card's channels (TLS and DTLS). */
  readonly pool: TlsPool;
  /** The DTLS listener, when DTLS is served. */
  readonly dtls: DtlsServer | undefined;
  readonly httpsPort: number | undefined;
  readonly url: string;
  /** The card's ALPN policy in force (undefined: the card reported none). */
  readonly alpn: readonly string[] | undefined;
  /** The admin socket offered (undefined: none, see the log). */
  readonly adminSocket: string | undefined;
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
  const pin = servePin(o.cardDir, o.pinFile, (m) => log.warn(m));
  const card = await openCardFolder({ ...o, thread: o.cardThread });
  const { transport } = card;
  let pool!: TlsPool;
  let alpn: readonly string[] | undefined;
  let relay: AdminRelay | undefined;
  try {
    alpn = await coapAlpn(transport, o.cardDir, o.cardKey, o.fixAlpn ?? false);
    if (o.demoPsk) await ensureDemoPsk(transport, o.cardDir, o.cardKey);
    // TLS and DTLS share the card's channels through this one scheduler.
    pool = new TlsPool({
      transports: [transport],
      pin,
      channelsPerCard: await servingChannels(transport, { cardDir: o.cardDir, inProcess: true, ...(o.channels !== undefined ? { channels: o.channels } : {}) }),
      ...poolPressureOptions(o),
      backlog: o.backlog,
      ...(o.idleTimeoutMs !== undefined ? { idleTimeoutMs: o.idleTimeoutMs } : {}),
    });
    await pool.start();
    // Before the listeners: the relay opens its logical channel while nothing else talks to the card.
    relay = await startAdminSocket(o.cardDir, transport, (l) => log.warn(l));
  } catch (e) {
    await relay?.close();
    await transport.close();
    await card.close();
    throw e;
  }
  logPoolEvents(pool, log);

  const state = createPlugState();
  const coap = createPlugCoapServer(state, o.powerIntervalMs !== undefined ? { powerIntervalMs: o.powerIntervalMs } : {});
  coap.on('clientError', (err: Error & { code?: string }) => log.warn({ code: err.code, err: err.message }, 'CoAP connection ended with an error'));

  // The pool's listener takes the first port; a second listener feeds the same pool.
  const primaryIsHttps = o.httpsPort !== undefined;
  const primary = pool.listen(primaryIsHttps ? o.httpsPort : o.port, o.host);
  const primaryPort = await listenOn(primary);
  let extra: net.Server | undefined;
  let coapPort = primaryPort;
  let httpsPort: number | undefined;
  let http: ReturnType<typeof serveHttps> | undefined;
  const shouldYield = (): boolean => pool.othersWaiting;
  if (primaryIsHttps) {
    httpsPort = primaryPort;
    extra = net.createServer({ pauseOnConnect: true }, (s) => pool.acceptConnection(s));
    extra.listen({ port: o.port, host: o.host });
    coapPort = await listenOn(extra);
    const cp = coapPort;
    http = serveHttps(
      secureConnectionsWhere(pool, (s) => s.localPort !== cp),
      createPlugHandler(state),
    );
    serveCoapOverTls(
      secureConnectionsWhere(pool, (s) => s.localPort === cp),
      coap,
      { shouldYield },
    );
  } else {
    serveCoapOverTls(pool, coap, { shouldYield });
  }
  let dtls: DtlsServer | undefined;
  let dtlsPort: number | undefined;
  if (o.dtls ?? true) {
    const backends = new CardDtlsBackends({ pin, acquire: (peer) => pool.acquireChannel(peer) });
    dtls = new DtlsServer({
      openBackend: backends.openBackend,
      idleTimeoutMs: o.idleTimeoutMs ?? 30_000,
      pressure: () => pool.othersWaiting,
      maxHoldMs: pool.holdLimitMs,
    });
    dtls.on('error', (err: Error & { code?: string }) => log.info({ code: err.code, err: err.message }, 'DTLS association error'));
    serveCoapOverDtls(dtls, coap);
    try {
      dtlsPort = (await dtls.listen(coapPort, o.host)).port;
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'CoAP over DTLS not served: UDP port unavailable');
      dtls = undefined;
    }
  }
  return {
    coapPort,
    dtlsPort,
    pool,
    dtls,
    httpsPort,
    url: `coaps+tcp://localhost:${coapPort}`,
    alpn,
    adminSocket: relay?.socketPath,
    async close() {
      await relay?.close();
      extra?.close();
      await dtls?.close();
      await coap.close().catch(() => undefined);
      await pool.close();
      http?.close();
      await transport.close();
      await card.close();
    },
  };
}

/** Ready-to-paste libcoap client commands (certificate; PSK when `psk` is given). */
export function coapClientCommands(caPath: string, url: string, psk?: { identity: string; key: string }): string[] {
  const c = `coap-client-openssl -B 5 -C ${caPath}`;
  const out = [
    `${c} -m get ${url}/status`,
    `${c} -m put -e on ${url}/relay`,
    `${c} -s 5 -w -m get ${url}/power`,
    `${c} -b 1024 -o blob.bin -m get ${url}/blob && sha256sum blob.bin`,
    `${c} -m get ${url}/.well-known/core`,
  ];
  if (psk) out.push(`coap-client-openssl -B 5 -u ${psk.identity} -k ${psk.key} -m get ${url}/status`);
  return out;
}

/**
 * The lines `serve coap` prints when the card's ALPN policy lacks "coap" (libcoap's certificate
 * clients offer only "coap": coaps+tcp fails with no_application_protocol): the fix, and whether this
 * server must be restarted for it (only when it has no admin socket for the command to go through).
 */
export function coapAlpnHint(alpn: readonly string[] | undefined, cardDir: string, adminSocket: boolean): string[] {
  if (!alpn || alpn.length === 0 || alpn.includes(COAP_ALPN)) return [];
  const fix = `setls card policy --card-dir ${cardDir} --alpn ${[...alpn, COAP_ALPN].join(',')}`;
  return [
    `  note: the card's ALPN policy is ${alpn.join(',')}; coaps+tcp clients offering only "coap" (libcoap with certificates) are refused (no_application_protocol).`,
    adminSocket
      ? `        fix: ${fix}   (applies to this running server through its admin socket; no restart needed)`
      : `        fix: stop this server, run ${fix}, then restart setls serve coap (the card folder is this server's while it runs)`,
  ];
}

export async function runServeCoap(o: ServeCoapOptions): Promise<void> {
  const running = await startCoap(o, cliLogger(logFormat(o.logFormat)));
  const ca = cardPaths(o.cardDir).caDir + '/ca.crt';
  if (running.httpsPort !== undefined) {
    console.log(`setls: serving HTTPS through the card at https://localhost:${running.httpsPort}/`);
    console.log(`  try: curl --cacert ${ca} https://localhost:${running.httpsPort}/status`);
  }
  const psk = o.demoPsk ? { identity: DEMO_PSK_IDENTITY, key: demoPskKey(o.cardDir) } : undefined;
  console.log(`setls: serving CoAP over TLS through the card at ${running.url} (TCP)`);
  for (const line of coapAlpnHint(running.alpn, o.cardDir, running.adminSocket !== undefined)) console.log(line);
  if (running.adminSocket) console.log(`  admin socket: ${running.adminSocket} (setls card … commands on this card go through this process)`);
  for (const cmd of coapClientCommands(ca, running.url, psk)) console.log(`  try: ${cmd}`);
  if (running.dtlsPort !== undefined) {
    const udp = `coaps://127.0.0.1:${running.dtlsPort}`;
    console.log(`setls: serving CoAP over DTLS through the card at ${udp} (UDP; DTLS handshake and records in the card)`);
    for (const cmd of coapClientCommands(ca, udp, psk)) console.log(`  try: ${cmd}`);
  }
  console.log(stopHint());
  stopOnSignals(() => running.close());
}
