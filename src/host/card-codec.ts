/**
 * Encoders for card command data and parsers for the card's TLVs (docs/apdu-protocol.md §2, §5),
 * with the tags, codes and shared codecs of protocol/. Pure functions; validation of every
 * caller-supplied value happens here.
 * imports bytes/, protocol/ and node:net (IP address syntax).
 */
import { isIP } from 'node:net';
import { concat, encodeTlvs, findTlv, SetlsError, toHex, type Tlv } from '../bytes/index.js';
import {
  CardInfoTag,
  ClientAuthCode,
  CsrTag,
  ExporterTag,
  IdentityPolicyTag,
  IdentityTag,
  KeyType,
  MAX_COMMAND_CHAIN,
  PolicyTag,
  PskHashCode,
  PskModeCode,
  PskTag,
  UnknownSniPolicy,
  answerTlvs,
  badAnswer,
  isPinText,
  padPinText,
  u16ListValue,
  u32Value,
  u8Value,
  utf8Value,
} from '../protocol/index.js';

export { parseAlertTlv, parseSessionInfo, parseExportedSession, wipeExportedSession, fingerprintText } from '../protocol/index.js';
export type { SessionInfo, PeerIdentityInfo, Resumption, ExportedSessionBlob } from '../protocol/index.js';

const utf8 = new TextEncoder();

/** PIN/PUK: 4–8 ASCII digits padded with FF to 8 bytes. */
export function encodePin(pin: string, what = 'PIN'): Uint8Array {
  if (!isPinText(pin)) throw new SetlsError('ERR_HOST_PIN_FORMAT', `${what} must be 4 to 8 ASCII digits`);
  return padPinText(pin);
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
    { tag: CsrTag.label, value: encodeLabel(req.label) },
    { tag: CsrTag.commonName, value: utf8.encode(req.commonName) },
  ];
  for (const d of req.dnsNames ?? []) {
    if (typeof d !== 'string' || !/^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(d) || d.length > 253) {
      throw new SetlsError('ERR_HOST_CSR', `invalid DNS name: ${String(d)}`);
    }
    items.push({ tag: CsrTag.dnsName, value: utf8.encode(d) });
  }
  for (const ip of req.ipAddresses ?? []) {
    const b = typeof ip === 'string' ? ipToBytes(ip) : ip;
    if (!(b instanceof Uint8Array) || (b.length !== 4 && b.length !== 16)) throw new SetlsError('ERR_HOST_IP', 'an IP address is 4 or 16 bytes');
    items.push({ tag: CsrTag.ipAddress, value: b });
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
  if (n > MAX_COMMAND_CHAIN) throw new SetlsError('ERR_HOST_CHAIN', `chain of ${n} bytes exceeds the card's ${MAX_COMMAND_CHAIN}-byte command limit`);
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

/** SELECT answer: TLV `01` applet version. */
export function parseSelect(b: Uint8Array): string {
  if (b.length === 0) return '';
  return utf8Value(findTlv(answerTlvs(b, 'SELECT'), CardInfoTag.version), 'applet version') ?? '';
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

function u32bytes(n: number, what: string): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`${what} must be an integer in 0..2^32-1`);
  return Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** PUT-POLICY data: only the fields given are sent (the card keeps the others). */
export function encodePolicy(p: CardPolicy): Uint8Array {
  const items: { tag: number; value: Uint8Array }[] = [];
  if (p.cipherSuites) items.push({ tag: PolicyTag.cipherSuites, value: u16list(p.cipherSuites) });
  if (p.groups) items.push({ tag: PolicyTag.groups, value: u16list(p.groups) });
  if (p.unknownSni) items.push({ tag: PolicyTag.unknownSni, value: Uint8Array.of(p.unknownSni === 'reject' ? UnknownSniPolicy.reject : UnknownSniPolicy.serveDefault) });
  if (p.alpn) {
    const parts = p.alpn.map((a) => {
      const b = new TextEncoder().encode(a);
      if (b.length < 1 || b.length > 255) throw new RangeError(`ALPN protocol '${a}' must be 1..255 bytes`);
      return Uint8Array.of(b.length, ...b);
    });
    items.push({ tag: PolicyTag.alpn, value: concat(...parts) });
  }
  if (p.keyUpdateAfterRecords !== undefined) {
    const n = p.keyUpdateAfterRecords;
    if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) throw new RangeError('keyUpdateAfterRecords must be 1..2^32-1');
    items.push({ tag: PolicyTag.keyUpdateAfterRecords, value: u32bytes(n, 'keyUpdateAfterRecords') });
  }
  if (p.cipherSuites12) items.push({ tag: PolicyTag.cipherSuites12, value: u16list(p.cipherSuites12) });
  if (p.versions) items.push({ tag: PolicyTag.versions, value: u16list(p.versions) });
  if (p.ticketLifetimeSeconds !== undefined) items.push({ tag: PolicyTag.ticketLifetime, value: u32bytes(p.ticketLifetimeSeconds, 'ticketLifetimeSeconds') });
  if (p.sessionIdCache !== undefined) items.push({ tag: PolicyTag.sessionIdCache, value: Uint8Array.of(p.sessionIdCache ? 1 : 0) });
  if (p.pskModes !== undefined) {
    if (p.pskModes.length === 0 || new Set(p.pskModes).size !== p.pskModes.length) throw new RangeError("pskModes: one or both of 'dhe', 'ke', no repeats");
    items.push({ tag: PolicyTag.pskModes, value: Uint8Array.from(p.pskModes.map((m) => (m === 'dhe' ? PskModeCode.dhe : PskModeCode.ke))) });
  }
  if (items.length === 0) throw new RangeError('a policy needs at least one field');
  return encodeTlvs(items);
}

