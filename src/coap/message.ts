/**
 * CoAP messages and their two framings, one codec parameterised by transport (as Californium and
 * libcoap do):
 *   'udp'  RFC 7252 §3: Ver|T|TKL, Code, Message ID, Token, Options, 0xFF Payload
 *   'tcp'  RFC 8323 §3.3 (TCP/TLS/WebSockets-less stream): Len|TKL, [Extended Length], Code,
 *          Token, Options, 0xFF Payload; no type and no message ID
 * Options use delta/length nibbles with 13/14 extensions; 15 is reserved (an error except as the
 * payload marker). A payload marker followed by nothing is an error. Every failure is a CoapError
 * (ERR_COAP_*); nothing else is thrown on any input.
 * imports bytes/ (nothing else of the project).
 */
import { coapError } from './errors.js';
import type { CoapOption } from './options.js';

export type CoapTransport = 'udp' | 'tcp';
export type MessageType = 'CON' | 'NON' | 'ACK' | 'RST';
export const MESSAGE_TYPES: readonly MessageType[] = ['CON', 'NON', 'ACK', 'RST'];

export interface CoapMessage {
  /** UDP only (default CON when encoding). */
  readonly type?: MessageType;
  /** UDP only (0..65535; default 0 when encoding). */
  readonly messageId?: number;
  /** c.dd as a byte: class << 5 | detail. */
  readonly code: number;
  /** 0..8 bytes. */
  readonly token: Uint8Array;
  /** In order of appearance (sorted by number; encode sorts stably). */
  readonly options: readonly CoapOption[];
  readonly payload: Uint8Array;
}

export interface DecodeLimits {
  /** Largest whole message accepted, bytes. Default 1 MiB + header (for 'tcp' the Len field is checked before reading). */
  readonly maxMessageSize?: number;
  /** Most options in one message. Default 256. */
  readonly maxOptions?: number;
}

const DEFAULT_MAX_MESSAGE = 1024 * 1024 + 64;
const DEFAULT_MAX_OPTIONS = 256;
const EMPTY = new Uint8Array(0);

/** A plain Uint8Array view (Buffer.prototype.slice would alias; Uint8Array's copies). */
const plain = (b: Uint8Array): Uint8Array => (Object.getPrototypeOf(b) === Uint8Array.prototype ? b : new Uint8Array(b.buffer, b.byteOffset, b.length));

// ---- options

function nibble(v: number): { n: number; ext: number[] } {
  if (v < 13) return { n: v, ext: [] };
  if (v < 269) return { n: 13, ext: [v - 13] };
  const x = v - 269;
  return { n: 14, ext: [x >>> 8, x & 0xff] };
}

