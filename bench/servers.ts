/**
 * The servers under test, all in the bench's own process (one is loaded at a time, so the
 * process's CPU delta over a batch belongs to that server):
 *   - setls: the emulated card opened with openCard(), a TlsTandem over a CountingTransport, and
 *     the demo plug served by serveHttps() — the same wiring as `startHttps` (src/cli/serve.ts),
 *     built here because startHttps takes no transport wrapper and no `extendedApdu`. Two variants
 *     share the one card: extended APDUs (the in-process default) and short APDUs.
 *   - node:tls: https.createServer with a P-256 key and a certificate issued by the same local CA,
 *     the same suite, group and signature scheme, the same demo plug handler.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { webcrypto, X509Certificate } from 'node:crypto';
import https from 'node:https';
import type { Server as HttpServer } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import * as x509 from '@peculiar/x509';
import pino from 'pino';
import { TlsPool, TlsTandem, type SessionEvent } from '../src/host/index.js';
import { serveHttps, createPlugHandler, createPlugState } from '../src/servers/https/index.js';
import { openCard } from '../src/cli/card-setup.js';
import { cardPaths, cloneCardFiles, readPin } from '../src/cli/card-files.js';
import { openLocalCa } from '../src/pki/local-ca.js';
import { FaultyTransport } from '../src/transport/faulty.js';
import { CardClient } from '../src/host/card-client.js';
import { readOperatorPin } from '../src/cli/card-setup.js';
import { startHttps } from '../src/cli/serve.js';
import { openCardThread } from '../src/cli/card-thread.js';
import { CountingTransport, type ApduCounts, type FlightTally } from './counting-transport.js';
import { PINNED, PINNED12 } from './protocol.js';

export interface ServerUnderTest {
  readonly name: string;
  readonly port: number;
  /** Resolves once the server holds no connection and no card session (after a batch). */
  idle(): Promise<void>;
  /** Errors the server reported (sessionError / tlsClientError) since start. */
  errors(): readonly string[];
  /** APDU counts so far (setls only). */
  apdus?(): ApduCounts;
  /** Handshake flights so far (setls only). */
  flights?(): FlightTally;
  /** Card time modelled by the 'real-card' latency profile so far, ms (setls only; nothing slept). */
  modelledMs?(): number;
  /** CPU spent inside the emulated card's process() so far, µs (setls in-process only). */
  cardCpuUs?(): number;
  /**
   * Every card call so far, in order: its command class (INS, P1 flags, P2) and wall time, µs
   * (setls in-process only; a batch takes the calls between two lengths).
   */
  cardCalls?(): readonly CardCall[];
  /** Sessions the server holds right now (connections; setls pool: busy slots + exported sessions). */
  sessions?(): Promise<number>;
  close(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(1);
  }
}

/** The counting transports alive, to follow the tandems' session phases. */
const counters = new Set<CountingTransport>();
let subscribed = false;

function followPhases(): void {
  if (subscribed) return;
  subscribed = true;
  diagnostics_channel.subscribe('setls:session', (msg) => {
    const ev = (msg as SessionEvent).event;
    const phase = ev === 'handshake' ? 'handshake' : ev === 'established' ? 'data' : ev === 'closed' || ev === 'failed' ? 'teardown' : undefined;
    if (phase) for (const c of counters) c.phase = phase;
  });
}

export interface CardCall {
  readonly cls: string;
  readonly us: number;
}

export interface SetlsCard {
  readonly variants: ServerUnderTest[];
  close(): Promise<void>;
}

/** Opens the card once and serves it through one tandem per APDU flavour. */
export interface SetlsFlavour {
  readonly name: string;
  readonly extendedApdu: boolean;
  /** TLS-Tandem: 'host' = EXPORT-SESSION after the handshake (the identity must allow export). */
  readonly recordLayer?: 'card' | 'host';
  /**
   * Wrap the transport in the bench's APDU counter and 'real-card' latency model (default true).
   * false: the tandem sits straight on the in-process transport, as in `serve https` — what a CPU
   * measurement of the host should see (the wrappers are two async layers per APDU of bench code).
   */
  readonly instrumented?: boolean;
}

/** Sets the default identity's export policy (TLS-Tandem) through APDUs, operator PIN verified. */
export async function setExportAllowed(cardDir: string, exportAllowed: boolean): Promise<void> {
  const { transport, card } = openCard({ cardDir });
  try {
    const c = new CardClient(transport);
    await c.select();
    await c.verifyPin(readOperatorPin(cardPaths(cardDir)), 'operator');
    await c.putIdentityPolicy({ label: 'default', exportAllowed });
  } finally {
    await transport.close();
    card.close();
  }
}

