/**
 * The request and response objects of the CoAP server, shaped like node:http / node-coap:
 *   req.method, req.url, req.payload, req.options, req.headers.Observe …
 *   res.code = '2.05' (or statusCode, writeHead(code, options)); res.setOption('Content-Format', 50); res.end(payload)
 *   req.rsinfo = { address, port } as node-coap
 * An Observe registration (req.headers.Observe === 0) keeps `res` open as a Writable: each
 * write() is a notification with an increasing Observe sequence number; 'close' is emitted when the
 * client deregisters (Observe 1, a new registration with the same token, or connection close).
 * imports nothing of the project but coap/.
 */
import { Writable } from 'node:stream';
import { codeString, methodName, parseCode, type CoapMethod } from './codes.js';
import { coapError } from './errors.js';
import { contentFormatNumber, encodeOptionValue, optionByName, type CoapOption, type OptionValue } from './options.js';

export interface CoapPeer {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  /** Negotiated ALPN of the TLS session, or false. */
  readonly alpnProtocol?: string | false | undefined;
}

export interface DecodedOption {
  readonly number: number;
  readonly name: string;
  readonly value: OptionValue;
}

/** Option values by name: repeatable options as arrays (Uri-Path, Uri-Query, ETag, …), others as one value. */
export type CoapHeaders = Record<string, OptionValue | OptionValue[] | undefined> & {
  Observe?: number;
  'Content-Format'?: number;
  Accept?: number;
  'Uri-Path'?: string[];
  'Uri-Query'?: string[];
};

