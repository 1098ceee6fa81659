/**
 * EAP packets (RFC 3748 §4) and EAP-TLS framing (RFC 5216 §3.1, RFC 9190).
 *
 *   EAP:      Code(1) Identifier(1) Length(2) [Type(1) Type-Data(Length-5)]
 *   EAP-TLS:  Code Identifier Length Type=13 Flags(1) [TLS-Message-Length(4) if L] TLS-Data
 *             Flags: L=0x80 length included, M=0x40 more fragments, S=0x20 start
 *
 * Bytes beyond the EAP Length are kept as `trailing`: draft-urien-eap-smartcard §14.1 puts the
 * 4-byte GMT time there (the card has no clock), and Process-EAP-OOB puts out-of-band data there.
 * imports bytes/.
 */
import { SetlsError } from '../bytes/index.js';

export const EapCode = { request: 1, response: 2, success: 3, failure: 4 } as const;
export type EapCode = (typeof EapCode)[keyof typeof EapCode];

export const EAP_TYPE_IDENTITY = 1;
export const EAP_TYPE_TLS = 13;
export const EapTlsFlag = { length: 0x80, more: 0x40, start: 0x20 } as const;

export interface EapPacket {
  readonly code: number;
  readonly id: number;
  /** Present for Request/Response. */
  readonly type?: number;
  readonly typeData: Uint8Array;
  /** Bytes after the EAP Length (GMT time, OOB data). */
  readonly trailing: Uint8Array;
}

export interface EapTlsPacket {
  readonly code: number;
  readonly id: number;
  readonly flags: number;
  /** TLS-Message-Length when the L flag is set. */
  readonly tlsLength?: number;
  readonly data: Uint8Array;
  readonly trailing: Uint8Array;
}

const EMPTY = new Uint8Array(0);

function fail(message: string): never {
  throw new SetlsError('ERR_EAP_MALFORMED', message);
}

/** The fields of an EAP header (and the Type, when the packet has one), without copying the Type-Data. */
interface EapHeader {
  readonly code: number;
  readonly id: number;
  readonly length: number;
  readonly type: number | undefined;
  readonly trailing: Uint8Array;
}

function parseEapHeader(b: Uint8Array): EapHeader {
  if (b.length < 4) fail(`EAP packet of ${b.length} bytes is shorter than its header`);
  const code = b[0]!;
  const id = b[1]!;
  const length = (b[2]! << 8) | b[3]!;
  if (code < 1 || code > 4) fail(`unknown EAP code ${code}`);
  if (length > b.length) fail(`EAP Length ${length} exceeds the ${b.length} bytes received`);
  const trailing = b.slice(length);
  if (code === EapCode.success || code === EapCode.failure) {
    if (length !== 4) fail(`EAP ${code === 3 ? 'Success' : 'Failure'} with Length ${length}`);
    return { code, id, length, type: undefined, trailing };
  }
  if (length < 5) fail(`EAP ${code === 1 ? 'Request' : 'Response'} with Length ${length} has no Type`);
  return { code, id, length, type: b[4]!, trailing };
}

export function parseEap(b: Uint8Array): EapPacket {
  const h = parseEapHeader(b);
  if (h.type === undefined) return { code: h.code, id: h.id, typeData: new Uint8Array(0), trailing: h.trailing };
  return { code: h.code, id: h.id, type: h.type, typeData: b.slice(5, h.length), trailing: h.trailing };
}

export function encodeEap(p: { code: number; id: number; type?: number; typeData?: Uint8Array; trailing?: Uint8Array }): Uint8Array {
  const td = p.typeData ?? new Uint8Array(0);
  const hasType = p.code === EapCode.request || p.code === EapCode.response;
  const length = 4 + (hasType ? 1 + td.length : 0);
  if (length > 0xffff) throw new RangeError(`EAP packet of ${length} bytes exceeds 65535`);
  const tr = p.trailing ?? new Uint8Array(0);
  const out = new Uint8Array(length + tr.length);
  out[0] = p.code;
  out[1] = p.id & 0xff;
  out[2] = length >> 8;
  out[3] = length & 0xff;
  if (hasType) {
    if (p.type === undefined) throw new TypeError('EAP Request/Response needs a Type');
    out[4] = p.type;
    out.set(td, 5);
  }
  out.set(tr, length);
  return out;
}

