/**
 * The card policy (docs/apdu-protocol.md §2 PUT-POLICY, §5): cipher suites and groups in preference
 * order, what to do with an unknown SNI, ALPN protocols and the KeyUpdate interval. Persisted in the
 * sealed state; passed to the TLS engine for every session. No secrets.
 * imports bytes/, tls/ (suite and group tables) and card/ siblings.
 */
import { encodeTlvs, parseTlvs, readU16, readU32, u16, u32, type Tlv } from '../bytes/index.js';
import { DEFAULT_KEY_UPDATE_AFTER_RECORDS, GROUPS, SUITES } from '../tls/crypto.js';
import { CipherSuite, NamedGroup } from '../tls/constants.js';
import { Limits, PolicyTag, UnknownSniPolicy } from './constants.js';
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
}

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
      default:
        throw cardErr.data(`PUT-POLICY: unknown tag 0x${tag.toString(16)}`);
    }
  }
  return next;
}

/** The policy as TLVs `30`..`34` (all present), as PUT-POLICY takes them. */
export function encodePolicyTlv(p: CardPolicy): Uint8Array {
  const alpn: number[] = [];
  for (const a of p.alpn) alpn.push(a.length, ...Array.from(a, (c) => c.charCodeAt(0) & 0xff));
  return encodeTlvs([
    { tag: PolicyTag.cipherSuites, value: Uint8Array.from(p.cipherSuites.flatMap((c) => [...u16(c)])) },
    { tag: PolicyTag.groups, value: Uint8Array.from(p.groups.flatMap((g) => [...u16(g)])) },
    { tag: PolicyTag.unknownSni, value: Uint8Array.of(p.unknownSni === 'reject' ? UnknownSniPolicy.reject : UnknownSniPolicy.serveDefault) },
    { tag: PolicyTag.alpn, value: Uint8Array.from(alpn) },
    { tag: PolicyTag.keyUpdateAfterRecords, value: u32(Math.min(p.keyUpdateAfterRecords, MAX_KEY_UPDATE)) },
  ]);
}

/** JSON form for the sealed state (ALPN protocols as base64 of their bytes). */
export interface PolicyJson {
  cipherSuites: number[];
  groups: number[];
  unknownSni: UnknownSni;
  alpn: string[];
  keyUpdateAfterRecords: number;
}

export function policyToJson(p: CardPolicy): PolicyJson {
  return {
    cipherSuites: [...p.cipherSuites],
    groups: [...p.groups],
    unknownSni: p.unknownSni,
    alpn: p.alpn.map((a) => Buffer.from(a, 'latin1').toString('base64')),
    keyUpdateAfterRecords: p.keyUpdateAfterRecords,
  };
}

/** Validates the JSON form by re-encoding it as PUT-POLICY TLVs; throws (the caller maps to ERR_CARD_STATE). */
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
  const candidate: CardPolicy = {
    cipherSuites: ints(o.cipherSuites, 'cipherSuites'),
    groups: ints(o.groups, 'groups'),
    unknownSni: o.unknownSni,
    alpn,
    keyUpdateAfterRecords: k,
  };
  return applyPolicyTlv(encodePolicyTlv(candidate), DEFAULT_POLICY);
}