const SEGMENT_OK = /[A-Za-z0-9\-._~!$&'()*+,;=:@]/;
function encodePart(s: string, extraOk = ''): string {
  let out = '';
  for (const ch of s) {
    if (SEGMENT_OK.test(ch) || extraOk.includes(ch)) out += ch;
    else for (const b of new TextEncoder().encode(ch)) out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

export class CoapIncomingRequest {
  /** 'GET', 'POST', 'PUT', 'DELETE', 'FETCH', 'PATCH', 'iPATCH'. */
  readonly method: CoapMethod;
  /** 'c.dd' of the request code. */
  readonly code: string;
  /** Path (from Uri-Path, percent-encoded per segment) and query (from Uri-Query, joined with &). */
  readonly url: string;
  /** Decoded path segments. */
  readonly pathSegments: readonly string[];
  /** Decoded query parameters as sent (one Uri-Query each). */
  readonly query: readonly string[];
  readonly token: Uint8Array;
  /** The whole request body (reassembled when it came in Block1 blocks). */
  readonly payload: Buffer;
  /** The request's known, well-formed options, in order. */
  readonly options: readonly DecodedOption[];
  readonly headers: CoapHeaders;
  readonly peer: CoapPeer;

  constructor(code: number, token: Uint8Array, options: readonly DecodedOption[], payload: Uint8Array, peer: CoapPeer) {
    const m = methodName(code);
    if (!m) throw coapError('ERR_COAP_CODE', `not a method: ${codeString(code)}`);
    this.method = m;
    this.code = codeString(code);
    this.token = token;
    this.options = options;
    this.payload = Buffer.from(payload.buffer, payload.byteOffset, payload.length);
    this.peer = peer;
    const headers: Record<string, OptionValue | OptionValue[]> = {};
    for (const o of options) {
      const d = optionByName(o.number);
      if (d.repeatable) ((headers[o.name] ??= []) as OptionValue[]).push(o.value);
      else headers[o.name] = o.value;
    }
    this.headers = headers as CoapHeaders;
    this.pathSegments = (this.headers['Uri-Path'] ?? []) as string[];
    this.query = (this.headers['Uri-Query'] ?? []) as string[];
    const path = '/' + this.pathSegments.map((s) => encodePart(s)).join('/');
    this.url = this.query.length ? `${path}?${this.query.map((q) => encodePart(q, '/?')).join('&')}` : path;
  }

  /** node-coap's spelling of the peer: `{ address, port }`. */
  get rsinfo(): { address: string | undefined; port: number | undefined } {
    return { address: this.peer.remoteAddress, port: this.peer.remotePort };
  }

  /** The path without the query. */
  get pathname(): string {
    const q = this.url.indexOf('?');
    return q < 0 ? this.url : this.url.slice(0, q);
  }
}

/** What the connection needs from a response to put it on the wire. */
export interface ResponseSink {
  /** The final response (or the last notification); `observe` carries the sequence number when still observing. */
  deliver(res: CoapServerResponse, body: Uint8Array, observe: number | undefined, cb: (err?: Error | null) => void): void;
  /** The observation (if any) of this response ended: forget it. */
  forget(res: CoapServerResponse): void;
}

const defaultCode: Record<CoapMethod, string> = {
  GET: '2.05',
  FETCH: '2.05',
  POST: '2.04',
  PUT: '2.04',
  PATCH: '2.04',
  iPATCH: '2.04',
  DELETE: '2.02',
};

export class CoapServerResponse extends Writable {
  /** Response code: 'c.dd' or the code byte. Default by method: 2.05 for GET/FETCH, 2.04 for PUT/POST/PATCH, 2.02 for DELETE. */
  code: string | number;
  private readonly opts = new Map<number, Uint8Array[]>();
  private chunks: Buffer[] = [];
  private size = 0;
  private finalChunk: Buffer | undefined;
  /** Whether this response is an Observe registration (stays open; each write is a notification). */
  readonly observe: boolean;
  private sequence = 0;
  private sent = false;
  /** Bound on a buffered (non-observe) body. */
  private readonly maxBody: number;

  constructor(
    readonly request: CoapIncomingRequest,
    private readonly sink: ResponseSink,
    opts: { observe: boolean; maxBody: number; firstSequence?: number },
  ) {
    super({ decodeStrings: true });
    this.code = defaultCode[request.method];
    this.observe = opts.observe;
    this.maxBody = opts.maxBody;
    this.sequence = opts.firstSequence ?? 2;
    this.on('error', () => undefined); // a write after the client left is not the handler's crash
  }

  /** node-coap's other name for `code`. */
  get statusCode(): string | number {
    return this.code;
  }

  set statusCode(c: string | number) {
    this.code = c;
  }

  /** node-coap / node:http: sets the code and options at once (`writeHead('2.05', { 'Content-Format': 'text/plain' })`). */
  writeHead(code: string | number, options: Record<string, OptionValue | readonly OptionValue[] | Uint8Array> = {}): this {
    this.code = code;
    for (const [name, value] of Object.entries(options)) this.setOption(name, value);
    return this;
  }

  /** Whether anything went on the wire already. */
  get headersSent(): boolean {
    return this.sent;
  }

  /** The code byte to send (throws ERR_COAP_CODE for a code that is not a response). */
  codeByte(): number {
    const c = typeof this.code === 'number' ? this.code : parseCode(this.code);
    if (c < 0x40 || c > 0xbf) throw coapError('ERR_COAP_CODE', `response code ${codeString(c)} is not 2.xx..5.xx`);
    return c;
  }

  /**
   * Sets an option by name or number (replacing earlier values). Repeatable options take an
   * array. Content-Format and Accept also take a media type such as 'application/json'.
   */
  setOption(name: string | number, value: OptionValue | readonly OptionValue[] | Uint8Array): this {
    const d = optionByName(name);
    const list = Array.isArray(value) ? (value as OptionValue[]) : [value as OptionValue];
    if (list.length > 1 && !d.repeatable) throw coapError('ERR_COAP_OPTION_VALUE', `option ${d.name} is not repeatable`);
    const enc = list.map((v) => encodeOptionValue(d, (d.number === 12 || d.number === 17) && typeof v === 'string' ? contentFormatNumber(v) : v));
    this.opts.set(d.number, enc);
    return this;
  }

  /** node-coap / node:http spelling. */
  setHeader(name: string | number, value: OptionValue | readonly OptionValue[] | Uint8Array): this {
    return this.setOption(name, value);
  }

  removeOption(name: string | number): this {
    this.opts.delete(optionByName(name).number);
    return this;
  }

  hasOption(name: string | number): boolean {
    return this.opts.has(optionByName(name).number);
  }

  /** The options set so far, sorted by number. */
  rawOptions(): CoapOption[] {
    return [...this.opts.entries()].sort((a, b) => a[0] - b[0]).flatMap(([number, vs]) => vs.map((value) => ({ number, value })));
  }

  /** For an observation: the next sequence number (24 bits, increasing). */
  nextSequence(): number {
    const s = this.sequence;
    this.sequence = (this.sequence + 1) & 0xffffff;
    return s;
  }

  markSent(): void {
    this.sent = true;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.observe) {
      this.sink.deliver(this, chunk, this.nextSequence(), cb);
      return;
    }
    this.size += chunk.length;
    if (this.size <= this.maxBody) this.chunks.push(chunk);
    else this.chunks = [];
    cb();
  }

  /** end(payload?): the response (or, when observing, the last notification: sent without Observe). */
  override end(chunk?: unknown, encoding?: unknown, cb?: unknown): this {
    if (typeof chunk === 'function') return super.end(chunk as () => void);
    if (chunk !== undefined && chunk !== null) {
      const enc = typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8';
      this.finalChunk = typeof chunk === 'string' ? Buffer.from(chunk, enc) : Buffer.from(chunk as Uint8Array);
    }
    const done = typeof encoding === 'function' ? encoding : cb;
    return typeof done === 'function' ? super.end(done as () => void) : super.end();
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.observe) {
      if (this.finalChunk !== undefined || !this.sent) {
        this.sink.deliver(this, this.finalChunk ?? Buffer.alloc(0), undefined, cb);
      } else cb();
      this.sink.forget(this);
      return;
    }
    if (this.finalChunk) {
      this.size += this.finalChunk.length;
      this.chunks.push(this.finalChunk);
    }
    let body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [];
    if (this.size > this.maxBody) {
      // The handler produced more than the server will hold for block-wise transfer.
      this.code = '5.00';
      this.opts.clear();
      body = Buffer.from(`response body of ${this.size} bytes exceeds the server's ${this.maxBody}-byte limit`);
    }
    this.sink.deliver(this, body, undefined, cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.sink.forget(this);
    cb(err);
  }
}
