/**
 * `setls/coap`: a CoAP server in node-coap's request/response shape whose (D)TLS ends in the card.
 *
 *   import { createServer } from 'setls/coap';
 *   const server = createServer({ cardDir: '.setls/card' }, (req, res) => {
 *     // req.method, req.url, req.headers (Observe, Content-Format, …), req.payload
 *     res.code = '2.05'; res.setOption('Content-Format', 'text/plain'); res.end('hello');
 *   });
 *   server.listen(5684, '127.0.0.1', () => …);   // coaps+tcp (RFC 8323) on TCP, coaps (DTLS 1.2) on UDP
 *
 * One card, one TlsTandem for the TLS connections and the card's DTLS sessions for the UDP
 * associations (a CardGate shares the card: a DTLS handshake takes it when no TLS session holds or
 * waits for it; otherwise its ClientHello is dropped and the client's retransmission retries).
 * Also re-exported: the transport-agnostic core (createCoapServer, CoapServer, the codec).
 * imports coap/, host/, servers/coap, cli/ (card files, admin socket) and api/.
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { SetlsError } from '../bytes/index.js';
import { CoapServer, type CoapRequestListener, type CoapServerOptions as CoreOptions } from '../coap/index.js';
import { CardClient, TlsTandem, PcscTransport, TracingTransport, type CardTransport } from '../host/index.js';
import { CardDtlsBackends, CardGate, DtlsServer } from '../host/dtls/index.js';
import { serveCoapOverDtls, serveCoapOverTls } from '../servers/coap/index.js';
import { openCard as openCardFolder } from '../cli/card-setup.js';
import { startAdminSocket } from '../cli/admin-access.js';
import { resolvePin } from './pin.js';
import { listenAndRoute } from './listen.js';
import type { CardSource } from './server.js';

export * from '../coap/index.js';

export interface CoapCardServerOptions extends CoreOptions, CardSource {
  /** Serve coaps (CoAP over DTLS 1.2) on UDP with the same port number. Default true. */
  readonly dtls?: boolean;
  /** Connections waiting for the card beyond the active one. Default 50. */
  readonly backlog?: number;
  /** TLS handshake deadline (ms). Default 10000. */
  readonly handshakeTimeoutMs?: number;
  /** An idle TLS session / DTLS association is closed after this (ms). Default 30000. */
  readonly sessionIdleTimeoutMs?: number;
  /** Print every APDU as annotated hex: true for stderr, or a sink. */
  readonly trace?: boolean | ((line: string) => void);
  /** Offer `<cardDir>/admin.sock` (see createServer). Default true for card folders. */
  readonly adminSocket?: boolean;
  /** Warnings. Default: emitted as 'warning'. */
  readonly log?: (message: string) => void;
}

interface Opened {
  readonly listener: NetServer;
  readonly udpPort: number | undefined;
  readonly closers: (() => Promise<void> | void)[];
}

/**
 * CoAP over TLS and DTLS through a card. Events: 'request' (req, res), 'listening', 'error',
 * 'close', 'tlsClientError' (err, peer), 'dtlsError' (err), 'cardError' (err).
 */
export class CoapCardServer extends EventEmitter {
  /** The transport-agnostic server: link(), resource(), its options and connections. */
  readonly coap: CoapServer;
  private readonly opts: CoapCardServerOptions;
  private opened: Opened | undefined;
  private opening: Promise<void> | undefined;
  private closeRequested = false;

  constructor(options: CoapCardServerOptions, handler?: CoapRequestListener) {
    super();
    if (!options || typeof options !== 'object') throw new TypeError('createServer needs options naming the card: { cardDir } | { reader } | { transport }');
    if (options.cardDir === undefined && options.reader === undefined && options.transport === undefined) {
      throw new TypeError('createServer: name the card: { cardDir }, { reader } or { transport }');
    }
    this.opts = options;
    this.coap = new CoapServer(options);
    this.coap.on('request', (req, res) => this.emit('request', req, res));
    this.coap.on('clientError', (err: Error, peer: unknown) => this.emit('tlsClientError', err, peer));
    if (handler) this.on('request', handler);
  }

  /** As CoapServer.link(): lists a resource in /.well-known/core. */
  link(...args: Parameters<CoapServer['link']>): this {
    this.coap.link(...args);
    return this;
  }

  /** As CoapServer.resource(): declares a resource checked before the handler runs (docs/coap.md). */
  resource(...args: Parameters<CoapServer['resource']>): this {
    this.coap.resource(...args);
    return this;
  }

