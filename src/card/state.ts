/**
 * The card's persistent state (what the sealed store holds) and its JSON form.
 *
 *   { format: "setls-card-state", version: 3, serial: hex, lastTime: unix seconds,
 *     pins: { user|operator|puk: { salt, hash, tries, max } },
 *     identities: [ { label, keyType: "p256" | "rsa2048", pkcs8, spki, chain: [DER…],
 *                     clientAuth: "none" | "optional" | "required", exportAllowed: bool,
 *                     exporterLabels: [string], trustAnchors: [DER…] } ],
 *     policy: { cipherSuites, groups, unknownSni, alpn: [base64], keyUpdateAfterRecords,
 *               cipherSuites12, versions, ticketLifetime, sessionIdCache },
 *     psks: [ { identity, key, hash: "sha256" | "sha384" } ],
 *     ticketKey?: { id, key } }                                       (binary as base64)
 *
 * Version 1 (no policy, P-256 only) and version 2 (no identity policies, PSKs or ticket key) still
 * load, with the defaults. Host names are not stored: they are re-derived from each leaf certificate
 * on load.
 *
 * Secrets: the identities' private keys (KeyObjects in memory, PKCS8 in the serialized bytes,
 * which the caller wipes after sealing), the PIN hashes, the PSK keys and the ticket key. imports bytes/, apdu/ (via errors) and node
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
  /** Mutual TLS for sessions this identity serves (PUT-IDENTITY-POLICY `40`). */
  readonly clientAuth: ClientAuth;
  /** EXPORT-SESSION allowed for sessions this identity serves (`41`). */
  readonly exportAllowed: boolean;
  /** Labels EXPORTER may use for this identity's sessions (`42`). */
  readonly exporterLabels: readonly string[];
  /** CA certificates (DER) client chains must end at (PUT-TRUST-ANCHOR). */
  readonly trustAnchors: readonly Uint8Array[];
}

export type ClientAuth = 'none' | 'optional' | 'required';

/** The identity policy of a new identity: no client auth, no export, no exporter labels, no anchors. */
export const DEFAULT_IDENTITY_POLICY = { clientAuth: 'none', exportAllowed: false, exporterLabels: [], trustAnchors: [] } as const satisfies Pick<
  IdentityRecord,
  'clientAuth' | 'exportAllowed' | 'exporterLabels' | 'trustAnchors'
>;

/** An external PSK held by the card (PUT-PSK). `key` is secret. */
export interface PskRecord {
  readonly identity: Uint8Array;
  readonly key: Uint8Array;
  readonly hash: 'sha256' | 'sha384';
}

/** The card's session ticket key (4-byte id in clear in every ticket, 32-byte AES-256-GCM key). Secret. */
export interface TicketKeyRecord {
  readonly id: Uint8Array;
  readonly key: Uint8Array;
}

export interface CardState {
  readonly serial: Uint8Array;
  readonly pins: { readonly user: PinRecord; readonly operator: PinRecord; readonly puk: PinRecord };
  /** Latest host time accepted (Unix seconds), 0 = never. */
  lastTime: number;
  identities: IdentityRecord[];
  /** Card policy (PUT-POLICY). */
  policy: CardPolicy;
  /** External PSKs (PUT-PSK), at most Limits.maxPsks. */
  psks: PskRecord[];
  /** Session ticket key, generated at first need; absent until then. */
  ticketKey: TicketKeyRecord | undefined;
}

export type PinName = keyof CardState['pins'];

const FORMAT = 'setls-card-state';
/** The version written; 1 and 2 still load (with defaults for what they lack). */
export const STATE_VERSION = 3;

