/**
 * `setls serve https`: opens the card (taking its folder lock), schedules its logical channels with a
 * TlsPool (one TlsTandem per channel; serve-pressure.ts: all channels, the hold limit, per-peer
 * bounds) and serves the demo plug through node:http; offers the admin socket (admin-access.ts) so administrative
 * commands reach this process's card. With `--record-layer host` it first checks that every
 * identity's policy allows session export, and refuses to start with the fix otherwise. Prints the
 * URL once listening; stops cleanly on SIGINT/SIGTERM. With `--operator URL` it also runs the
 * device agent (cli/agent.ts) on the same transport(s), on logical channels of its own.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { CardClient, TlsTandem, TlsPool, PcscTransport, TracingTransport, createMetrics, startAdminServer, type CardTransport } from '../host/index.js';
import { SetlsError } from '../bytes/index.js';
import type { AdminRelay } from '../transport/admin-relay.js';
import { startAdminSocket } from './admin-access.js';
import { estEnrolCard, startAgent, type AgentCliOptions } from './agent.js';
import type { DeviceAgent } from '../agent/index.js';
import { serveHttps, createPlugHandler, createPlugState } from '../servers/https/index.js';
import { openCard, openCardFolder, type OpenedCardFolder } from './card-setup.js';
import { cardPaths, cloneCardFiles } from './card-files.js';
import { resolvePin } from '../api/pin.js';
import { cliLogger, logFormat } from './log.js';
import { stopHint, stopOnSignals } from './stop.js';
import { logPoolEvents, poolPressureOptions, servingChannels, type PressureFlags } from './serve-pressure.js';
import { nativeSealStatus } from '../tls/record/native-seal.js';

export interface ServeHttpsOptions extends PressureFlags, AgentCliOptions {
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
  /** Each emulated card in a worker thread of its own (cli/card-thread.ts); not with --reader. */
  cardThread?: boolean;
  /** A pool: these card state folders (comma-separated), one TlsTandem slot each, behind one listener. */
  cards?: string;
  /** A pool of N cards made from --card-dir (cloned state folders <card-dir>-pool1…; same identity). */
  pool?: number;
  /** Prometheus /metrics on 127.0.0.1:<adminPort>. */
  adminPort?: number;
  /** Log format: json, pretty, auto (default: pretty on a terminal). */
  logFormat?: string;
}

/** The user PIN of a served card (api/pin.ts): --pin-file, <card-dir>.pin or SETLS_PIN. */
export function servePin(cardDir: string, pinFile: string | undefined, warn: (m: string) => void): string {
  return resolvePin({ cardDir, ...(pinFile !== undefined ? { pinFile } : {}) }, { warn, pinFileName: '--pin-file' }).pin;
}

/** Card folders of a pool: --cards, or --pool N clones of --card-dir (made once, then reused). */
export function poolCardDirs(o: ServeHttpsOptions): string[] {
  if (o.cards) return o.cards.split(',').map((d) => d.trim()).filter(Boolean);
  const n = o.pool ?? 1;
  const dirs = [o.cardDir];
  const src = cardPaths(o.cardDir, { cardKey: o.cardKey, pinFile: o.pinFile });
  for (let i = 1; i < n; i++) {
    const dir = `${src.dir}-pool${i}`;
    cloneCardFiles(src, cardPaths(dir));
    dirs.push(dir);
  }
  return dirs;
}

/**
 * `--record-layer host` needs EXPORT-SESSION, which each identity's policy must allow: refused at
 * start-up (with the fix) rather than failing every request later. `where` names the card in messages.
 */
export async function checkExportAllowed(transport: CardTransport, cardDir: string): Promise<void> {
  const client = new CardClient(transport);
  await client.select();
  const info = await client.cardInfo();
  const forbidden: string[] = [];
  for (const label of info.identities) {
    const id = await client.identityInfo(label);
    if (id.certificates.length > 0 && id.exportAllowed !== true) forbidden.push(label);
  }
  if (forbidden.length === 0) return;
  const fixes = forbidden.map((l) => `setls card identity-policy --card-dir ${cardDir} --label ${l} --export on`);
  throw new SetlsError(
    'ERR_CLI_EXPORT_FORBIDDEN',
    `--record-layer host needs session export, but the card's policy forbids it for identit${forbidden.length === 1 ? 'y' : 'ies'} ${forbidden.map((l) => `'${l}'`).join(', ')} ` +
      `(every request would fail). Allow it with: ${fixes.join(' ; ')} — or serve with --record-layer card`,
  );
}

