/**
 * A CoAP server shaped like node:http / node-coap, and its RFC 8323 connection over any reliable
 * byte stream (a TLS SeTlsSocket in production, an in-memory Duplex in tests):
 *
 *   const server = createCoapServer((req, res) => { res.setOption('Content-Format', 50); res.end('{}'); });
 *   server.link('/status', { rt: 'plug.status', ct: 50 });  // listed in /.well-known/core
 *   server.handleStream(duplex);                              // one RFC 8323 connection
 *
 * Per connection: our CSM goes out first; the peer's CSM must be its first message (anything else
 * is answered with Abort); Ping → Pong (Custody echoed); Release ends the connection gracefully,
 * Abort at once; requests are matched to responses by token. Malformed frames, frames above our
 * Max-Message-Size, TKL 9..15 and bad signalling options end the connection with Abort (and a
 * diagnostic payload); a request with an unknown or malformed critical option gets 4.02 Bad Option,
 * an unknown method 4.05.
 * Request semantics (RFC 7252 §5.7.2, §5.10): Proxy-Uri / Proxy-Scheme → 5.05 (we are no proxy);
 * for a path declared with resource(): methods (4.05), Accept (4.06), the Content-Format of a body
 * (4.15), its size (4.13 with Size1) and If-Match / If-None-Match against the resource's current
 * ETag (4.12) are checked before the handler runs. A GET/FETCH carrying ETag options whose 2.05
 * carries one of them is answered 2.03 Valid (ETag and Max-Age, no payload). A 4.13 always carries Size1.
 * Block-wise (RFC 7959 + BERT, RFC 8323 §6): Block2 slices large responses with the client's SZX
 * (or smaller, to respect the peer's Max-Message-Size), and keeps the representation for the later
 * blocks; Block1 reassembles request bodies up to `maxBodySize` (2.31 Continue, 4.08 on a gap or
 * unknown transfer, 4.13 with Size1 when too large). SZX 7 is BERT only when both CSMs carry
 * Block-Wise-Transfer; otherwise it is reserved (RFC 7959 §2.2) and gets 4.00 — always over UDP.
 * Observe (RFC 7641): GET with Observe 0 keeps the response open; Observe 1, a new registration on
 * the same token, a Release/Abort or the end of the connection ends it ('close' on the response).
 * imports nothing of the project but coap/.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { codeClass, codeString, isRequest, isResponse, isSignal, methodName, parseCode, SIGNAL } from './codes.js';
import { isCoapError } from './errors.js';
import { filterLinks, formatLinks, type Link, type LinkAttributes } from './link-format.js';
import { encodeTcp, TcpFrameSplitter, decodeTcp, type CoapMessage } from './message.js';
import { blockSize, decodeBlock, encodeBlock, encodeUint, OPTION, type BlockValue, type CoapOption } from './options.js';
import { CoapIncomingRequest, CoapServerResponse, type CoapPeer, type ResponseSink } from './request.js';
import { checkAccept, checkContentFormat, checkPreconditions, etagMatches, type CoapResource, type Refusal } from './resource.js';
import { abortMessage, checkOptions, csmMessage, DEFAULT_MAX_MESSAGE_SIZE, parseCsm, pongMessage, releaseMessage } from './signals.js';

export { CoapIncomingRequest, CoapServerResponse, type CoapPeer, type CoapHeaders, type DecodedOption } from './request.js';
export * from './resource.js';

/** A request handler; a returned promise that rejects becomes a 5.00 (other return values are ignored). */
export type CoapRequestListener = (req: CoapIncomingRequest, res: CoapServerResponse) => unknown;

export interface CoapServerOptions {
  /** Max-Message-Size we advertise in our CSM and accept (bytes). Default 8192 + 128. */
  readonly maxMessageSize?: number;
  /** Advertise Block-Wise-Transfer (BERT) in our CSM and accept SZX 7. Default true. */
  readonly blockWiseTransfer?: boolean;
  /** Largest request body reassembled from Block1, and largest response body sliced in Block2. Default 1 MiB. */
  readonly maxBodySize?: number;
  /** SZX of Block2 when the client asked for none (6 = 1024 bytes). */
  readonly defaultSzx?: number;
  /** Requests handled at once per connection; beyond, 5.03. Default 32. */
  readonly maxConcurrentRequests?: number;
  /** Block1 transfers in progress per connection. Default 4. */
  readonly maxBlock1Transfers?: number;
  /** Release a connection without traffic, in-flight requests or observations after this long (ms; 0 = never). Default 60000. */
  readonly idleTimeoutMs?: number;
  /** Serve /.well-known/core from the registered links. Default true. */
  readonly wellKnownCore?: boolean;
}

