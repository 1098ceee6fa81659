/**
 * The card policy (docs/apdu-protocol.md §2 PUT-POLICY, §2.3, §5): cipher suites and groups in
 * preference order, what to do with an unknown SNI, ALPN protocols, the KeyUpdate interval, TLS 1.2
 * suites, the versions enabled, the ticket lifetime and the TLS 1.2 session-ID cache. Persisted in the
 * sealed state; passed to the TLS engine for every session. No secrets.
 * imports bytes/, tls/ (suite and group tables) and card/ siblings.
 */
import { encodeTlvs, parseTlvs, readU16, readU32, u16, u32, type Tlv } from '../bytes/index.js';
import { DEFAULT_KEY_UPDATE_AFTER_RECORDS, GROUPS, SUITES } from '../tls/crypto.js';
import { CipherSuite, NamedGroup, ProtocolVersion } from '../tls/constants.js';
import { CipherSuite12, SUITES12 } from '../tls/tls12/suites12.js';
import { PolicyTag, UnknownSniPolicy } from '../protocol/index.js';
import { Limits } from './constants.js';
import { cardErr } from './errors.js';

export type UnknownSni = 'default' | 'reject';

export interface CardPolicy {
  /** Cipher suites in preference order (only suites of the engine's table). */
  readonly cipherSuites: readonly number[];
  /** Named groups in preference order (only groups of the engine's table). */
  readonly groups: readonly number[];
  /** An SNI that matches no identity: serve the default identity, or refuse (unrecognized_name). */
  readonly unknownSni: UnknownSni;
  /** ALPN protocols in preference order, each a byte string held as a latin1 string; empty = no ALPN. */
  readonly alpn: readonly string[];
  /** The engine's KeyUpdate interval (records per key), ≥ 1. */
  readonly keyUpdateAfterRecords: number;
  /** TLS 1.2 cipher suites in preference order (only suites of the engine's 1.2 table). */
  readonly cipherSuites12: readonly number[];
  /** Protocol versions enabled (0x0304, 0x0303), non-empty. */
  readonly versions: readonly number[];
  /** Session ticket lifetime in seconds (TLS 1.3 and TLS 1.2 tickets); 0 = no tickets. */
  readonly ticketLifetime: number;
  /** TLS 1.2 session-ID cache (card RAM) on/off. */
  readonly sessionIdCache: boolean;
  /** TLS 1.3 external-PSK key exchange modes in preference order (1 psk_dhe_ke, 0 psk_ke). */
  readonly pskModes: readonly number[];
}

/** Versions the card can enable (PUT-POLICY tag `36`). */
const VERSIONS: ReadonlyMap<number, string> = new Map([
  [ProtocolVersion.tls13, 'TLS 1.3'],
  [ProtocolVersion.tls12, 'TLS 1.2'],
]);

export const DEFAULT_POLICY: CardPolicy = {
  cipherSuites: [
    CipherSuite.TLS_AES_128_GCM_SHA256,
    CipherSuite.TLS_AES_256_GCM_SHA384,
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
    CipherSuite.TLS_AES_128_CCM_SHA256,
  ],
  groups: [NamedGroup.x25519, NamedGroup.secp256r1],
  unknownSni: 'default',
  alpn: ['http/1.1'],
  keyUpdateAfterRecords: DEFAULT_KEY_UPDATE_AFTER_RECORDS,
  cipherSuites12: [
    CipherSuite12.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite12.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite12.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite12.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite12.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite12.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
  ],
  versions: [ProtocolVersion.tls13, ProtocolVersion.tls12],
  ticketLifetime: 7200,
  sessionIdCache: true,
  // Forward secrecy by default: psk_ke (no ECDHE) only when the operator allows it.
  pskModes: [1],
};

/** Largest keyUpdateAfterRecords (4 bytes on the wire). */
const MAX_KEY_UPDATE = 0xffffffff;

function codePoints(v: Uint8Array, what: string, known: ReadonlyMap<number, unknown>): number[] {
  if (v.length === 0 || v.length % 2 !== 0) throw cardErr.data(`PUT-POLICY: ${what} must be a non-empty list of 2-byte values`);
  const out: number[] = [];
  for (let o = 0; o < v.length; o += 2) {
    const c = readU16(v, o);
    if (!known.has(c)) throw cardErr.data(`PUT-POLICY: ${what} 0x${c.toString(16).padStart(4, '0')} is not supported by the engine`);
    if (out.includes(c)) throw cardErr.data(`PUT-POLICY: ${what} 0x${c.toString(16).padStart(4, '0')} listed twice`);
    out.push(c);
  }
  return out;
}