/** `--record-layer host`: says at start-up how the host will seal records (the native sealer, or node:crypto and why). */
export function logRecordSealer(log: pino.Logger): void {
  const s = nativeSealStatus();
  if (s.active) log.info({ sealer: 'native' }, 'exported records are sealed by the native sealer (native/setls_aead.c)');
  else log.info({ sealer: 'node:crypto', reason: s.reason }, `exported records are sealed with node:crypto: the native sealer is ${s.reason}`);
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
  /** The pool (--cards / --pool). */
  readonly pool?: TlsPool;
  /** The /metrics admin port (--admin-port). */
  readonly adminPort?: number;
  /** The admin sockets offered (one per in-process card). */
  readonly adminSockets: readonly string[];
  /** The device agent (--operator). */
  readonly agent?: DeviceAgent;
  close(): Promise<void>;
}

async function startHttpsPool(o: ServeHttpsOptions, log: pino.Logger): Promise<RunningHttps> {
  if (o.est && (o.cards !== undefined || (o.pool ?? 1) > 1)) throw new SetlsError('ERR_CLI_OPTION', '--est enrols one card: not with --cards or --pool (enrol each card with setls agent --est first)');
  const dirs = poolCardDirs(o);
  const pins = dirs.map((d) => servePin(d, d === o.cardDir ? o.pinFile : undefined, (m) => log.warn(m)));
  const opened: OpenedCardFolder[] = [];
  try {
    for (const d of dirs) opened.push(await openCardFolder({ ...o, cardDir: d, cardKey: d === o.cardDir ? o.cardKey : undefined, thread: o.cardThread }));
  } catch (e) {
    // one card of the pool is missing or held by another process: let go of the others' folders
    for (const c of opened) await c.close();
    throw e;
  }
  const relays: AdminRelay[] = [];
  let agent: DeviceAgent | undefined;
  const closeCards = async (): Promise<void> => {
    await agent?.stop();
    for (const r of relays) await r.close();
    for (const c of opened) {
      await c.transport.close();
      await c.close();
    }
  };
  let channelsPerCard: number;
  try {
    // Zero-touch enrolment before the TLS service takes the card's channels (--est, one card).
    if (o.est) await estEnrolCard(opened[0]!.transport, o, (l) => log.info(l));
    // every channel of the card(s) serves (the clones of --pool are alike; --cards: the first card decides)
    channelsPerCard = await servingChannels(opened[0]!.transport, { cardDir: dirs[0]!, inProcess: true, agent: o.operator !== undefined, ...(o.channels !== undefined ? { channels: o.channels } : {}) });
  } catch (e) {
    await closeCards();
    throw e;
  }
  const pool = new TlsPool({
    transports: opened.map((c) => c.transport),
    pins,
    names: dirs.map((_, i) => `card${i}`),
    channelsPerCard,
    ...poolPressureOptions(o),
    backlog: o.backlog,
    ...(o.driver ? { driver: o.driver } : {}),
    ...(o.recordLayer ? { recordLayer: o.recordLayer } : {}),
  });
  try {
    if (o.recordLayer === 'host') {
      for (let i = 0; i < opened.length; i++) await checkExportAllowed(opened[i]!.transport, dirs[i]!);
      logRecordSealer(log);
    }
    await pool.start();
    for (let i = 0; i < opened.length; i++) {
      const r = await startAdminSocket(dirs[i]!, opened[i]!.transport, (l) => log.warn(l));
      if (r) relays.push(r);
    }
    if (o.operator) agent = await startAgent(opened.map((c) => c.transport), o, (l) => log.info(l));
  } catch (e) {
    await closeCards();
    throw e;
  }
  logPoolEvents(pool, log);
  pool.on('health', (h: { name: string; health: string }) => log.warn(h, 'card health changed'));
  const metrics = createMetrics(pool);
  const admin = o.adminPort !== undefined ? await startAdminServer(metrics, o.adminPort) : undefined;
  const http = serveHttps(pool, createPlugHandler(createPlugState()));
  const server = pool.listen(o.port, o.host);
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([e]) => {
      throw e;
    }),
  ]);
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://localhost:${port}/`,
    port,
    tandem: pool.slots[0]!.tandem,
    pool,
    ...(admin ? { adminPort: admin.port } : {}),
    adminSockets: relays.map((r) => r.socketPath),
    ...(agent ? { agent } : {}),
    async close() {
      await pool.close();
      http.close();
      metrics.detach();
      await admin?.close();
      await closeCards();
    },
  };
}