export interface StreamOptions {
  /** Who the peer is (default: read remoteAddress/remotePort/alpnProtocol off the stream). */
  readonly peer?: CoapPeer;
  /**
   * Polled about once a second: when it returns true (e.g. other clients wait for the card) and the
   * connection is at least `minHoldMs` old, the connection is released (Release, observations end).
   */
  readonly shouldYield?: () => boolean;
  /** Default 5000. */
  readonly minHoldMs?: number;
}

const WELL_KNOWN = '/.well-known/core';
const WELL_KNOWN_RESOURCE: CoapResource = { methods: ['GET'], produces: [40] };

export class CoapServer extends EventEmitter {
  readonly maxMessageSize: number;
  readonly blockWiseTransfer: boolean;
  readonly maxBodySize: number;
  readonly defaultSzx: number;
  readonly maxConcurrentRequests: number;
  readonly maxBlock1Transfers: number;
  readonly idleTimeoutMs: number;
  readonly wellKnownCore: boolean;
  private readonly linkList: Link[] = [];
  private readonly resources = new Map<string, CoapResource>();
  readonly connections = new Set<CoapStreamConnection>();
  private closed = false;

  constructor(opts: CoapServerOptions = {}, handler?: CoapRequestListener) {
    super();
    this.maxMessageSize = opts.maxMessageSize ?? 8192 + 128;
    if (!Number.isInteger(this.maxMessageSize) || this.maxMessageSize < DEFAULT_MAX_MESSAGE_SIZE) {
      throw new RangeError(`maxMessageSize must be an integer ≥ ${DEFAULT_MAX_MESSAGE_SIZE}`);
    }
    this.blockWiseTransfer = opts.blockWiseTransfer ?? true;
    this.maxBodySize = opts.maxBodySize ?? 1024 * 1024;
    this.defaultSzx = opts.defaultSzx ?? 6;
    if (!Number.isInteger(this.defaultSzx) || this.defaultSzx < 0 || this.defaultSzx > 6) throw new RangeError('defaultSzx must be 0..6');
    this.maxConcurrentRequests = opts.maxConcurrentRequests ?? 32;
    this.maxBlock1Transfers = opts.maxBlock1Transfers ?? 4;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
    this.wellKnownCore = opts.wellKnownCore ?? true;
    if (handler) this.on('request', handler);
  }

  /** Lists a resource in /.well-known/core (RFC 6690), e.g. link('/power', { rt: 'plug.power', obs: true, ct: 0 }). */
  link(href: string, attrs: LinkAttributes = {}): this {
    const i = this.linkList.findIndex((l) => l.href === href);
    if (i >= 0) this.linkList.splice(i, 1);
    this.linkList.push({ href, attrs });
    return this;
  }

  get links(): readonly Link[] {
    return this.linkList;
  }

  /**
   * Declares the resource at `path` (methods, Content-Formats, body size, current ETag, see
   * CoapResource) so the server checks a request's Accept, Content-Format, size and preconditions
   * before the handler runs; with `desc.link`, also lists it in /.well-known/core.
   */
  resource(path: string, desc: CoapResource): this {
    this.resources.set(path, desc);
    if (desc.link) this.link(path, { ...(desc.produces?.length ? { ct: desc.produces.length === 1 ? desc.produces[0]! : desc.produces } : {}), ...desc.link });
    return this;
  }

  /** The declaration for a path (the built-in /.well-known/core included), if any. */
  resourceAt(path: string): CoapResource | undefined {
    if (this.wellKnownCore && path === WELL_KNOWN) return WELL_KNOWN_RESOURCE;
    return this.resources.get(path);
  }

