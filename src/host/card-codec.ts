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

/**
 * The alert TLV a card appends beyond the EAP Length of its `7001` answer when the Response
 * carried INFO (docs/apdu-protocol.md §3, §5): `2C 02 level description`. Only that TLV.
 */
export function parseAlertTlv(b: Uint8Array): { level: number; description: number } {
  const t = tlvs(b, 'alert TLV');
  const v = findTlv(t, 0x2c);
  if (t.length !== 1 || !v || v.length !== 2) return bad('the bytes after a 7001 answer are not one alert TLV 2C of 2 bytes');
  if (v[0] !== 1 && v[0] !== 2) return bad(`alert level ${v[0]} in the alert TLV`);
  return { level: v[0]!, description: v[1]! };
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
  /** The verified client certificate (mutual TLS), when the client authenticated. */
  readonly peer?: PeerIdentityInfo;
  /** How the session was established: full handshake, ticket, TLS 1.2 session ID or external PSK. */
  readonly resumption?: Resumption;
  /** The external PSK identity, when the session used one. */
  readonly pskIdentity?: Uint8Array;
}

export function parseSessionInfo(b: Uint8Array): SessionInfo {
  const t = tlvs(b, 'session info');
  const serverName = str(findTlv(t, 0x24), 'SNI');
  const alpn = str(findTlv(t, 0x25), 'ALPN');
  const identity = str(findTlv(t, 0x26), 'identity label');
  return {
    version: u16of(findTlv(t, 0x20), 'version'),
    cipherSuite: u16of(findTlv(t, 0x21), 'cipher suite'),
    // PSK sessions (TLS 1.2 PSK suites, TLS 1.3 psk_ke) have no group / no signature: 0.
    group: findTlv(t, 0x22) ? u16of(findTlv(t, 0x22), 'group') : 0,
    signatureScheme: findTlv(t, 0x23) ? u16of(findTlv(t, 0x23), 'signature scheme') : 0,
    ...(serverName !== undefined ? { serverName } : {}),
    ...(alpn !== undefined ? { alpn } : {}),
    ...(identity !== undefined ? { identity } : {}),
    ...parseSessionInfoExtra(t),
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
  /** TLS 1.2 cipher suites in preference order (tag 35). */
  readonly cipherSuites12?: readonly number[];
  /** Protocol versions enabled: 0x0304, 0x0303 (tag 36). */
  readonly versions?: readonly number[];
  /** Ticket lifetime in seconds; 0 = no tickets (tag 37). */
  readonly ticketLifetimeSeconds?: number;
  /** TLS 1.2 session-ID cache on/off (tag 38). */
  readonly sessionIdCache?: boolean;
  /** TLS 1.3 external-PSK modes in preference order: 'dhe' (psk_dhe_ke), 'ke' (psk_ke, no forward secrecy). */
  readonly pskModes?: readonly ('dhe' | 'ke')[];
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
  items.push(...encodePolicyExtra(p));
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
    ...parsePolicyExtra(t),
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
  /** External PSK identities held by the card (tag 0A; never the keys). */
  readonly pskIdentities: Uint8Array[];
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
    pskIdentities: t.filter((x) => x.tag === 0x0a).map((x) => x.value),
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
  /** Client authentication of this identity's sessions (absent on cards before mutual TLS). */
  readonly clientAuth?: ClientAuth;
  /** Whether EXPORT-SESSION is allowed. */
  readonly exportAllowed?: boolean;
  /** Labels EXPORTER may derive. */
  readonly exporterLabels: string[];
  /** DER CA certificates client chains must end at. */
  readonly trustAnchors: Uint8Array[];
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
    ...parseIdentityPolicyTags(t),
  };
}

// ---- TLS 1.2, mutual TLS, resumption, PSK, session export and exporters (docs/apdu-protocol.md §2.3).

function u32of(v: Uint8Array | undefined): number | undefined {
  return v && v.length === 4 ? ((v[0]! << 24) | (v[1]! << 16) | (v[2]! << 8) | v[3]!) >>> 0 : undefined;
}

function u32bytes(n: number, what: string): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`${what} must be an integer in 0..2^32-1`);
  return Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