export async function startSetls(cardDir: string, flavours: readonly SetlsFlavour[]): Promise<SetlsCard> {
  followPhases();
  const log = pino({ level: 'silent' });
  const pin = readPin(cardPaths(cardDir).pinFile);
  const { transport, card } = openCard({ cardDir });
  // The card runs synchronously inside process(), on this thread: its CPU is the wall time of each
  // call (performance.now(), a clock read without a system call). process.cpuUsage() around each call,
  // as before, cost a getrusage() per read, 8 per handshake, 50–190 µs per handshake in a profile of
  // this server: the measurement inflated what it measured. Wall time counts any preemption of this
  // thread during a call as card time, so the host share is if anything understated.
  let cardCpuUs = 0;
  const cardCalls: CardCall[] = [];
  const cardProcess = card.process.bind(card);
  card.process = (apdu: Uint8Array): Uint8Array => {
    const t0 = performance.now();
    try {
      return cardProcess(apdu);
    } finally {
      const us = (performance.now() - t0) * 1000;
      cardCpuUs += us;
      // the class of command: a GC pause that lands in one call shows as an outlier of its class
      if (cardCalls.length < 4_000_000) cardCalls.push({ cls: `${apdu[1]}:${(apdu[2] ?? 0) & 0xfe}:${apdu[3]}`, us });
    }
  };
  const variants: ServerUnderTest[] = [];
  const closers: (() => Promise<void>)[] = [];
  for (const f of flavours) {
    // The 'real-card' latency profile in accounting mode (sleep: false): nothing waits, modelledMs
    // adds up what a real card would have taken (30–80 ms per APDU, +900 ms on the ECDHE/sign APDU).
    const instrumented = f.instrumented ?? true;
    const model = new FaultyTransport(transport, { latency: 'real-card', sleep: false });
    const counting = new CountingTransport(model);
    if (instrumented) counters.add(counting);
    const tandem = new TlsTandem({ transport: instrumented ? counting : transport, pin, backlog: 8, extendedApdu: f.extendedApdu, ...(f.recordLayer ? { recordLayer: f.recordLayer } : {}) });
    await tandem.start();
    const errs: string[] = [];
    tandem.on('sessionError', (err: Error & { code?: string }) => {
      errs.push(err.code ?? err.message);
      log.info({ code: err.code, err: err.message }, 'session ended with an error');
    });
    const http = serveHttps(tandem, createPlugHandler(createPlugState()));
    const server = tandem.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    counting.phase = 'setup';
    const close = async (): Promise<void> => {
      await tandem.close();
      http.close();
      counters.delete(counting);
    };
    closers.push(close);
    variants.push({
      name: f.name,
      port,
      idle: () => waitFor(() => !tandem.inUse && tandem.queued === 0, `${f.name} to free the card`),
      errors: () => errs,
      ...(instrumented ? { apdus: () => counting.snapshot(), flights: () => counting.flightSnapshot(), modelledMs: () => model.modelledMs } : {}),
      cardCpuUs: () => cardCpuUs,
      cardCalls: () => cardCalls,
      close,
    });
  }
  return {
    variants,
    async close() {
      for (const c of closers) await c();
      await transport.close();
      card.close();
    },
  };
}

/** CPU of one thread of this process so far, µs (Linux /proc/self/task/<tid>/schedstat); undefined when unknown. */
function threadCpuUs(tid: number | undefined): number | undefined {
  if (tid === undefined) return undefined;
  try {
    return Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1000;
  } catch {
    return undefined;
  }
}

/**
 * `serve https --card-thread` as the bench runs it: a clone of the card folder (`<dir>-thread`, same
 * identity) opened in a worker thread of its own (cli/card-thread.ts), one tandem straight on its
 * transport (no bench wrappers). The card's CPU is its thread's (Linux schedstat; elsewhere not
 * known: NaN): what this process spends besides is the host's, and the card's
 * garbage is collected on the card's heap, not the host's (the parallel part of its scavenges runs
 * on V8's shared helper threads and still counts as host).
 */