  /** listen([port = 5684][, host][, cb]); failures are emitted as 'error'. */
  listen(port?: number | (() => void), host?: string | (() => void), cb?: () => void): this {
    if (typeof port === 'function') [cb, port] = [port, undefined];
    if (typeof host === 'function') [cb, host] = [host, undefined];
    const p = port ?? 5684;
    if (!Number.isInteger(p) || p < 0 || p > 65535) throw new RangeError(`listen: port must be 0..65535, got ${String(p)}`);
    if (this.opened || this.opening) throw new SetlsError('ERR_SERVER_ALREADY_LISTEN', 'listen was already called');
    if (cb) this.once('listening', cb);
    this.closeRequested = false;
    this.opening = this.open(p, host).then(
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

  /** The TCP address (coaps+tcp); coaps (UDP) uses the same port number when served. */
  address(): AddressInfo | null {
    return (this.opened?.listener.address() as AddressInfo | null | undefined) ?? null;
  }

  /** The UDP port of coaps, or undefined when DTLS is not served. */
  get dtlsPort(): number | undefined {
    return this.opened?.udpPort;
  }

  close(cb?: (err?: Error) => void): this {
    this.closeRequested = true;
    void (this.opening ?? Promise.resolve()).then(async () => {
      const o = this.opened;
      this.opened = undefined;
      let err: Error | undefined = o ? undefined : new SetlsError('ERR_SERVER_NOT_RUNNING', 'Server is not running.');
      if (o) {
        try {
          for (const c of o.closers.reverse()) await c();
        } catch (e) {
          err = e as Error;
        }
      }
      if (cb) this.once('close', () => cb(err));
      this.emit('close');
    });
    return this;
  }

  private warn(message: string): void {
    if (this.opts.log) this.opts.log(message);
    else this.emit('warning', message);
  }

  private async open(port: number, host: string | undefined): Promise<void> {
    const o = this.opts;
    const closers: (() => Promise<void> | void)[] = [];
    try {
      const pin = resolvePin(o, { warn: (m) => this.warn(m), pinFileName: 'pinFile' }).pin;
      let transport: CardTransport;
      if (o.transport !== undefined) transport = o.transport;
      else if (o.reader !== undefined) {
        const t = await PcscTransport.open({ reader: o.reader, waitForCardMs: 10_000, ...(o.pcscShare ? { share: o.pcscShare } : {}) });
        closers.push(() => t.close());
        transport = t;
      } else {
        const { transport: t, card } = openCardFolder({ cardDir: o.cardDir!, cardKey: o.cardKey });
        closers.push(async () => {
          await t.close();
          card.close();
        });
        transport = t;
      }
      if (o.trace) transport = new TracingTransport(transport, typeof o.trace === 'function' ? o.trace : (l) => process.stderr.write(l + '\n'));
      const gate = new CardGate(transport);
      const idle = o.sessionIdleTimeoutMs;
      const tandem = new TlsTandem({
        transport: gate.shared,
        pin,
        ...(o.backlog !== undefined ? { backlog: o.backlog } : {}),
        ...(o.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: o.handshakeTimeoutMs } : {}),
        ...(idle !== undefined ? { idleTimeoutMs: idle } : {}),
      });
      closers.push(() => tandem.close());
      await tandem.start();
      if (o.adminSocket !== false && o.cardDir !== undefined && o.reader === undefined && o.transport === undefined) {
        const relay = await startAdminSocket(o.cardDir, transport, (l) => (o.adminSocket === true ? this.warn(l) : undefined));
        if (relay) closers.push(() => relay.close());
      }
      if (this.closeRequested) throw new SetlsError('ERR_SERVER_CLOSED', 'close() was called before the server was listening');
      serveCoapOverTls(tandem, this.coap, { shouldYield: () => tandem.queued > 0 });
      const listener = await listenAndRoute(tandem, port, host, this);
      let udpPort: number | undefined;
      if (o.dtls ?? true) {
        const backends = new CardDtlsBackends({ card: new CardClient(transport), pin, gate, available: () => !tandem.inUse && tandem.queued === 0 });
        const dtls = new DtlsServer({ openBackend: backends.openBackend, idleTimeoutMs: idle ?? 30_000 });
        dtls.on('error', (err: Error) => this.emit('dtlsError', err));
        const stop = serveCoapOverDtls(dtls, this.coap);
        closers.push(async () => {
          stop();
          await dtls.close();
        });
        // The same port number on UDP; without a host, IPv4 (pass a host to choose the family).
        udpPort = (await dtls.listen((listener.address() as AddressInfo).port, host ?? '0.0.0.0')).port;
      }
      // Closed first: Release to every CoAP connection (observations end), then DTLS, the tandem, the card.
      closers.push(() => this.coap.close().catch(() => undefined));
      this.opened = { listener, udpPort, closers };
    } catch (e) {
      for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => undefined);
      throw e;
    }
    this.emit('listening');
  }
}

/** node-coap's createServer over a card: CoAP over TLS (TCP) and DTLS (UDP), the same port number. */
export function createServer(options: CoapCardServerOptions, handler?: CoapRequestListener): CoapCardServer {
  return new CoapCardServer(options, handler);
}
