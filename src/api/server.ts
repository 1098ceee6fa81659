/**
 * `createServer(options, handler)`: node:https's shape over a card. The returned SetlsServer IS a
 * node:http Server (Express, Fastify and Koa take it as they take https.Server) whose connections
 * come from a TlsPool — one card or several, each card's logical channels its slots (as `setls serve
 * https`: concurrent clients handshake on different channels) — instead of an OpenSSL context:
 *
 *   const server = createServer({ cardDir: '.setls/card' }, app);
 *   server.listen(8443, '127.0.0.1', () => console.log(server.address()));
 *
 * listen() opens the card(s) (taking the folder lock), reads the PIN (api/pin.ts), runs SELECT +
 * VERIFY and binds the port; any failure — a busy port (EADDRINUSE), a missing PIN, a locked folder,
 * a wrong PIN — is emitted as 'error' and everything opened so far is closed again, so listen() may
 * be called again. close() stops listening, ends the sessions (close_notify) and closes the cards.
 *
 * Events: 'listening', 'error', 'close', 'request' (node:http), 'secureConnection' (SeTlsSocket),
 * 'tlsClientError' (err, { remoteAddress, remotePort }): a client's handshake or session failed;
 * 'cardError' (err): the card(s) misbehaved (the tandem recovers); 'refused' (peer): backlog full.
 * imports host/, servers/https, transport/, cli/ (card files, admin socket, serving channels) and api/.
 */
import http from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { SetlsError } from '../bytes/index.js';
import { TlsPool, TlsTandem, PcscTransport, TracingTransport, type CardTransport, type PeerInfo, type SeTlsSocket } from '../host/index.js';
import { onClientError } from '../servers/https/index.js';
import { openCard as openCardFolder } from '../cli/card-setup.js';
import { startAdminSocket } from '../cli/admin-access.js';
import { servingChannels } from '../cli/serve-pressure.js';
import { resolvePin } from './pin.js';
import { listenAndRoute } from './listen.js';

/** One card: a folder (emulated, in this process), a PC/SC reader, or a transport you made. */
export interface CardSource {
  /** An emulated card folder (`setls card init`): its PIN file `<cardDir>.pin`, master key `<cardDir>.key`. */
  readonly cardDir?: string;
  /** The master key file of `cardDir` (default `<cardDir>.key`). */
  readonly cardKey?: string;
  /** A PC/SC reader name (or prefix), through pcscd; e.g. "Virtual PCD 00 00". */
  readonly reader?: string;
  /** PC/SC share mode (default 'auto': exclusive). */
  readonly pcscShare?: 'auto' | 'shared' | 'exclusive';
  /** Any CardTransport (e.g. openCard().transport); you close it. */
  readonly transport?: CardTransport;
  /** The user PIN. Default: `<cardDir>.pin` or SETLS_PIN (docs/api.md "The PIN"). */
  readonly pin?: string;
  /** A PIN file; named explicitly it wins over SETLS_PIN. */
  readonly pinFile?: string;
}

export interface ServerOptions extends http.ServerOptions, CardSource {
  /** Several cards behind one listener (a TlsPool): folders, or CardSources. */
  readonly cards?: readonly (string | CardSource)[];
  /** The card identity to serve (SET-IDENTITY; default: the card's, or by SNI). */
  readonly identity?: string;
  /**
   * Complete ClientHellos queued for the card beyond the active session(s); beyond it, or when the
   * queue cannot drain within the handshake deadline, a plaintext internal_error alert ('refused').
   * Default 1024 (the tandem's).
   */
  readonly backlog?: number;
  /** A client must finish its handshake within this (ms). Default 10000. */
  readonly handshakeTimeoutMs?: number;
  /** An idle session is closed (close_notify) after this (ms). Default 30000. */
  readonly idleTimeoutMs?: number;
  /** … or after this when other clients wait for the card (ms). Default 1000. */
  readonly busyIdleTimeoutMs?: number;
  /** TLS-Tandem: records protected in the card (default) or on the host after EXPORT-SESSION. */
  readonly recordLayer?: 'card' | 'host';
  /** Applet protocol: 'eap' (setls applet, default) or 'tls-se' (draft-urien-tls-se). */
  readonly driver?: 'eap' | 'tls-se';
  /** Logical channels used per card (default: every channel the first card opens, less its admin socket's). */
  readonly channelsPerCard?: number;
  /** Print every APDU as annotated hex (PINs and keys redacted): true for stderr, or a sink. */
  readonly trace?: boolean | ((line: string) => void);
  /**
   * Offer `<cardDir>/admin.sock` so `setls card …` commands reach the served card (needs the
   * operator PIN file `<cardDir>.admin.json`; docs/architecture.md). Default true for card folders.
   */
  readonly adminSocket?: boolean;
  /** Warnings (an explicit PIN file overriding SETLS_PIN, no admin socket). Default: emitted as 'warning'. */
  readonly log?: (message: string) => void;
}

type RequestListener = http.RequestListener;

/** What listen() opened, closed again by close() (or by a failed listen). */
interface Opened {
  readonly source: TlsTandem | TlsPool;
  readonly listener: NetServer;
  readonly closers: (() => Promise<void> | void)[];
}