  /** Serves one RFC 8323 connection over a reliable byte stream (TLS socket, TCP socket, Duplex). */
  handleStream(stream: Duplex, opts: StreamOptions = {}): CoapStreamConnection {
    const conn = new CoapStreamConnection(this, stream, opts);
    if (this.closed) {
      conn.release('server closing');
      return conn;
    }
    this.connections.add(conn);
    conn.once('close', () => this.connections.delete(conn));
    this.emit('connection', conn);
    return conn;
  }

  /** Releases every connection (Release signal, observations end) and accepts no more. */
  close(): Promise<void> {
    this.closed = true;
    const all = [...this.connections].map((c) => new Promise<void>((r) => (c.isClosed ? r() : c.once('close', () => r()))));
    for (const c of this.connections) c.release('server shutting down');
    return Promise.all(all).then(() => undefined);
  }

  /** Internal: runs the 'request' listeners; errors and rejections become 5.00. */
  dispatch(req: CoapIncomingRequest, res: CoapServerResponse): void {
    const fail = (e: unknown): void => {
      this.emit('handlerError', e, req);
      if (!res.headersSent && !res.writableEnded && !res.destroyed) {
        res.code = '5.00';
        res.end(`internal error: ${(e as Error)?.message ?? String(e)}`);
      } else if (!res.destroyed) res.destroy();
    };
    const listeners = this.listeners('request') as CoapRequestListener[];
    if (listeners.length === 0) {
      res.code = '4.04';
      res.end();
      return;
    }
    for (const l of listeners) {
      try {
        const r = l.call(this, req, res);
        if (r && typeof (r as Promise<void>).then === 'function') (r as Promise<void>).catch(fail);
      } catch (e) {
        fail(e);
      }
    }
  }

  /** Internal: the /.well-known/core body for a query. */
  wellKnownBody(query: readonly string[]): string {
    return formatLinks(filterLinks(this.linkList, query));
  }
}

export function createCoapServer(handler?: CoapRequestListener): CoapServer;
export function createCoapServer(opts: CoapServerOptions, handler?: CoapRequestListener): CoapServer;
export function createCoapServer(a?: CoapServerOptions | CoapRequestListener, b?: CoapRequestListener): CoapServer {
  if (typeof a === 'function') return new CoapServer({}, a);
  return new CoapServer(a ?? {}, b);
}

interface RequestContext {
  readonly req: CoapIncomingRequest;
  readonly cacheKey: string;
  readonly block2: BlockValue | undefined;
  readonly block1Echo: BlockValue | undefined;
  /** The client asked for Size2 (RFC 7959 §4). */
  readonly wantSize2: boolean;
  observing: boolean;
  /** The largest request body accepted for this request's resource (Size1 of a 4.13). */
  readonly maxBody: number;
}

interface CachedRepresentation {
  readonly code: number;
  readonly options: CoapOption[];
  readonly body: Uint8Array;
  readonly expires: number;
}

interface Block1Transfer {
  readonly chunks: Uint8Array[];
  size: number;
  readonly started: number;
}

const EMPTY = new Uint8Array(0);
const enc = new TextEncoder();
const CODE_2_03 = parseCode('2.03');
const CODE_2_05 = parseCode('2.05');
const CODE_4_13 = parseCode('4.13');
const tokenKey = (t: Uint8Array): string => Buffer.from(t.buffer, t.byteOffset, t.length).toString('hex');