function parsePolicy(b: Uint8Array): CardPolicy {
  const t = answerTlvs(b, 'policy');
  const alpnRaw = findTlv(t, PolicyTag.alpn);
  let alpn: string[] | undefined;
  if (alpnRaw) {
    alpn = [];
    for (let o = 0; o < alpnRaw.length; ) {
      const n = alpnRaw[o]!;
      alpn.push(new TextDecoder().decode(alpnRaw.subarray(o + 1, o + 1 + n)));
      o += 1 + n;
    }
  }
  const ku = u32Value(findTlv(t, PolicyTag.keyUpdateAfterRecords));
  const sni = u8Value(findTlv(t, PolicyTag.unknownSni));
  const suites = u16ListValue(findTlv(t, PolicyTag.cipherSuites));
  const groups = u16ListValue(findTlv(t, PolicyTag.groups));
  const s12 = u16ListValue(findTlv(t, PolicyTag.cipherSuites12));
  const vers = u16ListValue(findTlv(t, PolicyTag.versions));
  const life = u32Value(findTlv(t, PolicyTag.ticketLifetime));
  const cache = u8Value(findTlv(t, PolicyTag.sessionIdCache));
  const pskModesRaw = findTlv(t, PolicyTag.pskModes);
  return {
    ...(suites ? { cipherSuites: suites } : {}),
    ...(groups ? { groups } : {}),
    ...(sni !== undefined ? { unknownSni: sni === UnknownSniPolicy.reject ? ('reject' as const) : ('default' as const) } : {}),
    ...(alpn ? { alpn } : {}),
    ...(ku !== undefined ? { keyUpdateAfterRecords: ku } : {}),
    ...(s12 ? { cipherSuites12: s12 } : {}),
    ...(vers ? { versions: vers } : {}),
    ...(life !== undefined ? { ticketLifetimeSeconds: life } : {}),
    ...(cache !== undefined ? { sessionIdCache: cache === 1 } : {}),
    ...(pskModesRaw ? { pskModes: [...pskModesRaw].map((m) => (m === PskModeCode.dhe ? ('dhe' as const) : ('ke' as const))) } : {}),
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
  const t = answerTlvs(b, 'card info');
  const time = u32Value(findTlv(t, CardInfoTag.lastTime));
  const userTries = u8Value(findTlv(t, CardInfoTag.userTries));
  const operatorTries = u8Value(findTlv(t, CardInfoTag.operatorTries));
  const pukTries = u8Value(findTlv(t, CardInfoTag.pukTries));
  const state = u8Value(findTlv(t, CardInfoTag.state));
  const policy = findTlv(t, CardInfoTag.policy);
  return {
    version: utf8Value(findTlv(t, CardInfoTag.version), 'version') ?? '',
    serial: toHex(findTlv(t, CardInfoTag.serial) ?? new Uint8Array(0)),
    identities: t.filter((x) => x.tag === CardInfoTag.identityLabel).map((x) => utf8Value(x.value, 'identity label')!),
    ...(userTries !== undefined ? { userPinTries: userTries } : {}),
    ...(operatorTries !== undefined ? { operatorPinTries: operatorTries } : {}),
    ...(pukTries !== undefined ? { pukTries } : {}),
    ...(time !== undefined ? { lastTime: time } : {}),
    ...(state !== undefined ? { state } : {}),
    ...(policy ? { policy: parsePolicy(policy) } : {}),
    pskIdentities: t.filter((x) => x.tag === CardInfoTag.pskIdentity).map((x) => x.value),
  };
}

/** GENERATE-KEY P1 values. */
export { KeyType };
export type KeyTypeName = keyof typeof KeyType;

export type ClientAuth = 'none' | 'optional' | 'required';
/** Indexed by ClientAuthCode. */
const CLIENT_AUTH: readonly ClientAuth[] = ['none', 'optional', 'required'];

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
  const t = answerTlvs(b, 'identity info');
  const kt = u8Value(findTlv(t, IdentityTag.keyType));
  const spki = findTlv(t, IdentityTag.spki);
  if (kt === undefined || !spki) badAnswer('identity info lacks key type or SPKI');
  const ca = u8Value(findTlv(t, IdentityTag.clientAuth));
  const ex = u8Value(findTlv(t, IdentityTag.exportAllowed));
  return {
    keyType: kt,
    spki,
    certificates: t.filter((x) => x.tag === IdentityTag.certificate).map((x) => x.value),
    hostNames: t.filter((x) => x.tag === IdentityTag.hostName).map((x) => utf8Value(x.value, 'host name')!),
    ...(ca !== undefined ? { clientAuth: CLIENT_AUTH[ca] ?? 'none' } : {}),
    ...(ex !== undefined ? { exportAllowed: ex === 1 } : {}),
    exporterLabels: t.filter((x) => x.tag === IdentityTag.exporterLabel).map((x) => utf8Value(x.value, 'exporter label')!),
    trustAnchors: t.filter((x) => x.tag === IdentityTag.trustAnchor).map((x) => x.value),
  };
}