const SERVER_KEYS = new Set([
  'cardDir', 'cardKey', 'reader', 'pcscShare', 'transport', 'pin', 'pinFile', 'cards', 'identity', 'backlog', 'handshakeTimeoutMs',
  'idleTimeoutMs', 'busyIdleTimeoutMs', 'recordLayer', 'driver', 'channelsPerCard', 'trace', 'adminSocket', 'log',
]);

function httpOptions(o: ServerOptions): http.ServerOptions {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (!SERVER_KEYS.has(k)) out[k] = v;
  return out as http.ServerOptions;
}

function checkSource(s: CardSource, where: string): void {
  const kinds = [s.cardDir !== undefined && s.reader === undefined, s.reader !== undefined, s.transport !== undefined].filter(Boolean).length;
  if (kinds === 0) throw new TypeError(`${where}: name the card: { cardDir }, { reader }, { transport } (or { cards: [...] })`);
  if (s.transport !== undefined && (s.cardDir !== undefined || s.reader !== undefined)) throw new TypeError(`${where}: give { transport } alone, not with cardDir or reader`);
  if (s.cardDir !== undefined && typeof s.cardDir !== 'string') throw new TypeError(`${where}: cardDir must be a string`);
}

/** node's listen() arguments: (port?, host?, backlog?, cb?) or (options, cb?). */
function listenArgs(args: unknown[]): { port: number; host: string | undefined; cb: (() => void) | undefined } {
  const cb = typeof args[args.length - 1] === 'function' ? (args.pop() as () => void) : undefined;
  const [a, b] = args;
  if (a !== null && typeof a === 'object') {
    const o = a as { port?: unknown; host?: unknown; path?: unknown };
    if (o.path !== undefined) throw new TypeError('listen: a setls server listens on TCP ports, not paths');
    return { port: o.port === undefined ? 0 : Number(o.port), host: typeof o.host === 'string' ? o.host : undefined, cb };
  }
  if (typeof a === 'string' && !/^\d+$/.test(a)) throw new TypeError('listen: a setls server listens on TCP ports, not paths');
  return { port: a === undefined || a === null ? 0 : Number(a), host: typeof b === 'string' ? b : undefined, cb };
}

export class SetlsServer extends http.Server {
  readonly setlsOptions: ServerOptions;
  private opened: Opened | undefined;
  private opening: Promise<void> | undefined;
  private closeRequested = false;

  constructor(options: ServerOptions, handler?: RequestListener) {
    if (!options || typeof options !== 'object') throw new TypeError('createServer needs options naming the card: { cardDir } | { reader } | { cards } | { transport }');
    if (options.cards !== undefined) {
      if (!Array.isArray(options.cards) || options.cards.length === 0) throw new TypeError('cards must be a non-empty array');
      options.cards.forEach((c, i) => checkSource(typeof c === 'string' ? { cardDir: c } : c, `cards[${i}]`));
    } else checkSource(options, 'createServer');
    super(httpOptions(options), handler);
    this.setlsOptions = options;
    // As servers/https: a slow client cannot hold the card forever; node:http's parse errors are
    // answered, then close_notify.
    if (options.keepAliveTimeout === undefined) this.keepAliveTimeout = 5000;
    if (options.headersTimeout === undefined) this.headersTimeout = 10_000;
    if (options.requestTimeout === undefined) this.requestTimeout = 60_000;
    this.on('clientError', onClientError);
  }