export type ClientAuth = 'none' | 'optional' | 'required';
const CLIENT_AUTH: readonly ClientAuth[] = ['none', 'optional', 'required'];

/** PUT-IDENTITY-POLICY: per-identity client authentication, session export and exporter labels. */
export interface IdentityPolicy {
  readonly label: string;
  readonly clientAuth?: ClientAuth;
  /** Whether EXPORT-SESSION (TLS-Tandem host record layer) is allowed for this identity's sessions. */
  readonly exportAllowed?: boolean;
  /** Labels EXPORTER may derive (RFC 5705 reserved labels are always refused by the card). */
  readonly exporterLabels?: readonly string[];
}

function asciiLabel(s: string, what: string): Uint8Array {
  if (typeof s !== 'string' || s.length === 0 || s.length > 255 || !/^[\x20-\x7e]+$/.test(s)) {
    throw new SetlsError('ERR_HOST_EXPORTER_LABEL', `${what} must be 1..255 printable ASCII characters`);
  }
  return utf8.encode(s);
}

export function encodeIdentityPolicy(p: IdentityPolicy): Uint8Array {
  if (!p || typeof p !== 'object') throw new TypeError('putIdentityPolicy needs { label, clientAuth?, exportAllowed?, exporterLabels? }');
  const items: Tlv[] = [{ tag: 0x80, value: encodeLabel(p.label) }];
  if (p.clientAuth !== undefined) {
    const i = CLIENT_AUTH.indexOf(p.clientAuth);
    if (i < 0) throw new RangeError(`clientAuth must be one of ${CLIENT_AUTH.join(', ')}`);
    items.push({ tag: 0x40, value: Uint8Array.of(i) });
  }
  if (p.exportAllowed !== undefined) {
    if (typeof p.exportAllowed !== 'boolean') throw new TypeError('exportAllowed must be a boolean');
    items.push({ tag: 0x41, value: Uint8Array.of(p.exportAllowed ? 1 : 0) });
  }
  for (const l of p.exporterLabels ?? []) items.push({ tag: 0x42, value: asciiLabel(l, 'an exporter label') });
  return encodeTlvs(items);
}

/** PUT-TRUST-ANCHOR data: labelLen(1) label [‖ CA certificate DER]. */
export function encodeTrustAnchor(label: string, caDer?: Uint8Array): Uint8Array {
  const l = encodeLabel(label);
  if (caDer !== undefined && (!(caDer instanceof Uint8Array) || caDer.length === 0 || caDer[0] !== 0x30)) {
    throw new SetlsError('ERR_HOST_CERTIFICATE', 'a trust anchor is a DER certificate (Uint8Array starting with 30)');
  }
  return concat(Uint8Array.of(l.length), l, caDer ?? new Uint8Array(0));
}

export type PskHash = 'sha256' | 'sha384';

/** PUT-PSK: an external PSK (TLS 1.3 psk_ke/psk_dhe_ke, TLS 1.2 PSK suites). `identity` as bytes or UTF-8. */
export interface PskSpec {
  readonly identity: Uint8Array | string;
  /** 16..64 bytes. SECRET: the caller should wipe it after the call. */
  readonly key: Uint8Array;
  readonly hash?: PskHash;
}

export function pskIdentityBytes(identity: Uint8Array | string): Uint8Array {
  const b = typeof identity === 'string' ? utf8.encode(identity) : identity;
  if (!(b instanceof Uint8Array) || b.length < 1 || b.length > 128) throw new SetlsError('ERR_HOST_PSK', 'a PSK identity is 1..128 bytes');
  return b;
}

export function encodePsk(p: PskSpec): Uint8Array {
  if (!p || typeof p !== 'object') throw new TypeError('putPsk needs { identity, key, hash? }');
  const id = pskIdentityBytes(p.identity);
  if (!(p.key instanceof Uint8Array) || p.key.length < 16 || p.key.length > 64) throw new SetlsError('ERR_HOST_PSK', 'a PSK key is 16..64 bytes');
  if (p.hash !== undefined && p.hash !== 'sha256' && p.hash !== 'sha384') throw new RangeError("PSK hash must be 'sha256' or 'sha384'");
  return encodeTlvs([
    { tag: 0x50, value: id },
    { tag: 0x51, value: p.key },
    ...(p.hash !== undefined ? [{ tag: 0x52, value: Uint8Array.of(p.hash === 'sha384' ? 1 : 0) }] : []),
  ]);
}

