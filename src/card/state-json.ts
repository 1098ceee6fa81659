/**
 * The JSON card states of versions 1–3 (`{"format":"setls-card-state","version":3,…}`), read for
 * migration only: the card writes the binary format v4 (state.ts) from its next write on. Version 1
 * (no policy, P-256 only) and 2 (no identity policies, PSKs or ticket key) load with the defaults.
 * This reader necessarily turns the secrets into strings once, when an old card is opened.
 * Throws ERR_CARD_STATE. imports bytes/, card/ siblings.
 */
import type { KeyObject } from 'node:crypto';
import { SetlsError, fromHex, toHex, wipe } from '../bytes/index.js';
import { Limits } from './constants.js';
import { validExporterLabel, validLabel } from './labels.js';
import type { PinRecord } from './pins.js';
import { DEFAULT_POLICY, policyFromJson, type CardPolicy } from './policy.js';
import { hostNamesOf, loadPrivateKey, stateError } from './state-codec.js';
import { DEFAULT_IDENTITY_POLICY, type CardState, type IdentityRecord, type KeyTypeName, type PskRecord, type TicketKeyRecord } from './state.js';

/** The `format` of the JSON states (versions 1–3). */
const JSON_FORMAT = 'setls-card-state';
const MAX_KEY_DER = 4096;

function bad(why: string): never {
  throw stateError(why);
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

/**
 * The JSON states of versions 1–3 (migration: the card writes v4 from its next write on). Secrets
 * pass through JS strings here, once, when such a state is opened; that cannot be helped.
 */
export function deserializeJsonState(plain: Uint8Array, maxIdentities: number): CardState {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plain));
  } catch (e) {
    throw new SetlsError('ERR_CARD_STATE', 'card state is not valid JSON', { cause: e });
  }
  const o = obj(doc, 'state');
  if (o.format !== JSON_FORMAT || (o.version !== 1 && o.version !== 2 && o.version !== 3)) bad('unknown format or version');
  if (typeof o.serial !== 'string' || !/^[0-9a-f]{16}$/.test(o.serial)) bad('serial is not 8 hex bytes');
  const pins = obj(o.pins, 'pins');
  if (!Array.isArray(o.identities) || o.identities.length > maxIdentities) bad('identities is not a bounded array');
  const identities = o.identities.map((v, n): IdentityRecord => {
    const i = obj(v, `identity ${n}`);
    if (typeof i.label !== 'string' || !validLabel(i.label)) bad(`identity ${n} label`);
    if (i.keyType !== 'p256' && i.keyType !== 'rsa2048') bad(`identity ${n} key type`);
    const keyType: KeyTypeName = i.keyType;
    const pkcs8 = bytes(i.pkcs8, `identity ${n} key`, 1, MAX_KEY_DER);
    const spki = bytes(i.spki, `identity ${n} spki`, 1, MAX_KEY_DER);
    let privateKey: KeyObject;
    try {
      privateKey = loadPrivateKey(pkcs8, keyType, spki, `identity ${n}`);
    } finally {
      wipe(pkcs8);
    }
    if (!Array.isArray(i.chain) || i.chain.length > Limits.maxChainCerts) bad(`identity ${n} chain`);
    const chain = i.chain.map((c, k) => bytes(c, `identity ${n} certificate ${k}`, 1, Limits.maxChainBytes));
    return { label: i.label, keyType, privateKey, spki, chain, hostNames: hostNamesOf(chain, `identity ${n}`), ...parseIdentityPolicy(i, n) };
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
    isd: undefined,
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


function parsePolicy(v: unknown): CardPolicy {
  if (v === undefined) return DEFAULT_POLICY;
  try {
    return policyFromJson(v);
  } catch (e) {
    return bad(`policy: ${(e as Error).message}`);
  }
}
