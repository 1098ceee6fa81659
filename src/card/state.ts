/**
 * The card's persistent state (what the sealed store holds) and its JSON form.
 *
 *   { format: "setls-card-state", version: 2, serial: hex, lastTime: unix seconds,
 *     pins: { user|operator|puk: { salt, hash, tries, max } },
 *     identities: [ { label, keyType: "p256" | "rsa2048", pkcs8, spki, chain: [DER…] } ],
 *     policy: { cipherSuites, groups, unknownSni, alpn: [base64], keyUpdateAfterRecords } }   (binary as base64)
 *
 * Version 1 (no policy, P-256 only) still loads, with the default policy. Host names are not stored:
 * they are re-derived from each leaf certificate on load.
 *
 * Secrets: the identities' private keys (KeyObjects in memory, PKCS8 in the serialized bytes,
 * which the caller wipes after sealing) and the PIN hashes. imports bytes/, apdu/ (via errors) and node
 * built-ins.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { SetlsError, equalBytes, fromHex, toHex, wipe } from '../bytes/index.js';
import { Limits } from './constants.js';
import { cardErr } from './errors.js';
import type { PinRecord } from './pins.js';
import { leafHostNames } from './names.js';
import { DEFAULT_POLICY, policyFromJson, policyToJson, type CardPolicy } from './policy.js';

export type KeyTypeName = 'p256' | 'rsa2048';

export interface IdentityRecord {
  readonly label: string;
  readonly keyType: KeyTypeName;
  /** The private key; never leaves src/card. */
  readonly privateKey: KeyObject;
  /** SubjectPublicKeyInfo DER of the key. */
  readonly spki: Uint8Array;
  /** DER certificates, leaf first; empty until PUT-CHAIN. */
  readonly chain: readonly Uint8Array[];
  /** SAN DNS names of the leaf (lower case, wildcards as `*.x.y`), for SNI selection; empty without a chain. */
  readonly hostNames: readonly string[];
}

export interface CardState {
  readonly serial: Uint8Array;
  readonly pins: { readonly user: PinRecord; readonly operator: PinRecord; readonly puk: PinRecord };
  /** Latest host time accepted (Unix seconds), 0 = never. */
  lastTime: number;
  identities: IdentityRecord[];
  /** Card policy (PUT-POLICY). */
  policy: CardPolicy;
}

export type PinName = keyof CardState['pins'];

const FORMAT = 'setls-card-state';

/** A copy that can be changed without touching `s` (key objects and byte arrays are shared, never mutated). */
export function cloneState(s: CardState): CardState {
  return {
    serial: s.serial,
    pins: { user: { ...s.pins.user }, operator: { ...s.pins.operator }, puk: { ...s.pins.puk } },
    lastTime: s.lastTime,
    identities: s.identities.map((i) => ({ ...i, chain: [...i.chain], hostNames: [...i.hostNames] })),
    policy: s.policy,
  };
}

const b64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('base64');

/** UTF-8 JSON bytes of the state. Holds private keys: wipe after sealing. */
export function serializeState(s: CardState): Uint8Array {
  const pin = (p: PinRecord) => ({ salt: b64(p.salt), hash: b64(p.hash), tries: p.tries, max: p.max });
  const identities = s.identities.map((i) => {
    const pkcs8 = i.privateKey.export({ format: 'der', type: 'pkcs8' });
    const text = pkcs8.toString('base64');
    wipe(pkcs8);
    return { label: i.label, keyType: i.keyType, pkcs8: text, spki: b64(i.spki), chain: i.chain.map(b64) };
  });
  const doc = {
    format: FORMAT,
    version: 2,
    serial: toHex(s.serial),
    lastTime: s.lastTime,
    pins: { user: pin(s.pins.user), operator: pin(s.pins.operator), puk: pin(s.pins.puk) },
    identities,
    policy: policyToJson(s.policy),
  };
  return new TextEncoder().encode(JSON.stringify(doc));
}

function bad(why: string): never {
  throw new SetlsError('ERR_CARD_STATE', `card state is invalid: ${why}`);
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(`${what} is not an object`);
  return v as Record<string, unknown>;
}

function int(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(`${what} is not an integer in ${min}..${max}`);
  return v;
}

function bytes(v: unknown, what: string, min = 0, max = 1 << 20): Uint8Array {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) bad(`${what} is not base64`);
  const b = new Uint8Array(Buffer.from(v, 'base64'));
  if (b.length < min || b.length > max) bad(`${what} has ${b.length} bytes`);
  return b;
}