function alpnList(v: Uint8Array): string[] {
  const out: string[] = [];
  let o = 0;
  while (o < v.length) {
    const n = v[o]!;
    if (n === 0 || o + 1 + n > v.length) throw cardErr.data('PUT-POLICY: an ALPN protocol is len(1) ‖ 1–255 bytes');
    const p = String.fromCharCode(...v.subarray(o + 1, o + 1 + n));
    if (out.includes(p)) throw cardErr.data('PUT-POLICY: an ALPN protocol is listed twice');
    out.push(p);
    o += 1 + n;
  }
  if (out.length > Limits.maxAlpnProtocols) throw cardErr.data(`PUT-POLICY: more than ${Limits.maxAlpnProtocols} ALPN protocols`);
  return out;
}

/**
 * Applies a PUT-POLICY TLV list to `current`: absent tags keep their value. Throws 6A80 on an empty
 * list, a TLV that does not parse, an unknown or repeated tag, or a bad value.
 */
export function applyPolicyTlv(data: Uint8Array, current: CardPolicy): CardPolicy {
  if (data.length === 0) throw cardErr.data('PUT-POLICY: no TLV');
  let items: Tlv[];
  try {
    items = parseTlvs(data);
  } catch (e) {
    throw cardErr.data('PUT-POLICY data is not a TLV sequence', e);
  }
  const seen = new Set<number>();
  let next: CardPolicy = current;
  for (const { tag, value } of items) {
    if (seen.has(tag)) throw cardErr.data(`PUT-POLICY: tag 0x${tag.toString(16)} given twice`);
    seen.add(tag);
    switch (tag) {
      case PolicyTag.cipherSuites:
        next = { ...next, cipherSuites: codePoints(value, 'cipher suite', SUITES) };
        break;
      case PolicyTag.groups:
        next = { ...next, groups: codePoints(value, 'group', GROUPS) };
        break;
      case PolicyTag.unknownSni:
        if (value.length !== 1 || (value[0] !== UnknownSniPolicy.serveDefault && value[0] !== UnknownSniPolicy.reject)) {
          throw cardErr.data('PUT-POLICY: unknown-SNI policy is one byte, 00 or 01');
        }
        next = { ...next, unknownSni: value[0] === UnknownSniPolicy.reject ? 'reject' : 'default' };
        break;
      case PolicyTag.alpn:
        next = { ...next, alpn: alpnList(value) };
        break;
      case PolicyTag.keyUpdateAfterRecords: {
        if (value.length !== 4) throw cardErr.data('PUT-POLICY: keyUpdateAfterRecords is 4 bytes');
        const n = readU32(value, 0);
        if (n < 1) throw cardErr.data('PUT-POLICY: keyUpdateAfterRecords must be at least 1');
        next = { ...next, keyUpdateAfterRecords: n };
        break;
      }
      case PolicyTag.cipherSuites12:
        next = { ...next, cipherSuites12: codePoints(value, 'TLS 1.2 cipher suite', SUITES12) };
        break;
      case PolicyTag.versions:
        next = { ...next, versions: codePoints(value, 'version', VERSIONS) };
        break;
      case PolicyTag.ticketLifetime: {
        if (value.length !== 4) throw cardErr.data('PUT-POLICY: ticket lifetime is 4 bytes');
        const n = readU32(value, 0);
        if (n > Limits.maxTicketLifetime) throw cardErr.data(`PUT-POLICY: ticket lifetime above ${Limits.maxTicketLifetime} s`);
        next = { ...next, ticketLifetime: n };
        break;
      }
      case PolicyTag.sessionIdCache:
        if (value.length !== 1 || value[0]! > 1) throw cardErr.data('PUT-POLICY: session-ID cache is one byte, 00 or 01');
        next = { ...next, sessionIdCache: value[0] === 1 };
        break;
      case PolicyTag.pskModes:
        if (value.length < 1 || value.length > 2 || !value.every((m) => m <= 1) || new Set(value).size !== value.length) {
          throw cardErr.data('PUT-POLICY: PSK modes are 1 or 2 distinct bytes, 01 psk_dhe_ke / 00 psk_ke');
        }
        next = { ...next, pskModes: [...value] };
        break;
      default:
        throw cardErr.data(`PUT-POLICY: unknown tag 0x${tag.toString(16)}`);
    }
  }
  return next;
}