export async function startSetlsThread(name: string, cardDir: string): Promise<ServerUnderTest> {
  const dir = `${cardPaths(cardDir).dir}-thread`;
  cloneCardFiles(cardPaths(cardDir), cardPaths(dir));
  const pin = readPin(cardPaths(dir).pinFile);
  const card = await openCardThread({ cardDir: dir });
  const tandem = new TlsTandem({ transport: card.transport, pin, backlog: 8, extendedApdu: true });
  try {
    await tandem.start();
  } catch (e) {
    await card.close();
    throw e;
  }
  const errs: string[] = [];
  tandem.on('sessionError', (err: Error & { code?: string }) => errs.push(err.code ?? err.message));
  const http = serveHttps(tandem, createPlugHandler(createPlugState()));
  const server = tandem.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    port,
    idle: () => waitFor(() => !tandem.inUse && tandem.queued === 0, `${name} to free the card`),
    errors: () => errs,
    cardCpuUs: () => threadCpuUs(card.osThreadId) ?? Number.NaN,
    async close() {
      await tandem.close();
      http.close();
      await card.close();
    },
  };
}

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** A P-256 key made here and a leaf for it from the card's local CA (same names as the card's). */
export async function makeNodeIdentity(caDir: string): Promise<{ key: string; cert: string }> {
  const ca = await openLocalCa(caDir);
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=localhost',
    keys,
    signingAlgorithm: EC,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'localhost' }, { type: 'ip', value: '127.0.0.1' }])],
  });
  const leaf = await ca.sign(new Uint8Array(csr.rawData), { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { key: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'), cert: new X509Certificate(leaf).toString() };
}

export async function startNodeTls(name: string, id: { key: string; cert: string }, opts: { keepAliveTimeoutMs?: number } = {}): Promise<ServerUnderTest> {
  const errs: string[] = [];
  const server: HttpServer = https.createServer(
    {
      key: id.key,
      cert: id.cert,
      // TLS 1.2 allowed too (the 1.2 runs); each client pins its version and suite.
      minVersion: 'TLSv1.2',
      maxVersion: PINNED.maxVersion,
      ciphers: `${PINNED.ciphers}:${PINNED12.ciphers}`,
      ecdhCurve: PINNED.ecdhCurve,
      sigalgs: PINNED.sigalgs,
      ALPNProtocols: [PINNED.alpn],
    },
    createPlugHandler(createPlugState()),
  );
  // The same HTTP timeouts as serveHttps().
  server.keepAliveTimeout = opts.keepAliveTimeoutMs ?? 5000;
  server.headersTimeout = 10000;
  server.requestTimeout = 60000;
  server.on('tlsClientError', (e: Error & { code?: string }) => errs.push(e.code ?? e.message));
  return listening(name, server, errs, async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
}

/** Listens on a free port of 127.0.0.1; idle once the server holds no connection. */
async function listening(name: string, server: net.Server, errs: readonly string[], close: () => Promise<void>): Promise<ServerUnderTest> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const connections = (): Promise<number> => new Promise((r, j) => server.getConnections((e, n) => (e ? j(e) : r(n))));
  return {
    name,
    port,
    idle: () => waitFor(async () => (await connections()) === 0, `${name} to drop its connections`),
    errors: () => errs,
    sessions: connections,
    close,
  };
}

/**
 * The socket floor under any Node server (issue #14, host CPU): a plain node:net server that plays
 * the server's side of `flights` (client first, alternating: after each client flight has arrived
 * whole, writes the next server flight; after the client's FIN, its last flight and FIN), with
 * bytes only, no TLS, no HTTP. The same accept, reads, writes and close as a server of that
 * exchange; what a connection costs it is what the sockets alone cost a Node server.
 */
export async function startReplayFloor(name: string, flights: readonly number[]): Promise<ServerUnderTest> {
  if (flights.length < 2 || flights.length % 2 !== 0) throw new Error('replay floor: an even number of flights');
  const errs: string[] = [];
  const out = flights.map((n, i) => (i % 2 === 1 ? Buffer.alloc(n, 0x17) : Buffer.alloc(0)));
  const last = flights.length - 2;
  const server = net.createServer((s) => {
    let step = 0;
    let got = 0;
    s.on('data', (d: Buffer) => {
      got += d.length;
      while (step < last && got >= flights[step]!) {
        got -= flights[step]!;
        s.write(out[step + 1]!);
        step += 2;
      }
    });
    s.on('end', () => {
      if (step !== last || got !== flights[last]) errs.push(`client ended at flight ${step / 2} with ${got} bytes`);
      s.end(out[last + 1]!);
    });
    s.on('error', (e) => errs.push(e.message));
  });
  return listening(name, server, errs, () => new Promise<void>((r) => server.close(() => r())));
}

/** A TlsPool of `cards` clones of the card (startHttps --pool: same identity), backlog as given. */
export async function startSetlsPool(name: string, cardDir: string, cards: number, backlog: number, recordLayer: 'card' | 'host' = 'card'): Promise<ServerUnderTest> {
  const errs: string[] = [];
  // The pool's own copy of the card (the single-card variants keep theirs open): <dir>-p, then
  // startHttps clones it to <dir>-p-pool1… (same identity, same ticket key).
  const src = cardPaths(cardDir);
  const copy = cardPaths(`${src.dir}-p`);
  cloneCardFiles(src, copy);
  const running = await startHttps(
    { cardDir: copy.dir, pool: cards, backlog, port: 0, host: '127.0.0.1', recordLayer },
    pino({ level: 'silent' }),
  );
  const pool = running.pool!;
  pool.on('sessionError', (err: Error & { code?: string }) => errs.push(err.code ?? err.message));
  pool.on('refused', () => errs.push('refused (backlog full)'));
  return {
    name,
    port: running.port,
    idle: () => waitFor(() => pool.slots.every((sl) => !sl.busy && !sl.tandem.inUse && sl.tandem.queued === 0 && sl.tandem.exportedSessions === 0), `${name} to free its cards`, 120_000),
    errors: () => errs,
    close: () => running.close(),
  };
}

export interface ChannelPoolOptions {
  readonly cards: number;
  /** Logical channels per card (the emulated card keeps at most 4 by default). */
  readonly channelsPerCard: number;
  readonly backlog: number;
  readonly recordLayer: 'card' | 'host';
  /** Clones of the card go to <cardDir>-<tag>0…: each pool its own state folders. */
  readonly tag: string;
  /** node:http keep-alive and the tandems' idle deadline (close_notify), ms. */
  readonly keepAliveTimeoutMs?: number;
}

/**
 * A TlsPool of `cards` clones of the card × `channelsPerCard` logical channels (slots), built here
 * (startHttps has no channelsPerCard): the same TlsPool + serveHttps wiring as `serve https --pool`.
 * With recordLayer 'host' the identity must allow export (setExportAllowed before cloning).
 */
export async function startSetlsChannelPool(name: string, cardDir: string, o: ChannelPoolOptions): Promise<ServerUnderTest & { readonly slots: number }> {
  const errs: string[] = [];
  const dirs = Array.from({ length: o.cards }, (_, i) => `${cardPaths(cardDir).dir}-${o.tag}${i}`);
  for (const d of dirs) cloneCardFiles(cardPaths(cardDir), cardPaths(d));
  const opened = dirs.map((d) => openCard({ cardDir: d }));
  const closeCards = async (): Promise<void> => {
    for (const c of opened) {
      await c.transport.close();
      c.card.close();
    }
  };
  const keepAlive = o.keepAliveTimeoutMs ?? 5000;
  const pool = new TlsPool({
    transports: opened.map((c) => c.transport),
    pins: dirs.map((d) => readPin(cardPaths(d).pinFile)),
    names: dirs.map((_, i) => `card${i}`),
    backlog: o.backlog,
    channelsPerCard: o.channelsPerCard,
    recordLayer: o.recordLayer,
    idleTimeoutMs: Math.max(30_000, keepAlive),
  });
  try {
    await pool.start();
  } catch (e) {
    await closeCards();
    throw e;
  }
  pool.on('sessionError', (err: Error & { code?: string }) => errs.push(err.code ?? err.message));
  pool.on('refused', () => errs.push('refused (backlog full)'));
  const http = serveHttps(pool, createPlugHandler(createPlugState()), { keepAliveTimeoutMs: keepAlive });
  const server = pool.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    port,
    slots: pool.slots.length,
    idle: () => waitFor(() => pool.slots.every((sl) => !sl.busy && !sl.tandem.inUse && sl.tandem.queued === 0 && sl.tandem.exportedSessions === 0), `${name} to free its cards`, 120_000),
    errors: () => errs,
    sessions: async () => pool.slots.reduce((a, sl) => a + (sl.busy ? 1 : 0) + sl.tandem.exportedSessions, 0),
    async close() {
      await pool.close();
      http.close();
      await closeCards();
    },
  };
}