  /** listen(port[, host][, backlog][, cb]) or listen({ port, host }[, cb]); errors are emitted as 'error'. */
  override listen(...args: unknown[]): this {
    const { port, host, cb } = listenArgs(args);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`listen: port must be 0..65535, got ${String(args[0])}`);
    if (this.opened || this.opening) {
      throw new SetlsError('ERR_SERVER_ALREADY_LISTEN', 'listen was already called');
    }
    if (cb) this.once('listening', cb);
    this.closeRequested = false;
    this.opening = this.open(port, host).then(
      () => {
        this.opening = undefined;
      },
      (err: unknown) => {
        this.opening = undefined;
        this.emit('error', err);
      },
    );
    return this;
  }

  /** The bound address (as net.Server.address()), or null when not listening. */
  override address(): AddressInfo | string | null {
    return this.opened?.listener.address() ?? null;
  }

  /**
   * Stops listening, ends every session (close_notify through the card), closes the card(s); then
   * 'close' and `cb()`. Not listening: `cb` gets ERR_SERVER_NOT_RUNNING, as node's.
   */
  override close(cb?: (err?: Error) => void): this {
    this.closeRequested = true;
    this.closeIdleConnections();
    const pending = this.opening ?? Promise.resolve();
    void pending.then(async () => {
      const o = this.opened;
      this.opened = undefined;
      if (!o) {
        const e = new SetlsError('ERR_SERVER_NOT_RUNNING', 'Server is not running.');
        if (cb) this.once('close', () => cb(e));
        this.emit('close');
        return;
      }
      let err: Error | undefined;
      try {
        await this.shutdown(o);
      } catch (e) {
        err = e as Error;
      }
      if (cb) this.once('close', () => cb(err));
      this.emit('close');
    });
    return this;
  }

  override ref(): this {
    this.opened?.listener.ref();
    return this;
  }

  override unref(): this {
    this.opened?.listener.unref();
    return this;
  }

  /** The tandem (one card) or pool (several) serving this server, while listening: the lower layer. */
  get tandem(): TlsTandem | TlsPool | undefined {
    return this.opened?.source;
  }

  private warn(message: string): void {
    if (this.setlsOptions.log) this.setlsOptions.log(message);
    else this.emit('warning', message);
  }

  /** Opens one card: its transport, PIN and what closes it. */
  private async openSource(s: CardSource, closers: (() => Promise<void> | void)[]): Promise<{ transport: CardTransport; pin: string; cardDir?: string }> {
    const o = this.setlsOptions;
    const pin = resolvePin(s, { warn: (m) => this.warn(m), pinFileName: 'pinFile' }).pin;
    let transport: CardTransport;
    if (s.transport !== undefined) {
      transport = s.transport; // the caller's: the caller closes it
    } else if (s.reader !== undefined) {
      const t = await PcscTransport.open({ reader: s.reader, waitForCardMs: 10_000, ...(s.pcscShare ? { share: s.pcscShare } : {}) });
      closers.push(() => t.close());
      transport = t;
    } else {
      const { transport: t, card } = openCardFolder({ cardDir: s.cardDir!, cardKey: s.cardKey });
      closers.push(async () => {
        await t.close();
        card.close();
      });
      transport = t;
    }
    if (o.trace) transport = new TracingTransport(transport, typeof o.trace === 'function' ? o.trace : (l) => process.stderr.write(l + '\n'));
    return { transport, pin, ...(s.reader === undefined && s.cardDir !== undefined ? { cardDir: s.cardDir } : {}) };
  }

  private async open(port: number, host: string | undefined): Promise<void> {
    const o = this.setlsOptions;
    const closers: (() => Promise<void> | void)[] = [];
    const cleanup = async (): Promise<void> => {
      for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => undefined);
    };
    try {
      const sources = o.cards ? o.cards.map((c) => (typeof c === 'string' ? { cardDir: c } : c)) : [o];
      const cards = [];
      for (const s of sources) cards.push(await this.openSource(s, closers));
      const common = {
        ...(o.backlog !== undefined ? { backlog: o.backlog } : {}),
        ...(o.identity !== undefined ? { identity: o.identity } : {}),
        ...(o.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: o.handshakeTimeoutMs } : {}),
        ...(o.idleTimeoutMs !== undefined ? { idleTimeoutMs: o.idleTimeoutMs } : {}),
        ...(o.busyIdleTimeoutMs !== undefined ? { busyIdleTimeoutMs: o.busyIdleTimeoutMs } : {}),
        ...(o.recordLayer !== undefined ? { recordLayer: o.recordLayer } : {}),
        ...(o.driver !== undefined ? { driver: o.driver } : {}),
      };
      // As `setls serve https`: one card too is a pool, its logical channels the slots — every channel
      // the (first) card opens, less the one its admin socket keeps (a folder with an admin file),
      // unless channelsPerCard says how many.
      const first = cards[0]!;
      const channelsPerCard =
        o.channelsPerCard ??
        (await servingChannels(first.transport, { inProcess: first.cardDir !== undefined && o.adminSocket !== false, ...(first.cardDir !== undefined ? { cardDir: first.cardDir } : {}) }));
      const source: TlsPool = new TlsPool({ ...common, transports: cards.map((c) => c.transport), pins: cards.map((c) => c.pin), channelsPerCard });
      closers.push(() => source.close());
      await source.start();
      if (o.adminSocket !== false) {
        for (const c of cards) {
          if (c.cardDir === undefined) continue;
          const relay = await startAdminSocket(c.cardDir, c.transport, (l) => (o.adminSocket === true ? this.warn(l) : undefined));
          if (relay) closers.push(() => relay.close());
        }
      }
      if (this.closeRequested) throw new SetlsError('ERR_SERVER_CLOSED', 'close() was called before the server was listening');
      source.on('refused', (peer: PeerInfo) => this.emit('refused', peer));
      source.on('secureConnection', (socket: SeTlsSocket) => {
        this.emit('secureConnection', socket);
        this.emit('connection', socket);
      });
      const listener = await listenAndRoute(source, port, host, this);
      this.opened = { source, listener, closers };
    } catch (e) {
      await cleanup();
      throw e;
    }
    this.emit('listening');
  }

  private async shutdown(o: Opened): Promise<void> {
    for (const c of o.closers.reverse()) await c();
  }
}

Object.defineProperty(SetlsServer.prototype, 'listening', {
  configurable: true,
  enumerable: false,
  get(this: SetlsServer): boolean {
    return this.address() !== null;
  },
});

/** node:https's createServer over a card: see SetlsServer. */
export function createServer(options: ServerOptions, handler?: RequestListener): SetlsServer {
  return new SetlsServer(options, handler);
}
