/**
 * Encoders for card command data and parsers for the card's TLVs (docs/apdu-protocol.md §2, §5).
 * Pure functions; validation of every caller-supplied value happens here.
 * imports bytes/ and node:net (IP address syntax).
 */
import { isIP } from 'node:net';
import { concat, encodeTlvs, findTlv, parseTlvs, SetlsError, toHex, type Tlv } from '../bytes/index.js';

const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: true });

function bad(message: string): never {
  throw new SetlsError('ERR_CARD_RESPONSE', message);
}

/** PIN/PUK: 4–8 ASCII digits padded with FF to 8 bytes. */
export function encodePin(pin: string, what = 'PIN'): Uint8Array {
  if (typeof pin !== 'string' || !/^[0-9]{4,8}$/.test(pin)) throw new SetlsError('ERR_HOST_PIN_FORMAT', `${what} must be 4 to 8 ASCII digits`);
  const out = new Uint8Array(8).fill(0xff);
  for (let i = 0; i < pin.length; i++) out[i] = pin.charCodeAt(i);
  return out;
}

/** An identity label: 1–255 bytes of UTF-8, no control characters. */
export function encodeLabel(label: string): Uint8Array {
  if (typeof label !== 'string' || label.length === 0 || /[\u0000-\u001f\u007f]/.test(label)) {
    throw new SetlsError('ERR_HOST_LABEL', 'an identity label is a non-empty string without control characters');
  }
  const b = utf8.encode(label);
  if (b.length > 255) throw new SetlsError('ERR_HOST_LABEL', `identity label of ${b.length} bytes exceeds 255`);
  return b;
}

export interface CsrRequest {
  readonly label: string;
  readonly commonName: string;
  readonly dnsNames?: readonly string[];
  /** Dotted IPv4 / IPv6 text, or 4/16 raw bytes. */
  readonly ipAddresses?: readonly (string | Uint8Array)[];
}

/** IPv4 or IPv6 text → 4 or 16 bytes. */
export function ipToBytes(ip: string): Uint8Array {
  const v = isIP(ip);
  if (v === 4) return Uint8Array.from(ip.split('.').map(Number));
  if (v !== 6) throw new SetlsError('ERR_HOST_IP', `not an IP address: ${ip}`);
  let s = ip.replace(/%.*$/, '');
  // embedded IPv4 tail (::ffff:1.2.3.4)
  const m = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (m) {
    const b = m[1]!.split('.').map(Number);
    s = s.slice(0, m.index) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  if (groups.length !== 8) throw new SetlsError('ERR_HOST_IP', `not an IP address: ${ip}`);
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const n = parseInt(g, 16);
    out[2 * i] = n >> 8;
    out[2 * i + 1] = n & 0xff;
  });
  return out;
}

export function encodeCsrRequest(req: CsrRequest): Uint8Array {
  if (!req || typeof req !== 'object') throw new TypeError('getCsr needs { label, commonName, dnsNames?, ipAddresses? }');
  if (typeof req.commonName !== 'string' || req.commonName.length === 0) throw new SetlsError('ERR_HOST_CSR', 'commonName must be a non-empty string');
  const items: Tlv[] = [
    { tag: 0x80, value: encodeLabel(req.label) },
    { tag: 0x81, value: utf8.encode(req.commonName) },
  ];
  for (const d of req.dnsNames ?? []) {
    if (typeof d !== 'string' || !/^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(d) || d.length > 253) {
      throw new SetlsError('ERR_HOST_CSR', `invalid DNS name: ${String(d)}`);
    }
    items.push({ tag: 0x82, value: utf8.encode(d) });
  }
  for (const ip of req.ipAddresses ?? []) {
    const b = typeof ip === 'string' ? ipToBytes(ip) : ip;
    if (!(b instanceof Uint8Array) || (b.length !== 4 && b.length !== 16)) throw new SetlsError('ERR_HOST_IP', 'an IP address is 4 or 16 bytes');
    items.push({ tag: 0x83, value: b });
  }
  return encodeTlvs(items);
}

/** PUT-CHAIN data: labelLen(1) label ‖ (certLen(3) certDER)+, leaf first. */
export function encodeChain(label: string, certs: readonly Uint8Array[]): Uint8Array {
  const l = encodeLabel(label);
  if (!Array.isArray(certs) || certs.length === 0) throw new SetlsError('ERR_HOST_CHAIN', 'a chain needs at least one certificate');
  let n = 1 + l.length;
  for (const c of certs) {
    if (!(c instanceof Uint8Array) || c.length === 0 || c.length > 0xffffff) throw new SetlsError('ERR_HOST_CHAIN', 'certificates must be non-empty DER Uint8Arrays');
    n += 3 + c.length;
  }
  if (n > 70_000) throw new SetlsError('ERR_HOST_CHAIN', `chain of ${n} bytes exceeds the card's 70000-byte command limit`);
  const out = new Uint8Array(n);
  out[0] = l.length;
  out.set(l, 1);
  let o = 1 + l.length;
  for (const c of certs) {
    out[o] = c.length >> 16;
    out[o + 1] = (c.length >> 8) & 0xff;
    out[o + 2] = c.length & 0xff;
    out.set(c, o + 3);
    o += 3 + c.length;
  }
  return out;
}