// ---- TLS 1.2, mutual TLS, resumption, PSK, session export and exporters (docs/apdu-protocol.md §2.3).

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
  const items: Tlv[] = [{ tag: IdentityPolicyTag.label, value: encodeLabel(p.label) }];
  if (p.clientAuth !== undefined) {
    if (!CLIENT_AUTH.includes(p.clientAuth)) throw new RangeError(`clientAuth must be one of ${CLIENT_AUTH.join(', ')}`);
    items.push({ tag: IdentityPolicyTag.clientAuth, value: Uint8Array.of(ClientAuthCode[p.clientAuth]) });
  }
  if (p.exportAllowed !== undefined) {
    if (typeof p.exportAllowed !== 'boolean') throw new TypeError('exportAllowed must be a boolean');
    items.push({ tag: IdentityPolicyTag.exportAllowed, value: Uint8Array.of(p.exportAllowed ? 1 : 0) });
  }
  for (const l of p.exporterLabels ?? []) items.push({ tag: IdentityPolicyTag.exporterLabel, value: asciiLabel(l, 'an exporter label') });
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
    { tag: PskTag.identity, value: id },
    { tag: PskTag.key, value: p.key },
    ...(p.hash !== undefined ? [{ tag: PskTag.hash, value: Uint8Array.of(PskHashCode[p.hash]) }] : []),
  ]);
}

export function encodePskDelete(identity: Uint8Array | string): Uint8Array {
  return encodeTlvs([{ tag: PskTag.identity, value: pskIdentityBytes(identity) }]);
}

/** EXPORTER data: `60` label, `61` context (absent = no context), `62` length. */
export function encodeExporter(label: string, context: Uint8Array | undefined, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 1 || length > 1024) throw new RangeError('exporter length must be 1..1024');
  if (context !== undefined && !(context instanceof Uint8Array)) throw new TypeError('exporter context must be a Uint8Array or undefined');
  return encodeTlvs([
    { tag: ExporterTag.label, value: asciiLabel(label, 'an exporter label') },
    ...(context !== undefined ? [{ tag: ExporterTag.context, value: context }] : []),
    { tag: ExporterTag.length, value: Uint8Array.of(length >> 8, length & 0xff) },
  ]);
}