export function encodePskDelete(identity: Uint8Array | string): Uint8Array {
  return encodeTlvs([{ tag: 0x50, value: pskIdentityBytes(identity) }]);
}

/** EXPORTER data: `60` label, `61` context (absent = no context), `62` length. */
export function encodeExporter(label: string, context: Uint8Array | undefined, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 1 || length > 1024) throw new RangeError('exporter length must be 1..1024');
  if (context !== undefined && !(context instanceof Uint8Array)) throw new TypeError('exporter context must be a Uint8Array or undefined');
  return encodeTlvs([
    { tag: 0x60, value: asciiLabel(label, 'an exporter label') },
    ...(context !== undefined ? [{ tag: 0x61, value: context }] : []),
    { tag: 0x62, value: Uint8Array.of(length >> 8, length & 0xff) },
  ]);
}

/**
 * The EXPORT-SESSION blob: one session's traffic keys, handed to the host (TLS-Tandem).
 * SECRET: every byte array; `wipeExportedSession()` zeroes them.
 */
export interface ExportedSessionBlob {
  readonly version: number;
  readonly cipherSuite: number;
  /** Sequence number of the next record read from the client / written to it. */
  readonly readSequence: bigint;
  readonly writeSequence: bigint;
  /** TLS 1.3: application traffic secrets; TLS 1.2: empty. */
  readonly clientTrafficSecret: Uint8Array;
  readonly serverTrafficSecret: Uint8Array;
  readonly clientKey: Uint8Array;
  /** GCM/CCM: 4-byte implicit salt (TLS 1.2) or 12-byte IV (TLS 1.3); ChaCha20: 12 bytes. */
  readonly clientIv: Uint8Array;
  readonly serverKey: Uint8Array;
  readonly serverIv: Uint8Array;
}