function str(v: Uint8Array | undefined, what: string): string | undefined {
  if (v === undefined) return undefined;
  try {
    return utf8d.decode(v);
  } catch {
    return bad(`${what} is not UTF-8`);
  }
}

function u16of(v: Uint8Array | undefined, what: string): number {
  if (!v || v.length !== 2) return bad(`${what} missing or not 2 bytes`);
  return (v[0]! << 8) | v[1]!;
}

function u8of(v: Uint8Array | undefined): number | undefined {
  return v && v.length === 1 ? v[0]! : undefined;
}

function tlvs(b: Uint8Array, what: string): Tlv[] {
  try {
    return parseTlvs(b);
  } catch (e) {
    return bad(`${what}: ${(e as Error).message}`);
  }
}

/** SELECT answer: TLV `01` applet version. */
export function parseSelect(b: Uint8Array): string {
  if (b.length === 0) return '';
  return str(findTlv(tlvs(b, 'SELECT'), 0x01), 'applet version') ?? '';
}

export interface SessionInfo {
  /** 0x0304 for TLS 1.3. */
  readonly version: number;
  readonly cipherSuite: number;
  readonly group: number;
  readonly signatureScheme: number;
  readonly serverName?: string;
  readonly alpn?: string;
  /** Label of the card identity that served the session. */
  readonly identity?: string;
}

export function parseSessionInfo(b: Uint8Array): SessionInfo {
  const t = tlvs(b, 'session info');
  const serverName = str(findTlv(t, 0x24), 'SNI');
  const alpn = str(findTlv(t, 0x25), 'ALPN');
  const identity = str(findTlv(t, 0x26), 'identity label');
  return {
    version: u16of(findTlv(t, 0x20), 'version'),
    cipherSuite: u16of(findTlv(t, 0x21), 'cipher suite'),
    group: u16of(findTlv(t, 0x22), 'group'),
    signatureScheme: u16of(findTlv(t, 0x23), 'signature scheme'),
    ...(serverName !== undefined ? { serverName } : {}),
    ...(alpn !== undefined ? { alpn } : {}),
    ...(identity !== undefined ? { identity } : {}),
  };
}

/** Card policy (PUT-POLICY, card info tag 09). */
export interface CardPolicy {
  /** TLS 1.3 cipher suites in server preference order. */
  readonly cipherSuites?: readonly number[];
  /** Named groups in server preference order. */
  readonly groups?: readonly number[];
  /** An SNI that matches no identity: serve the default identity, or reject (unrecognized_name). */
  readonly unknownSni?: 'default' | 'reject';
  /** ALPN protocols in preference order; empty = ALPN off. */
  readonly alpn?: readonly string[];
  /** The card sends its own KeyUpdate after this many records under one key. */
  readonly keyUpdateAfterRecords?: number;
}

const u16list = (v: readonly number[]): Uint8Array => {
  const out = new Uint8Array(v.length * 2);
  v.forEach((x, i) => {
    if (!Number.isInteger(x) || x < 0 || x > 0xffff) throw new RangeError(`not a 16-bit value: ${x}`);
    out[2 * i] = x >> 8;
    out[2 * i + 1] = x & 0xff;
  });
  return out;
};

/** PUT-POLICY data: only the fields given are sent (the card keeps the others). */
export function encodePolicy(p: CardPolicy): Uint8Array {
  const items: { tag: number; value: Uint8Array }[] = [];
  if (p.cipherSuites) items.push({ tag: 0x30, value: u16list(p.cipherSuites) });
  if (p.groups) items.push({ tag: 0x31, value: u16list(p.groups) });
  if (p.unknownSni) items.push({ tag: 0x32, value: Uint8Array.of(p.unknownSni === 'reject' ? 1 : 0) });
  if (p.alpn) {
    const parts = p.alpn.map((a) => {
      const b = new TextEncoder().encode(a);
      if (b.length < 1 || b.length > 255) throw new RangeError(`ALPN protocol '${a}' must be 1..255 bytes`);
      return Uint8Array.of(b.length, ...b);
    });
    items.push({ tag: 0x33, value: concat(...parts) });
  }
  if (p.keyUpdateAfterRecords !== undefined) {
    const n = p.keyUpdateAfterRecords;
    if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) throw new RangeError('keyUpdateAfterRecords must be 1..2^32-1');
    items.push({ tag: 0x34, value: Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff) });
  }
  if (items.length === 0) throw new RangeError('a policy needs at least one field');
  return encodeTlvs(items);
}