function parsePin(v: unknown, what: string): PinRecord {
  const o = obj(v, what);
  const max = int(o.max, `${what}.max`, 1, 15);
  return { salt: bytes(o.salt, `${what}.salt`, 16, 16), hash: bytes(o.hash, `${what}.hash`, 32, 32), tries: int(o.tries, `${what}.tries`, 0, max), max };
}

/** Parses and validates the JSON bytes of a state; throws ERR_CARD_STATE. */
export function deserializeState(plain: Uint8Array): CardState {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plain));
  } catch (e) {
    throw new SetlsError('ERR_CARD_STATE', 'card state is not valid JSON', { cause: e });
  }
  const o = obj(doc, 'state');
  if (o.format !== FORMAT || (o.version !== 1 && o.version !== 2)) bad('unknown format or version');
  if (typeof o.serial !== 'string' || !/^[0-9a-f]{16}$/.test(o.serial)) bad('serial is not 8 hex bytes');
  const pins = obj(o.pins, 'pins');
  if (!Array.isArray(o.identities) || o.identities.length > Limits.maxIdentities) bad('identities is not a bounded array');
  const identities = o.identities.map((v, n): IdentityRecord => {
    const i = obj(v, `identity ${n}`);
    if (typeof i.label !== 'string' || !validLabel(i.label)) bad(`identity ${n} label`);
    if (i.keyType !== 'p256' && i.keyType !== 'rsa2048') bad(`identity ${n} key type`);
    const keyType: KeyTypeName = i.keyType;
    const pkcs8 = bytes(i.pkcs8, `identity ${n} key`, 1, 4096);
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
    } catch {
      bad(`identity ${n} private key does not parse`);
    } finally {
      wipe(pkcs8);
    }
    if (!keyMatchesType(privateKey, keyType)) bad(`identity ${n} private key is not of type ${keyType}`);
    const spki = bytes(i.spki, `identity ${n} spki`, 1, 4096);
    const derived = new Uint8Array(createPublicKey(privateKey).export({ format: 'der', type: 'spki' }));
    if (!equalBytes(derived, spki)) bad(`identity ${n} public key does not match its private key`);
    if (!Array.isArray(i.chain) || i.chain.length > Limits.maxChainCerts) bad(`identity ${n} chain`);
    const chain = i.chain.map((c, k) => bytes(c, `identity ${n} certificate ${k}`, 1, Limits.maxChainBytes));
    let hostNames: string[] = [];
    try {
      if (chain.length > 0) hostNames = leafHostNames(chain[0]!);
    } catch {
      bad(`identity ${n} leaf certificate does not parse`);
    }
    return { label: i.label, keyType, privateKey, spki, chain, hostNames };
  });
  const labels = new Set(identities.map((i) => i.label));
  if (labels.size !== identities.length) bad('duplicate identity labels');
  return {
    serial: fromHex(o.serial),
    pins: { user: parsePin(pins.user, 'pins.user'), operator: parsePin(pins.operator, 'pins.operator'), puk: parsePin(pins.puk, 'pins.puk') },
    lastTime: int(o.lastTime, 'lastTime', 0, 0xffffffff),
    identities,
    policy: parsePolicy(o.policy),
  };
}

function parsePolicy(v: unknown): CardPolicy {
  if (v === undefined) return DEFAULT_POLICY;
  try {
    return policyFromJson(v);
  } catch (e) {
    return bad(`policy: ${(e as Error).message}`);
  }
}

function keyMatchesType(k: KeyObject, t: KeyTypeName): boolean {
  const d = k.asymmetricKeyDetails;
  if (t === 'rsa2048') return k.asymmetricKeyType === 'rsa' && d?.modulusLength === 2048 && d.publicExponent === 0x10001n;
  return k.asymmetricKeyType === 'ec' && d?.namedCurve === 'prime256v1';
}

/** Identity labels: 1–64 bytes of UTF-8 without control characters. */
export function validLabel(label: string): boolean {
  const n = new TextEncoder().encode(label).length;
  // eslint-disable-next-line no-control-regex
  return n >= 1 && n <= Limits.maxLabel && !/[\u0000-\u001f\u007f]/.test(label);
}

/** Decodes a label from APDU bytes; throws ERR_CARD_DATA (6A80) when it is not a valid label. */
export function decodeLabel(b: Uint8Array): string {
  let s: string;
  try {
    s = new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    throw cardErr.data('identity label is not UTF-8');
  }
  if (!validLabel(s)) throw cardErr.data('identity label must be 1–64 bytes without control characters');
  return s;
}