/** version(2) ‖ suite(2) ‖ readSeq(8) ‖ writeSeq(8) ‖ 6 × (len(1) ‖ bytes). */
export function parseExportedSession(b: Uint8Array): ExportedSessionBlob {
  const fail = (m: string): never => {
    b.fill(0);
    return bad(`EXPORT-SESSION blob: ${m}`);
  };
  if (b.length < 20 + 6) fail(`${b.length} bytes is too short`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let o = 20;
  const parts: Uint8Array[] = [];
  for (let i = 0; i < 6; i++) {
    if (o >= b.length) fail('truncated');
    const n = b[o]!;
    if (o + 1 + n > b.length) fail('truncated');
    parts.push(b.slice(o + 1, o + 1 + n));
    o += 1 + n;
  }
  if (o !== b.length) fail(`${b.length - o} trailing bytes`);
  const out: ExportedSessionBlob = {
    version: dv.getUint16(0),
    cipherSuite: dv.getUint16(2),
    readSequence: dv.getBigUint64(4),
    writeSequence: dv.getBigUint64(12),
    clientTrafficSecret: parts[0]!,
    serverTrafficSecret: parts[1]!,
    clientKey: parts[2]!,
    clientIv: parts[3]!,
    serverKey: parts[4]!,
    serverIv: parts[5]!,
  };
  b.fill(0);
  return out;
}

export function wipeExportedSession(s: ExportedSessionBlob): void {
  for (const k of [s.clientTrafficSecret, s.serverTrafficSecret, s.clientKey, s.clientIv, s.serverKey, s.serverIv]) k.fill(0);
}

/** The verified client certificate of a mutual-TLS session, as the card reports it. */
export interface PeerIdentityInfo {
  /** Subject DN (node's X509Certificate.subject format). */
  readonly subject: string;
  /** subjectAltName entries in node's format, e.g. "DNS:a.example". */
  readonly subjectAltNames: readonly string[];
  /** SHA-256 of the client certificate DER, colon-separated upper-case hex (as node's fingerprint256). */
  readonly fingerprint256: string;
}

export type Resumption = 'full' | 'ticket' | 'session-id' | 'psk';
const RESUMPTION: readonly Resumption[] = ['full', 'ticket', 'session-id', 'psk'];

export function fingerprintText(b: Uint8Array): string {
  return toHex(b).toUpperCase().replace(/(..)(?!$)/g, '$1:');
}

/** Session info tags 27–2B (mutual TLS, resumption, PSK identity). */
export function parseSessionInfoExtra(t: readonly Tlv[]): { peer?: PeerIdentityInfo; resumption?: Resumption; pskIdentity?: Uint8Array } {
  const subject = str(findTlv(t, 0x27), 'client subject');
  const fp = findTlv(t, 0x29);
  const sans = t.filter((x) => x.tag === 0x28).map((x) => str(x.value, 'client SAN')!);
  const r = u8of(findTlv(t, 0x2a));
  const psk = findTlv(t, 0x2b);
  return {
    ...(subject !== undefined || fp !== undefined ? { peer: { subject: subject ?? '', subjectAltNames: sans, fingerprint256: fp ? fingerprintText(fp) : '' } } : {}),
    ...(r !== undefined ? { resumption: RESUMPTION[r] ?? 'full' } : {}),
    ...(psk !== undefined ? { pskIdentity: psk } : {}),
  };
}

/** Identity info tags 40–43. */
export function parseIdentityPolicyTags(t: readonly Tlv[]): { clientAuth?: ClientAuth; exportAllowed?: boolean; exporterLabels: string[]; trustAnchors: Uint8Array[] } {
  const ca = u8of(findTlv(t, 0x40));
  const ex = u8of(findTlv(t, 0x41));
  return {
    ...(ca !== undefined ? { clientAuth: CLIENT_AUTH[ca] ?? 'none' } : {}),
    ...(ex !== undefined ? { exportAllowed: ex === 1 } : {}),
    exporterLabels: t.filter((x) => x.tag === 0x42).map((x) => str(x.value, 'exporter label')!),
    trustAnchors: t.filter((x) => x.tag === 0x43).map((x) => x.value),
  };
}

/** Policy tags 35–38 (encode). */
export function encodePolicyExtra(p: CardPolicy): Tlv[] {
  const items: Tlv[] = [];
  if (p.cipherSuites12) items.push({ tag: 0x35, value: u16list(p.cipherSuites12) });
  if (p.versions) items.push({ tag: 0x36, value: u16list(p.versions) });
  if (p.ticketLifetimeSeconds !== undefined) items.push({ tag: 0x37, value: u32bytes(p.ticketLifetimeSeconds, 'ticketLifetimeSeconds') });
  if (p.sessionIdCache !== undefined) items.push({ tag: 0x38, value: Uint8Array.of(p.sessionIdCache ? 1 : 0) });
  if (p.pskModes !== undefined) {
    if (p.pskModes.length === 0 || new Set(p.pskModes).size !== p.pskModes.length) throw new RangeError("pskModes: one or both of 'dhe', 'ke', no repeats");
    items.push({ tag: 0x39, value: Uint8Array.from(p.pskModes.map((m) => (m === 'dhe' ? 1 : 0))) });
  }
  return items;
}

/** Policy tags 35–38 (parse). */
export function parsePolicyExtra(t: readonly Tlv[]): Partial<CardPolicy> {
  const list = (v: Uint8Array | undefined): number[] | undefined => {
    if (!v) return undefined;
    const out: number[] = [];
    for (let i = 0; i + 1 < v.length; i += 2) out.push((v[i]! << 8) | v[i + 1]!);
    return out;
  };
  const s12 = list(findTlv(t, 0x35));
  const vers = list(findTlv(t, 0x36));
  const life = u32of(findTlv(t, 0x37));
  const cache = u8of(findTlv(t, 0x38));
  const pskModesRaw = findTlv(t, 0x39);
  return {
    ...(s12 ? { cipherSuites12: s12 } : {}),
    ...(vers ? { versions: vers } : {}),
    ...(life !== undefined ? { ticketLifetimeSeconds: life } : {}),
    ...(cache !== undefined ? { sessionIdCache: cache === 1 } : {}),
    ...(pskModesRaw ? { pskModes: [...pskModesRaw].map((m) => (m === 1 ? ('dhe' as const) : ('ke' as const))) } : {}),
  };
}