function parsePolicy(b: Uint8Array): CardPolicy {
  const t = tlvs(b, 'policy');
  const list16 = (v: Uint8Array | undefined): number[] | undefined => {
    if (!v) return undefined;
    const out: number[] = [];
    for (let i = 0; i + 1 < v.length; i += 2) out.push((v[i]! << 8) | v[i + 1]!);
    return out;
  };
  const alpnRaw = findTlv(t, 0x33);
  let alpn: string[] | undefined;
  if (alpnRaw) {
    alpn = [];
    for (let o = 0; o < alpnRaw.length; ) {
      const n = alpnRaw[o]!;
      alpn.push(new TextDecoder().decode(alpnRaw.subarray(o + 1, o + 1 + n)));
      o += 1 + n;
    }
  }
  const ku = findTlv(t, 0x34);
  const sni = u8of(findTlv(t, 0x32));
  const suites = list16(findTlv(t, 0x30));
  const groups = list16(findTlv(t, 0x31));
  return {
    ...(suites ? { cipherSuites: suites } : {}),
    ...(groups ? { groups } : {}),
    ...(sni !== undefined ? { unknownSni: sni === 1 ? ('reject' as const) : ('default' as const) } : {}),
    ...(alpn ? { alpn } : {}),
    ...(ku && ku.length === 4 ? { keyUpdateAfterRecords: ((ku[0]! << 24) | (ku[1]! << 16) | (ku[2]! << 8) | ku[3]!) >>> 0 } : {}),
  };
}

export interface CardInfo {
  readonly version: string;
  /** 8-byte serial as lowercase hex. */
  readonly serial: string;
  readonly identities: string[];
  readonly userPinTries?: number;
  readonly operatorPinTries?: number;
  readonly pukTries?: number;
  /** Last accepted time, Unix seconds. */
  readonly lastTime?: number;
  readonly state?: number;
  readonly policy?: CardPolicy;
}

export function parseCardInfo(b: Uint8Array): CardInfo {
  const t = tlvs(b, 'card info');
  const time = findTlv(t, 0x07);
  const info: CardInfo = {
    version: str(findTlv(t, 0x01), 'version') ?? '',
    serial: toHex(findTlv(t, 0x02) ?? new Uint8Array(0)),
    identities: t.filter((x) => x.tag === 0x03).map((x) => str(x.value, 'identity label')!),
    ...(u8of(findTlv(t, 0x04)) !== undefined ? { userPinTries: u8of(findTlv(t, 0x04))! } : {}),
    ...(u8of(findTlv(t, 0x05)) !== undefined ? { operatorPinTries: u8of(findTlv(t, 0x05))! } : {}),
    ...(u8of(findTlv(t, 0x06)) !== undefined ? { pukTries: u8of(findTlv(t, 0x06))! } : {}),
    ...(time && time.length === 4 ? { lastTime: ((time[0]! << 24) | (time[1]! << 16) | (time[2]! << 8) | time[3]!) >>> 0 } : {}),
    ...(u8of(findTlv(t, 0x08)) !== undefined ? { state: u8of(findTlv(t, 0x08))! } : {}),
    ...(findTlv(t, 0x09) ? { policy: parsePolicy(findTlv(t, 0x09)!) } : {}),
  };
  return info;
}

/** GENERATE-KEY P1 values. */
export const KeyType = { p256: 0x01, rsa2048: 0x02 } as const;
export type KeyTypeName = keyof typeof KeyType;

export interface IdentityInfo {
  /** 1 = ECDSA P-256, 2 = RSA-2048. */
  readonly keyType: number;
  readonly spki: Uint8Array;
  /** DER certificates, leaf first (empty before PUT-CHAIN). */
  readonly certificates: Uint8Array[];
  /** Host names the identity answers to (its leaf certificate's SAN DNS names). */
  readonly hostNames: string[];
}

export function parseIdentityInfo(b: Uint8Array): IdentityInfo {
  const t = tlvs(b, 'identity info');
  const kt = u8of(findTlv(t, 0x10));
  const spki = findTlv(t, 0x11);
  if (kt === undefined || !spki) bad('identity info lacks key type or SPKI');
  return {
    keyType: kt,
    spki,
    certificates: t.filter((x) => x.tag === 0x12).map((x) => x.value),
    hostNames: t.filter((x) => x.tag === 0x13).map((x) => str(x.value, 'host name')!),
  };
}