/** One RFC 8323 connection. Events: 'csm' (CsmInfo), 'abort' (diagnostic), 'close'. */
export class CoapStreamConnection extends EventEmitter implements ResponseSink {
  readonly peer: CoapPeer;
  /** The peer's Max-Message-Size (1152 until its CSM says otherwise). */
  peerMaxMessageSize = DEFAULT_MAX_MESSAGE_SIZE;
  peerBert = false;
  private csmReceived = false;
  private closed = false;
  private releasing = false;
  private readonly splitter: TcpFrameSplitter;
  private readonly contexts = new Map<CoapServerResponse, RequestContext>();
  private readonly observers = new Map<string, CoapServerResponse>();
  private readonly cache = new Map<string, CachedRepresentation>();
  private readonly block1 = new Map<string, Block1Transfer>();
  private inflight = 0;
  private lastActivity = performance.now();
  private readonly started = performance.now();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    readonly server: CoapServer,
    readonly stream: Duplex,
    private readonly opts: StreamOptions = {},
  ) {
    super();
    const s = stream as Duplex & { remoteAddress?: string; remotePort?: number; alpnProtocol?: string | false };
    this.peer = opts.peer ?? { remoteAddress: s.remoteAddress, remotePort: s.remotePort, alpnProtocol: s.alpnProtocol };
    this.splitter = new TcpFrameSplitter({ maxMessageSize: server.maxMessageSize });
    stream.on('data', (d: Buffer) => this.onData(d));
    stream.on('end', () => this.shutdown());
    stream.on('error', (e: Error) => this.shutdown(e));
    stream.on('close', () => this.shutdown());
    const period = Math.max(50, Math.min(1000, server.idleTimeoutMs > 0 ? server.idleTimeoutMs / 2 : 1000));
    if (server.idleTimeoutMs > 0 || opts.shouldYield) {
      this.timer = setInterval(() => this.tick(), period);
      this.timer.unref();
    }
    this.write(csmMessage({ maxMessageSize: server.maxMessageSize, blockWiseTransfer: server.blockWiseTransfer }));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Observations in progress. */
  get observations(): number {
    return this.observers.size;
  }

  private tick(): void {
    if (this.closed) return;
    const now = performance.now();
    if (this.opts.shouldYield && now - this.started >= (this.opts.minHoldMs ?? 5000) && this.opts.shouldYield()) {
      this.release('yielding the secure element to a waiting client', 1);
      return;
    }
    const idleMs = this.server.idleTimeoutMs;
    if (idleMs > 0 && this.inflight === 0 && this.observers.size === 0 && now - this.lastActivity >= idleMs) this.release('idle');
  }

  private write(m: CoapMessage, cb?: (err?: Error | null) => void): void {
    if (this.stream.destroyed || !this.stream.writable) {
      cb?.();
      return;
    }
    this.lastActivity = performance.now();
    this.stream.write(encodeTcp(m), cb ? (e) => cb(e ?? null) : undefined);
  }

  // ---- connection end

  /** Graceful end: Release signal, observations end, then the stream ends. */
  release(diagnostic?: string, holdOffS?: number): void {
    if (this.closed) return;
    this.write(releaseMessage({ ...(diagnostic ? { diagnostic } : {}), ...(holdOffS !== undefined ? { holdOffS } : {}) }));
    this.shutdown();
    this.stream.end();
  }

  /** Abort signal with a diagnostic, then the connection closes (RFC 8323 §5.6). */
  abort(diagnostic: string, badCsmOption?: number): void {
    if (this.closed) return;
    this.emit('abort', diagnostic);
    this.server.emit('clientError', Object.assign(new Error(diagnostic), { code: 'ERR_COAP_ABORT' }), this.peer);
    this.write(abortMessage(diagnostic, badCsmOption));
    this.shutdown();
    this.stream.end();
    const t = setTimeout(() => this.stream.destroy(), 2000);
    t.unref();
    this.stream.once('close', () => clearTimeout(t));
  }

  private shutdown(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (err) this.server.emit('clientError', err, this.peer);
    for (const res of [...this.observers.values()]) res.destroy();
    this.observers.clear();
    for (const res of [...this.contexts.keys()]) if (!res.writableFinished) res.destroy();
    this.contexts.clear();
    this.cache.clear();
    this.block1.clear();
    this.emit('close');
  }

  // ---- input

  private onData(d: Buffer): void {
    if (this.closed) return;
    this.lastActivity = performance.now();
    let frames: Uint8Array[];
    try {
      frames = this.splitter.push(d);
    } catch (e) {
      this.abort(isCoapError(e) ? `${e.code}: ${e.message}` : 'malformed frame');
      return;
    }
    for (const f of frames) {
      if (this.closed) return;
      let m: CoapMessage;
      try {
        m = decodeTcp(f, { maxMessageSize: this.server.maxMessageSize });
      } catch (e) {
        this.abort(isCoapError(e) ? `${e.code}: ${e.message}` : 'malformed message');
        return;
      }
      this.onMessage(m);
    }
  }

  private onMessage(m: CoapMessage): void {
    if (m.code === 0) return; // Empty: always allowed, ignored (RFC 8323 §3.4)
    if (!this.csmReceived && m.code !== SIGNAL.CSM) {
      this.abort(`expected a CSM (7.01) as the first message, got ${codeString(m.code)}`);
      return;
    }
    if (isSignal(m.code)) return this.onSignal(m);
    if (isRequest(m.code)) return this.onRequest(m);
    if (isResponse(m.code)) return; // we send no requests: nothing to match
    // 1.xx and 6.xx are reserved classes
    this.abort(`reserved code ${codeString(m.code)}`);
  }

  private onSignal(m: CoapMessage): void {
    const chk = checkOptions(m);
    if (chk.badCritical !== undefined) {
      this.abort(`signal ${codeString(m.code)}: ${chk.reason}`, m.code === SIGNAL.CSM ? chk.badCritical : undefined);
      return;
    }
    switch (m.code) {
      case SIGNAL.CSM: {
        const info = parseCsm(m);
        if (info.maxMessageSize !== undefined) this.peerMaxMessageSize = Math.max(info.maxMessageSize, 0);
        if (info.blockWiseTransfer) this.peerBert = true;
        this.csmReceived = true;
        this.emit('csm', info);
        return;
      }
      case SIGNAL.PING:
        this.write(pongMessage(m.token, chk.decoded.some((o) => o.number === 2)));
        return;
      case SIGNAL.PONG:
        return;
      case SIGNAL.RELEASE:
        this.releasing = true;
        if (this.inflight === 0) this.endAfterRelease();
        return;
      case SIGNAL.ABORT:
        this.shutdown();
        this.stream.end();
        return;
      default:
        return; // unknown signalling codes are ignored
    }
  }

  private endAfterRelease(): void {
    this.shutdown();
    this.stream.end();
  }

  private respondDirect(req: { token: Uint8Array }, code: string, diagnostic?: string, options: CoapOption[] = []): void {
    this.write({ code: parseCode(code), token: req.token, options, payload: diagnostic ? enc.encode(diagnostic) : EMPTY });
  }

  private onRequest(m: CoapMessage): void {
    if (this.releasing) return;
    const chk = checkOptions(m);
    if (chk.badCritical !== undefined) {
      this.respondDirect(m, '4.02', chk.reason);
      return;
    }
    if (!methodName(m.code)) {
      this.respondDirect(m, '4.05', `method ${codeString(m.code)} not supported`);
      return;
    }
    if (this.inflight >= this.server.maxConcurrentRequests) {
      this.respondDirect(m, '5.03', 'too many requests in flight', [{ number: OPTION.MaxAge, value: encodeUint(1) }]);
      return;
    }
    let req: CoapIncomingRequest;
    try {
      req = new CoapIncomingRequest(m.code, m.token, chk.decoded, m.payload, this.peer);
    } catch (e) {
      this.respondDirect(m, '4.00', (e as Error).message);
      return;
    }
    const h = req.headers;
    let block2: BlockValue | undefined;
    let block1: BlockValue | undefined;
    try {
      if (h.Block2 !== undefined) block2 = decodeBlock(h.Block2 as number);
      if (h.Block1 !== undefined) block1 = decodeBlock(h.Block1 as number);
    } catch (e) {
      this.respondDirect(m, '4.02', (e as Error).message);
      return;
    }
    const bert = this.server.blockWiseTransfer && this.peerBert;
    const cacheKey = `${req.method} ${req.url} ${String(h.Accept ?? '')}`;
    const tk = tokenKey(req.token);

    // Observe deregistration / re-registration on the same token.
    const previous = this.observers.get(tk);
    if (previous) {
      this.observers.delete(tk);
      previous.destroy();
    }

    // RFC 7252 §5.7.2: we are an origin server, not a forward-proxy; with a Uri-Path too, the
    // request still targets the proxied URI, never our own resource.
    if (h['Proxy-Uri'] !== undefined || h['Proxy-Scheme'] !== undefined) {
      this.respondDirect(m, '5.05', 'proxying not supported: this is an origin server');
      return;
    }
    // RFC 7959 §2.2: SZX 7 is reserved (4.00) unless it is BERT, which needs both CSMs (RFC 8323 §6).
    if (block2 && block2.szx === 7 && !bert) {
      this.respondDirect(m, '4.00', 'Block2 SZX 7 is reserved: BERT needs a reliable transport and Block-Wise-Transfer in both CSMs');
      return;
    }

    // The declared resource's semantics, before any body is kept or the handler runs.
    const resource = this.server.resourceAt(req.pathname);
    const maxBody = Math.min(this.server.maxBodySize, resource?.maxBodySize ?? Infinity);
    if (resource) {
      const refusal = this.checkResource(req, resource, block1 ? undefined : req.payload.length, maxBody);
      if (refusal) {
        this.block1.delete(`${req.method} ${req.url}`);
        this.respondDirect(m, refusal.code, refusal.diagnostic, refusal.code === '4.13' ? [{ number: OPTION.Size1, value: encodeUint(maxBody) }] : []);
        return;
      }
    }

    // Block1: reassemble the body first.
    let block1Echo: BlockValue | undefined;
    let payload: Uint8Array = req.payload;
    if (block1) {
      const r = this.block1Step(req, block1, bert, maxBody);
      if (r === undefined) return;
      payload = r.body;
      block1Echo = r.echo;
    } else if (req.payload.length > maxBody) {
      this.respondDirect(m, '4.13', `body above ${maxBody} bytes`, [{ number: OPTION.Size1, value: encodeUint(maxBody) }]);
      return;
    }
    if (payload !== req.payload) req = new CoapIncomingRequest(m.code, m.token, chk.decoded, payload, this.peer);

    // Later blocks of a representation we already produced.
    if (block2 && block2.num > 0) {
      const cached = this.cache.get(cacheKey);
      if (cached && cached.expires > performance.now()) {
        this.sendBlocks(req.token, cached.code, cached.options, cached.body, block2, cacheKey, false, undefined);
        return;
      }
    }

    const observe = (req.method === 'GET' || req.method === 'FETCH') && h.Observe === 0;
    const res = new CoapServerResponse(req, this, { observe, maxBody: this.server.maxBodySize });
    this.contexts.set(res, { req, cacheKey, block2, block1Echo, wantSize2: h.Size2 !== undefined, observing: false, maxBody });
    this.inflight++;
    let counted = true;
    const done = (): void => {
      if (!counted) return;
      counted = false;
      this.inflight--;
      if (this.releasing && this.inflight === 0) this.endAfterRelease();
    };
    res.once('finish', done);
    res.once('close', () => {
      done();
      this.contexts.delete(res);
      if (this.observers.get(tk) === res) this.observers.delete(tk);
    });
    if (observe) {
      // the observation counts as in flight only until its first notification
      res.once('observing', done);
    }

    if (this.server.wellKnownCore && req.pathname === WELL_KNOWN) {
      if (req.method !== 'GET') {
        res.code = '4.05';
        res.end('use GET');
        return;
      }
      res.setOption('Content-Format', 40);
      res.end(this.server.wellKnownBody(req.query));
      return;
    }
    this.server.dispatch(req, res);
  }

  /**
   * A declared resource's checks, in order of precedence: method (4.05), body size when whole
   * (4.13), Content-Format of the body (4.15), Accept (4.06), then If-Match / If-None-Match (4.12:
   * preconditions only matter for a request that would otherwise succeed).
   */
  private checkResource(req: CoapIncomingRequest, r: CoapResource, bodySize: number | undefined, maxBody: number): Refusal | undefined {
    if (r.methods && !r.methods.includes(req.method)) return { code: '4.05', diagnostic: `use ${r.methods.join(' or ')}` };
    if (bodySize !== undefined && bodySize > maxBody) return { code: '4.13', diagnostic: `body above ${maxBody} bytes` };
    const refusal = checkContentFormat(req, r.consumes) ?? checkAccept(req, r.produces);
    if (refusal) return refusal;
    if (req.headers['If-Match'] === undefined && req.headers['If-None-Match'] === undefined) return undefined;
    let etag: Uint8Array | null | undefined;
    try {
      etag = r.etag ? r.etag(req) : undefined;
    } catch (e) {
      this.server.emit('handlerError', e, req);
      return { code: '5.00', diagnostic: `internal error: ${(e as Error)?.message ?? String(e)}` };
    }
    return checkPreconditions(req, etag);
  }

  /** One Block1 block: undefined when answered already (2.31, 4.08, 4.13…), else the whole body. */
  private block1Step(req: CoapIncomingRequest, b: BlockValue, bert: boolean, max: number): { body: Uint8Array; echo: BlockValue } | undefined {
    const key = `${req.method} ${req.url}`;
    const tooLarge = (): undefined => {
      this.block1.delete(key);
      this.respondDirect(req, '4.13', `request body above ${max} bytes`, [{ number: OPTION.Size1, value: encodeUint(max) }]);
      return undefined;
    };
    if (b.szx === 7 && !bert) {
      this.respondDirect(req, '4.00', 'BERT block (SZX 7) without Block-Wise-Transfer in both CSMs');
      return undefined;
    }
    const unit = blockSize(b.szx);
    const n = req.payload.length;
    if (b.more && (b.szx === 7 ? n === 0 || n % 1024 !== 0 : n !== unit)) {
      this.respondDirect(req, '4.00', `Block1 block ${b.num} of ${n} bytes does not match SZX ${b.szx}`);
      return undefined;
    }
    const size1 = req.headers.Size1;
    if (typeof size1 === 'number' && size1 > max) return tooLarge();
    const offset = b.num * unit;
    let t = this.block1.get(key);
    if (b.num === 0) {
      if (!t && this.block1.size >= this.server.maxBlock1Transfers) {
        const oldest = this.block1.keys().next().value as string;
        this.block1.delete(oldest);
      }
      t = { chunks: [], size: 0, started: performance.now() };
      this.block1.set(key, t);
    } else if (!t || t.size !== offset || performance.now() - t.started > 120_000) {
      this.block1.delete(key);
      this.respondDirect(req, '4.08', t ? `expected the block at offset ${t.size}, got offset ${offset}` : 'no block-wise transfer in progress for this resource');
      return undefined;
    }
    if (t.size + n > max) return tooLarge();
    t.chunks.push(req.payload);
    t.size += n;
    if (b.more) {
      // control usage: acknowledges block NUM (for BERT the next NUM advances by the payload's 1024-byte units)
      this.respondDirect(req, '2.31', undefined, [{ number: OPTION.Block1, value: encodeBlock({ num: b.num, more: true, szx: b.szx }) }]);
      return undefined;
    }
    this.block1.delete(key);
    const body = new Uint8Array(t.size);
    let o = 0;
    for (const c of t.chunks) {
      body.set(c, o);
      o += c.length;
    }
    return { body, echo: { num: b.num, more: false, szx: b.szx } };
  }

  // ---- output (ResponseSink)

  deliver(res: CoapServerResponse, body: Uint8Array, observe: number | undefined, cb: (err?: Error | null) => void): void {
    const ctx = this.contexts.get(res);
    if (this.closed || !ctx) {
      cb();
      return;
    }
    let code: number;
    let options: CoapOption[];
    try {
      code = res.codeByte();
      options = res.rawOptions().filter((o) => o.number !== OPTION.Observe && o.number !== OPTION.Block2 && o.number !== OPTION.Block1);
    } catch (e) {
      code = parseCode('5.00');
      options = [];
      body = enc.encode((e as Error).message);
    }
    if (ctx.block1Echo) options.push({ number: OPTION.Block1, value: encodeBlock(ctx.block1Echo) });
    // §5.9.2.9: a 4.13 tells the largest body accepted
    if (code === CODE_4_13 && !options.some((o) => o.number === OPTION.Size1)) options.push({ number: OPTION.Size1, value: encodeUint(ctx.maxBody) });
    // Notifications after the first start at block 0; the first response honours the requested block.
    const first = !res.headersSent;
    let block2 = first || !ctx.block2 ? ctx.block2 : { ...ctx.block2, num: 0 };
    // §5.10.6.2 / §5.9.1.3: the client's cached copy (one of its ETags) is still the current one → 2.03 Valid
    if (first && code === CODE_2_05 && (ctx.req.method === 'GET' || ctx.req.method === 'FETCH')) {
      const tag = options.find((o) => o.number === OPTION.ETag);
      if (tag && etagMatches(ctx.req, tag.value)) {
        code = CODE_2_03;
        options = options.filter((o) => o.number === OPTION.ETag || o.number === OPTION.MaxAge);
        body = EMPTY;
        block2 = undefined;
      }
    }
    let seq: number | undefined;
    if (res.observe && observe !== undefined && codeClass(code) === 2) {
      seq = observe;
      if (!ctx.observing) {
        ctx.observing = true;
        this.observers.set(tokenKey(ctx.req.token), res);
        res.emit('observing');
      }
    }
    res.markSent();
    this.sendBlocks(ctx.req.token, code, options, body, block2, ctx.cacheKey, ctx.wantSize2, seq, cb);
    if (res.observe && seq === undefined && !res.writableEnded) {
      // an error code (or no 2.xx) ends the observation (RFC 7641 §4.2)
      setImmediate(() => res.destroy());
    }
  }

  forget(res: CoapServerResponse): void {
    const ctx = this.contexts.get(res);
    if (ctx && this.observers.get(tokenKey(ctx.req.token)) === res) this.observers.delete(tokenKey(ctx.req.token));
  }

  /** Sends `body` whole when it fits and no block was asked for; else the asked (or first) Block2 block. */
  private sendBlocks(
    token: Uint8Array,
    code: number,
    options: CoapOption[],
    body: Uint8Array,
    want: BlockValue | undefined,
    cacheKey: string,
    wantSize2: boolean,
    observeSeq: number | undefined,
    cb?: (err?: Error | null) => void,
  ): void {
    const withObserve = observeSeq !== undefined ? [...options, { number: OPTION.Observe, value: encodeUint(observeSeq) }] : options;
    const max = this.peerMaxMessageSize;
    const whole: CoapMessage = { code, token, options: withObserve, payload: body };
    const overhead = encodeTcp({ code, token, options: [...withObserve, { number: OPTION.Block2, value: Uint8Array.of(0xff, 0xff, 0xff) }, { number: OPTION.Size2, value: encodeUint(0xffffffff) }], payload: EMPTY }).length + 1 + 4;
    if (!want && encodeTcp(whole).length <= max) {
      this.write(whole, cb);
      return;
    }
    if (!want && body.length === 0) {
      this.write(whole, cb); // options alone exceed the peer's limit; nothing to slice
      return;
    }
    // Choose the block size: the client's SZX (or ours), shrunk to fit the peer's Max-Message-Size.
    const bert = this.server.blockWiseTransfer && this.peerBert;
    let szx = want ? want.szx : this.server.defaultSzx;
    let units = 1;
    if (szx === 7) {
      units = Math.floor((max - overhead) / 1024);
      if (units < 1 || !bert) {
        szx = 6;
        units = 1;
      }
    }
    while (szx > 0 && szx < 7 && overhead + blockSize(szx) > max) szx--;
    const unit = blockSize(szx);
    // Re-express the requested block number in our (possibly smaller) unit.
    const reqOffset = want ? want.num * blockSize(want.szx) : 0;
    const num = Math.floor(reqOffset / unit);
    const offset = num * unit;
    if (offset > 0 && offset >= body.length) {
      this.write({ code: parseCode('4.02'), token, options: [], payload: enc.encode(`Block2 block ${want?.num} is beyond the ${body.length}-byte representation`) }, cb);
      return;
    }
    const len = Math.min(unit * units, body.length - offset);
    const more = offset + len < body.length;
    const out: CoapOption[] = [...withObserve, { number: OPTION.Block2, value: encodeBlock({ num, more, szx }) }];
    if (num === 0 || wantSize2) out.push({ number: OPTION.Size2, value: encodeUint(body.length) });
    if (more || offset > 0) {
      this.cache.set(cacheKey, { code, options, body, expires: performance.now() + 60_000 });
      while (this.cache.size > 8) this.cache.delete(this.cache.keys().next().value as string);
    }
    this.write({ code, token, options: out, payload: body.subarray(offset, offset + len) }, cb);
  }
}