/** The policy as TLVs `30`..`38` (all present), as PUT-POLICY takes them. */
export function encodePolicyTlv(p: CardPolicy): Uint8Array {
  const alpn: number[] = [];
  for (const a of p.alpn) alpn.push(a.length, ...Array.from(a, (c) => c.charCodeAt(0) & 0xff));
  return encodeTlvs([
    { tag: PolicyTag.cipherSuites, value: Uint8Array.from(p.cipherSuites.flatMap((c) => [...u16(c)])) },
    { tag: PolicyTag.groups, value: Uint8Array.from(p.groups.flatMap((g) => [...u16(g)])) },
    { tag: PolicyTag.unknownSni, value: Uint8Array.of(p.unknownSni === 'reject' ? UnknownSniPolicy.reject : UnknownSniPolicy.serveDefault) },
    { tag: PolicyTag.alpn, value: Uint8Array.from(alpn) },
    { tag: PolicyTag.keyUpdateAfterRecords, value: u32(Math.min(p.keyUpdateAfterRecords, MAX_KEY_UPDATE)) },
    { tag: PolicyTag.cipherSuites12, value: Uint8Array.from(p.cipherSuites12.flatMap((c) => [...u16(c)])) },
    { tag: PolicyTag.versions, value: Uint8Array.from(p.versions.flatMap((v) => [...u16(v)])) },
    { tag: PolicyTag.ticketLifetime, value: u32(p.ticketLifetime) },
    { tag: PolicyTag.sessionIdCache, value: Uint8Array.of(p.sessionIdCache ? 1 : 0) },
    { tag: PolicyTag.pskModes, value: Uint8Array.from(p.pskModes) },
  ]);
}

/** JSON form for the sealed state (ALPN protocols as base64 of their bytes). */
export interface PolicyJson {
  cipherSuites: number[];
  groups: number[];
  unknownSni: UnknownSni;
  alpn: string[];
  keyUpdateAfterRecords: number;
  cipherSuites12: number[];
  versions: number[];
  ticketLifetime: number;
  sessionIdCache: boolean;
  pskModes?: number[];
}

export function policyToJson(p: CardPolicy): PolicyJson {
  return {
    cipherSuites: [...p.cipherSuites],
    groups: [...p.groups],
    unknownSni: p.unknownSni,
    alpn: p.alpn.map((a) => Buffer.from(a, 'latin1').toString('base64')),
    keyUpdateAfterRecords: p.keyUpdateAfterRecords,
    cipherSuites12: [...p.cipherSuites12],
    versions: [...p.versions],
    ticketLifetime: p.ticketLifetime,
    sessionIdCache: p.sessionIdCache,
    pskModes: [...p.pskModes],
  };
}

/**
 * Validates the JSON form by re-encoding it as PUT-POLICY TLVs; throws (the caller maps to
 * ERR_CARD_STATE). Fields added in state version 3 (`cipherSuites12`, `versions`, `ticketLifetime`,
 * `sessionIdCache`) take their defaults when absent (older states).
 */
export function policyFromJson(v: unknown): CardPolicy {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('policy is not an object');
  const o = v as Record<string, unknown>;
  const ints = (x: unknown, what: string): number[] => {
    if (!Array.isArray(x) || x.length > 16 || !x.every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffff)) throw new Error(`policy.${what}`);
    return x as number[];
  };
  if (o.unknownSni !== 'default' && o.unknownSni !== 'reject') throw new Error('policy.unknownSni');
  if (!Array.isArray(o.alpn) || o.alpn.length > Limits.maxAlpnProtocols || !o.alpn.every((a) => typeof a === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(a))) {
    throw new Error('policy.alpn');
  }
  const k = o.keyUpdateAfterRecords;
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 1 || k > MAX_KEY_UPDATE) throw new Error('policy.keyUpdateAfterRecords');
  const alpn = (o.alpn as string[]).map((a) => String.fromCharCode(...Buffer.from(a, 'base64')));
  if (!alpn.every((a) => a.length >= 1 && a.length <= 255)) throw new Error('policy.alpn length');
  const life = o.ticketLifetime ?? DEFAULT_POLICY.ticketLifetime;
  if (typeof life !== 'number' || !Number.isInteger(life) || life < 0 || life > Limits.maxTicketLifetime) throw new Error('policy.ticketLifetime');
  const cache = o.sessionIdCache ?? DEFAULT_POLICY.sessionIdCache;
  if (typeof cache !== 'boolean') throw new Error('policy.sessionIdCache');
  const candidate: CardPolicy = {
    cipherSuites: ints(o.cipherSuites, 'cipherSuites'),
    groups: ints(o.groups, 'groups'),
    unknownSni: o.unknownSni,
    alpn,
    keyUpdateAfterRecords: k,
    cipherSuites12: o.cipherSuites12 === undefined ? DEFAULT_POLICY.cipherSuites12 : ints(o.cipherSuites12, 'cipherSuites12'),
    versions: o.versions === undefined ? DEFAULT_POLICY.versions : ints(o.versions, 'versions'),
    ticketLifetime: life,
    sessionIdCache: cache,
    pskModes: o.pskModes === undefined ? DEFAULT_POLICY.pskModes : ints(o.pskModes, 'pskModes'),
  };
  return applyPolicyTlv(encodePolicyTlv(candidate), DEFAULT_POLICY);
}