export async function startHttps(o: ServeHttpsOptions, log = pino({ level: process.env.SETLS_LOG ?? 'info' }, pino.destination(2))): Promise<RunningHttps> {
  if (o.cardThread && o.reader !== undefined) throw new SetlsError('ERR_CLI_OPTION', '--card-thread runs an emulated card folder in a thread: not with --reader (a PC/SC card computes on its own chip)');
  // One in-process card is a pool of one card: its logical channels are the slots.
  if (o.reader === undefined) return startHttpsPool(o, log);
  const pin = servePin(o.cardDir, o.pinFile, (m) => log.warn(m));
  const { transport, closeCard } = await openServeCard(o);
  let tandem: TlsPool;
  let relay: AdminRelay | undefined;
  let agent: DeviceAgent | undefined;
  try {
    // Zero-touch enrolment before the TLS service takes the card's channel 0 (--est).
    await estEnrolCard(transport, o, (l) => log.info(l));
    tandem = new TlsPool({
      transports: [transport],
      pin,
      channelsPerCard: await servingChannels(transport, { inProcess: false, agent: o.operator !== undefined, ...(o.channels !== undefined ? { channels: o.channels } : {}) }),
      ...poolPressureOptions(o),
      backlog: o.backlog,
      ...(o.driver ? { driver: o.driver } : {}),
      ...(o.recordLayer ? { recordLayer: o.recordLayer } : {}),
    });
    if (o.recordLayer === 'host') {
      await checkExportAllowed(transport, o.cardDir);
      logRecordSealer(log);
    }
    await tandem.start();
    // Before the listener: the relay opens its logical channel while nothing else talks to the card.
    if (o.reader === undefined) relay = await startAdminSocket(o.cardDir, transport, (l) => log.warn(l));
    // The device agent too: its home channel is opened from channel 0 before the TLS service serves.
    if (o.operator) agent = await startAgent([transport], o, (l) => log.info(l));
  } catch (e) {
    await agent?.stop();
    await relay?.close();
    await transport.close();
    closeCard();
    throw e;
  }
  logPoolEvents(tandem, log);
  const metrics = createMetrics(tandem);
  const admin = o.adminPort !== undefined ? await startAdminServer(metrics, o.adminPort) : undefined;
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
    tandem: tandem.slots[0]!.tandem,
    pool: tandem,
    ...(admin ? { adminPort: admin.port } : {}),
    adminSockets: relay ? [relay.socketPath] : [],
    ...(agent ? { agent } : {}),
    async close() {
      await agent?.stop();
      await relay?.close();
      await tandem.close();
      http.close();
      metrics.detach();
      await admin?.close();
      await transport.close();
      closeCard();
    },
  };
}

export async function runServeHttps(o: ServeHttpsOptions): Promise<void> {
  const running = await startHttps(o, cliLogger(logFormat(o.logFormat)));
  const ca = cardPaths(o.cardDir).caDir + '/ca.crt';
  const cards = running.pool ? new Set(running.pool.slots.map((s) => s.card)).size : 1;
  const channels = running.pool?.channelsPerCard ?? 1;
  console.log(`setls: serving HTTPS through ${cards > 1 ? `a pool of ${cards} cards` : 'the card'} at ${running.url}`);
  console.log(`  card channels: ${channels} logical channel${channels === 1 ? '' : 's'}${cards > 1 ? ' per card' : ''} serve clients (--channels)`);
  if (running.adminPort !== undefined) console.log(`  metrics: http://127.0.0.1:${running.adminPort}/metrics`);
  for (const s of running.adminSockets) console.log(`  admin socket: ${s} (setls card … commands on this card go through this process)`);
  if (running.agent) console.log(`  device agent: polling ${o.operator} (admin scripts run on a logical channel of their own)`);
  console.log(`  try: curl --cacert ${ca} ${running.url}status`);
  console.log(stopHint());
  stopOnSignals(() => running.close());
}