export function parseEapTls(b: Uint8Array): EapTlsPacket {
  const p = parseEapHeader(b);
  if (p.type !== EAP_TYPE_TLS) fail(`expected EAP-TLS (type 13), got ${p.type === undefined ? 'no type' : `type ${p.type}`}`);
  // Type-Data is b[5, Length): read in place, the TLS data copied once
  const tdLength = p.length - 5;
  if (tdLength < 1) fail('EAP-TLS packet without Flags');
  const flags = b[5]!;
  if (flags & 0x1f) fail(`EAP-TLS reserved flag bits set (0x${flags.toString(16)})`);
  if (flags & EapTlsFlag.length) {
    if (tdLength < 5) fail('EAP-TLS L flag set but TLS-Message-Length missing');
    const tlsLength = ((b[6]! << 24) | (b[7]! << 16) | (b[8]! << 8) | b[9]!) >>> 0;
    return { code: p.code, id: p.id, flags, tlsLength, data: b.slice(10, p.length), trailing: p.trailing };
  }
  return { code: p.code, id: p.id, flags, data: b.slice(6, p.length), trailing: p.trailing };
}

export function encodeEapTls(p: {
  code: number;
  id: number;
  flags: number;
  tlsLength?: number;
  data?: Uint8Array;
  trailing?: Uint8Array;
}): Uint8Array {
  const data = p.data ?? EMPTY;
  const hasL = (p.flags & EapTlsFlag.length) !== 0;
  const hasType = p.code === EapCode.request || p.code === EapCode.response;
  if (!hasType) return encodeEap({ code: p.code, id: p.id, typeData: typeData(p.flags, hasL, p.tlsLength, data), ...(p.trailing ? { trailing: p.trailing } : {}) });
  // Header ‖ Type ‖ Flags ‖ [TLS-Message-Length] ‖ data ‖ trailing, written in one buffer
  const tdOffset = hasL ? 10 : 6;
  const length = tdOffset + data.length;
  if (length > 0xffff) throw new RangeError(`EAP packet of ${length} bytes exceeds 65535`);
  const tr = p.trailing ?? EMPTY;
  const out = new Uint8Array(length + tr.length);
  out[0] = p.code;
  out[1] = p.id & 0xff;
  out[2] = length >> 8;
  out[3] = length & 0xff;
  out[4] = EAP_TYPE_TLS;
  out[5] = p.flags;
  if (hasL) {
    const n = p.tlsLength ?? data.length;
    out[6] = n >>> 24;
    out[7] = (n >>> 16) & 0xff;
    out[8] = (n >>> 8) & 0xff;
    out[9] = n & 0xff;
  }
  out.set(data, tdOffset);
  out.set(tr, length);
  return out;
}

/** Flags ‖ [TLS-Message-Length] ‖ data (EAP-TLS Type-Data). */
function typeData(flags: number, hasL: boolean, tlsLength: number | undefined, data: Uint8Array): Uint8Array {
  const td = new Uint8Array(1 + (hasL ? 4 : 0) + data.length);
  td[0] = flags;
  if (hasL) {
    const n = tlsLength ?? data.length;
    td[1] = n >>> 24;
    td[2] = (n >>> 16) & 0xff;
    td[3] = (n >>> 8) & 0xff;
    td[4] = n & 0xff;
  }
  td.set(data, hasL ? 5 : 1);
  return td;
}

/** An EAP-TLS packet with no data and no flags: the fragment ACK (`02 id 00 06 0D 00` for a Response). */
export function eapTlsAck(code: number, id: number): Uint8Array {
  return encodeEapTls({ code, id, flags: 0 });
}

/** True when the packet is an EAP-TLS ACK (no flags, no data). */
export function isEapTlsAck(p: EapTlsPacket): boolean {
  return p.flags === 0 && p.data.length === 0;
}

export function eapSuccess(id: number): Uint8Array {
  return encodeEap({ code: EapCode.success, id });
}

export function eapFailure(id: number): Uint8Array {
  return encodeEap({ code: EapCode.failure, id });
}