/** Options (sorted stably by number) and payload, as the tail of a message. */
export function encodeOptionsAndPayload(options: readonly CoapOption[], payload: Uint8Array): Uint8Array {
  const sorted = options.map((o, i) => ({ o, i })).sort((a, b) => a.o.number - b.o.number || a.i - b.i);
  const parts: number[] = [];
  let prev = 0;
  const chunks: Uint8Array[] = [];
  let size = 0;
  const flush = (): void => {
    if (parts.length) {
      const u = Uint8Array.from(parts);
      chunks.push(u);
      size += u.length;
      parts.length = 0;
    }
  };
  for (const { o } of sorted) {
    if (!Number.isInteger(o.number) || o.number < 0 || o.number > 0xffff) throw coapError('ERR_COAP_OPTION_VALUE', `option number ${o.number} outside 0..65535`);
    if (o.value.length > 0xffff + 269) throw coapError('ERR_COAP_TOO_LARGE', `option ${o.number} value of ${o.value.length} bytes`);
    const d = nibble(o.number - prev);
    const l = nibble(o.value.length);
    parts.push((d.n << 4) | l.n, ...d.ext, ...l.ext);
    flush();
    chunks.push(o.value);
    size += o.value.length;
    prev = o.number;
  }
  if (payload.length) {
    parts.push(0xff);
    flush();
    chunks.push(payload);
    size += payload.length;
  }
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Parses options and payload from b[start..end). */
export function decodeOptionsAndPayload(input: Uint8Array, start: number, end: number, maxOptions = DEFAULT_MAX_OPTIONS): { options: CoapOption[]; payload: Uint8Array } {
  const b = plain(input);
  const options: CoapOption[] = [];
  let o = start;
  let num = 0;
  while (o < end) {
    const h = b[o++]!;
    if (h === 0xff) {
      if (o >= end) throw coapError('ERR_COAP_PAYLOAD_MARKER', 'payload marker followed by an empty payload');
      return { options, payload: b.slice(o, end) };
    }
    let delta = h >>> 4;
    let len = h & 0x0f;
    if (delta === 15) throw coapError('ERR_COAP_OPTION_DELTA', 'option delta 15 is reserved');
    if (len === 15) throw coapError('ERR_COAP_OPTION_LENGTH', 'option length 15 is reserved');
    const ext = (v: number, what: 'ERR_COAP_OPTION_DELTA' | 'ERR_COAP_OPTION_LENGTH'): number => {
      if (v === 13) {
        if (o + 1 > end) throw coapError('ERR_COAP_TRUNCATED', `option ${what === 'ERR_COAP_OPTION_DELTA' ? 'delta' : 'length'} extension truncated`);
        return b[o++]! + 13;
      }
      if (v === 14) {
        if (o + 2 > end) throw coapError('ERR_COAP_TRUNCATED', `option ${what === 'ERR_COAP_OPTION_DELTA' ? 'delta' : 'length'} extension truncated`);
        const x = ((b[o]! << 8) | b[o + 1]!) + 269;
        o += 2;
        return x;
      }
      return v;
    };
    delta = ext(delta, 'ERR_COAP_OPTION_DELTA');
    len = ext(len, 'ERR_COAP_OPTION_LENGTH');
    num += delta;
    if (num > 0xffff) throw coapError('ERR_COAP_OPTION_DELTA', `option number ${num} above 65535`);
    if (o + len > end) throw coapError('ERR_COAP_OPTION_LENGTH', `option ${num} of ${len} bytes runs past the message`);
    if (options.length >= maxOptions) throw coapError('ERR_COAP_TOO_LARGE', `more than ${maxOptions} options`);
    options.push({ number: num, value: b.slice(o, o + len) });
    o += len;
  }
  return { options, payload: EMPTY };
}

function checkToken(token: Uint8Array): void {
  if (token.length > 8) throw coapError('ERR_COAP_TOKEN_LENGTH', `token of ${token.length} bytes (at most 8)`);
}

function checkCode(code: number): void {
  if (!Number.isInteger(code) || code < 0 || code > 0xff) throw coapError('ERR_COAP_CODE', `code ${code} outside 0..255`);
}

// ---- UDP (RFC 7252 §3)

export function encodeUdp(m: CoapMessage): Uint8Array {
  checkToken(m.token);
  checkCode(m.code);
  const t = MESSAGE_TYPES.indexOf(m.type ?? 'CON');
  if (t < 0) throw coapError('ERR_COAP_TYPE', `message type ${String(m.type)}`);
  const mid = m.messageId ?? 0;
  if (!Number.isInteger(mid) || mid < 0 || mid > 0xffff) throw coapError('ERR_COAP_TYPE', `message ID ${mid} outside 0..65535`);
  if (m.code === 0 && (m.token.length || m.options.length || m.payload.length)) {
    throw coapError('ERR_COAP_EMPTY_MESSAGE', 'an Empty message (0.00) carries no token, options or payload');
  }
  const tail = encodeOptionsAndPayload(m.options, m.payload);
  const out = new Uint8Array(4 + m.token.length + tail.length);
  out[0] = 0x40 | (t << 4) | m.token.length;
  out[1] = m.code;
  out[2] = mid >>> 8;
  out[3] = mid & 0xff;
  out.set(m.token, 4);
  out.set(tail, 4 + m.token.length);
  return out;
}

export function decodeUdp(input: Uint8Array, limits: DecodeLimits = {}): CoapMessage {
  const b = plain(input);
  const max = limits.maxMessageSize ?? DEFAULT_MAX_MESSAGE;
  if (b.length > max) throw coapError('ERR_COAP_TOO_LARGE', `message of ${b.length} bytes exceeds ${max}`);
  if (b.length < 4) throw coapError('ERR_COAP_TRUNCATED', `message of ${b.length} bytes is shorter than the 4-byte header`);
  const ver = b[0]! >>> 6;
  if (ver !== 1) throw coapError('ERR_COAP_VERSION', `version ${ver} (only 1 is defined)`);
  const type = MESSAGE_TYPES[(b[0]! >>> 4) & 3]!;
  const tkl = b[0]! & 0x0f;
  if (tkl > 8) throw coapError('ERR_COAP_TOKEN_LENGTH', `token length ${tkl} is reserved`);
  const code = b[1]!;
  const messageId = (b[2]! << 8) | b[3]!;
  if (code === 0) {
    if (b.length !== 4 || tkl !== 0) throw coapError('ERR_COAP_EMPTY_MESSAGE', 'an Empty message (0.00) must be the 4-byte header only');
    return { type, messageId, code, token: EMPTY, options: [], payload: EMPTY };
  }
  if (4 + tkl > b.length) throw coapError('ERR_COAP_TRUNCATED', `token of ${tkl} bytes truncated`);
  const token = b.slice(4, 4 + tkl);
  const { options, payload } = decodeOptionsAndPayload(b, 4 + tkl, b.length, limits.maxOptions);
  return { type, messageId, code, token, options, payload };
}

// ---- TCP/TLS (RFC 8323 §3.3)

export function encodeTcp(m: CoapMessage): Uint8Array {
  checkToken(m.token);
  checkCode(m.code);
  const tail = encodeOptionsAndPayload(m.options, m.payload);
  const len = tail.length;
  let head: number[];
  if (len < 13) head = [(len << 4) | m.token.length];
  else if (len < 269) head = [(13 << 4) | m.token.length, len - 13];
  else if (len < 65805) head = [(14 << 4) | m.token.length, (len - 269) >>> 8, (len - 269) & 0xff];
  else {
    const x = len - 65805;
    if (x > 0xffffffff) throw coapError('ERR_COAP_TOO_LARGE', `message of ${len} bytes`);
    head = [(15 << 4) | m.token.length, x >>> 24, (x >>> 16) & 0xff, (x >>> 8) & 0xff, x & 0xff];
  }
  const out = new Uint8Array(head.length + 1 + m.token.length + len);
  out.set(head, 0);
  out[head.length] = m.code;
  out.set(m.token, head.length + 1);
  out.set(tail, head.length + 1 + m.token.length);
  return out;
}

export interface TcpFrameHeader {
  /** Bytes of Len|TKL + extended length + code + token. */
  readonly headerLength: number;
  /** Bytes of options + payload. */
  readonly bodyLength: number;
  /** Whole frame. */
  readonly frameLength: number;
  readonly tokenLength: number;
}

/**
 * Peeks at the frame header at the start of `b`: null when more bytes are needed to know the
 * frame's length. Throws ERR_COAP_TOKEN_LENGTH (TKL 9..15) and ERR_COAP_TOO_LARGE (above the
 * bound) as soon as the header shows them, before the body arrives.
 */
export function peekTcpFrame(b: Uint8Array, limits: DecodeLimits = {}): TcpFrameHeader | null {
  if (b.length < 1) return null;
  const lenNibble = b[0]! >>> 4;
  const tkl = b[0]! & 0x0f;
  if (tkl > 8) throw coapError('ERR_COAP_TOKEN_LENGTH', `token length ${tkl} is reserved`);
  const extLen = lenNibble === 13 ? 1 : lenNibble === 14 ? 2 : lenNibble === 15 ? 4 : 0;
  if (b.length < 1 + extLen) return null;
  let bodyLength: number;
  if (lenNibble < 13) bodyLength = lenNibble;
  else if (lenNibble === 13) bodyLength = b[1]! + 13;
  else if (lenNibble === 14) bodyLength = ((b[1]! << 8) | b[2]!) + 269;
  else bodyLength = (((b[1]! << 24) | (b[2]! << 16) | (b[3]! << 8) | b[4]!) >>> 0) + 65805;
  const headerLength = 1 + extLen + 1 + tkl;
  const frameLength = headerLength + bodyLength;
  const max = limits.maxMessageSize ?? DEFAULT_MAX_MESSAGE;
  if (frameLength > max) throw coapError('ERR_COAP_TOO_LARGE', `message of ${frameLength} bytes exceeds ${max}`);
  return { headerLength, bodyLength, frameLength, tokenLength: tkl };
}

/** Decodes exactly one whole frame (trailing bytes are an error: use peekTcpFrame to split a stream). */
export function decodeTcp(input: Uint8Array, limits: DecodeLimits = {}): CoapMessage {
  const b = plain(input);
  const h = peekTcpFrame(b, limits);
  if (h === null || b.length < h.frameLength) throw coapError('ERR_COAP_TRUNCATED', `frame of ${b.length} bytes is shorter than its header announces`);
  if (b.length > h.frameLength) throw coapError('ERR_COAP_TRUNCATED', `${b.length - h.frameLength} bytes after the frame`);
  const code = b[h.headerLength - 1 - h.tokenLength]!;
  const token = b.slice(h.headerLength - h.tokenLength, h.headerLength);
  const { options, payload } = decodeOptionsAndPayload(b, h.headerLength, h.frameLength, limits.maxOptions);
  return { code, token, options, payload };
}

/** Splits a byte stream into frames (RFC 8323), keeping partial data between pushes; bounded. */
export class TcpFrameSplitter {
  private buf: Uint8Array = EMPTY;
  constructor(private readonly limits: DecodeLimits = {}) {}

  /** Appends bytes; returns the whole frames now available (raw, not yet decoded). Throws ERR_COAP_*. */
  push(input: Uint8Array): Uint8Array[] {
    const data = plain(input);
    if (this.buf.length === 0) this.buf = data;
    else {
      const n = new Uint8Array(this.buf.length + data.length);
      n.set(this.buf, 0);
      n.set(data, this.buf.length);
      this.buf = n;
    }
    const out: Uint8Array[] = [];
    for (;;) {
      const h = peekTcpFrame(this.buf, this.limits);
      if (h === null || this.buf.length < h.frameLength) break;
      out.push(this.buf.slice(0, h.frameLength));
      this.buf = this.buf.subarray(h.frameLength);
    }
    if (this.buf.length === 0) this.buf = EMPTY;
    return out;
  }

  /** Bytes held waiting for the rest of a frame. */
  get buffered(): number {
    return this.buf.length;
  }
}

/** One codec for both framings. */
export interface CoapCodec {
  readonly transport: CoapTransport;
  encode(m: CoapMessage): Uint8Array;
  decode(b: Uint8Array, limits?: DecodeLimits): CoapMessage;
}

export function codecFor(transport: CoapTransport): CoapCodec {
  if (transport === 'udp') return { transport, encode: encodeUdp, decode: decodeUdp };
  if (transport === 'tcp') return { transport, encode: encodeTcp, decode: decodeTcp };
  throw new TypeError(`unknown CoAP transport '${String(transport)}'`);
}