/** A copy that can be changed without touching `s` (key objects and byte arrays are shared, never mutated). */
export function cloneState(s: CardState): CardState {
  return {
    serial: s.serial,
    pins: { user: { ...s.pins.user }, operator: { ...s.pins.operator }, puk: { ...s.pins.puk } },
    lastTime: s.lastTime,
    identities: s.identities.map((i) => ({
      ...i,
      chain: [...i.chain],
      hostNames: [...i.hostNames],
      exporterLabels: [...i.exporterLabels],
      trustAnchors: [...i.trustAnchors],
    })),
    policy: s.policy,
    psks: [...s.psks],
    ticketKey: s.ticketKey,
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
    return {
      label: i.label,
      keyType: i.keyType,
      pkcs8: text,
      spki: b64(i.spki),
      chain: i.chain.map(b64),
      clientAuth: i.clientAuth,
      exportAllowed: i.exportAllowed,
      exporterLabels: [...i.exporterLabels],
      trustAnchors: i.trustAnchors.map(b64),
    };
  });
  const doc = {
    format: FORMAT,
    version: STATE_VERSION,
    serial: toHex(s.serial),
    lastTime: s.lastTime,
    pins: { user: pin(s.pins.user), operator: pin(s.pins.operator), puk: pin(s.pins.puk) },
    identities,
    policy: policyToJson(s.policy),
    psks: s.psks.map((p) => ({ identity: b64(p.identity), key: b64(p.key), hash: p.hash })),
    ...(s.ticketKey ? { ticketKey: { id: b64(s.ticketKey.id), key: b64(s.ticketKey.key) } } : {}),
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
  if (o.format !== FORMAT || (o.version !== 1 && o.version !== 2 && o.version !== STATE_VERSION)) bad('unknown format or version');
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
    return { label: i.label, keyType, privateKey, spki, chain, hostNames, ...parseIdentityPolicy(i, n) };
  });
  const labels = new Set(identities.map((i) => i.label));
  if (labels.size !== identities.length) bad('duplicate identity labels');
  return {
    serial: fromHex(o.serial),
    pins: { user: parsePin(pins.user, 'pins.user'), operator: parsePin(pins.operator, 'pins.operator'), puk: parsePin(pins.puk, 'pins.puk') },
    lastTime: int(o.lastTime, 'lastTime', 0, 0xffffffff),
    identities,
    policy: parsePolicy(o.policy),
    psks: parsePsks(o.psks),
    ticketKey: parseTicketKey(o.ticketKey),
  };
}

/** Identity policy fields (state version 3); absent fields (older states) take the defaults. */
function parseIdentityPolicy(i: Record<string, unknown>, n: number): Pick<IdentityRecord, 'clientAuth' | 'exportAllowed' | 'exporterLabels' | 'trustAnchors'> {
  const clientAuth = i.clientAuth ?? DEFAULT_IDENTITY_POLICY.clientAuth;
  if (clientAuth !== 'none' && clientAuth !== 'optional' && clientAuth !== 'required') bad(`identity ${n} clientAuth`);
  const exportAllowed = i.exportAllowed ?? DEFAULT_IDENTITY_POLICY.exportAllowed;
  if (typeof exportAllowed !== 'boolean') bad(`identity ${n} exportAllowed`);
  const labels = i.exporterLabels ?? [];
  if (!Array.isArray(labels) || labels.length > Limits.maxExporterLabels || !labels.every((l) => typeof l === 'string' && validExporterLabel(l))) {
    bad(`identity ${n} exporterLabels`);
  }
  const anchors = i.trustAnchors ?? [];
  if (!Array.isArray(anchors) || anchors.length > Limits.maxTrustAnchors) bad(`identity ${n} trustAnchors`);
  const trustAnchors = anchors.map((a, k) => bytes(a, `identity ${n} trust anchor ${k}`, 1, Limits.maxTrustAnchorBytes));
  return { clientAuth, exportAllowed, exporterLabels: labels as string[], trustAnchors };
}

function parsePsks(v: unknown): PskRecord[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > Limits.maxPsks) bad('psks is not a bounded array');
  const out = v.map((x, n): PskRecord => {
    const p = obj(x, `psk ${n}`);
    if (p.hash !== 'sha256' && p.hash !== 'sha384') bad(`psk ${n} hash`);
    return {
      identity: bytes(p.identity, `psk ${n} identity`, 1, Limits.maxPskIdentity),
      key: bytes(p.key, `psk ${n} key`, Limits.minPskKey, Limits.maxPskKey),
      hash: p.hash,
    };
  });
  if (new Set(out.map((p) => toHex(p.identity))).size !== out.length) bad('duplicate PSK identities');
  return out;
}

function parseTicketKey(v: unknown): TicketKeyRecord | undefined {
  if (v === undefined) return undefined;
  const t = obj(v, 'ticketKey');
  return { id: bytes(t.id, 'ticketKey.id', 4, 4), key: bytes(t.key, 'ticketKey.key', 32, 32) };
}

/** Exporter labels (PUT-IDENTITY-POLICY `42`, EXPORTER `60`): 1–249 bytes of UTF-8 without control characters. */
export function validExporterLabel(label: string): boolean {
  const n = new TextEncoder().encode(label).length;
  // eslint-disable-next-line no-control-regex
  return n >= 1 && n <= Limits.maxExporterLabel && !/[\u0000-\u001f\u007f]/.test(label);
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
