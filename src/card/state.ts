/**
 * The card's persistent state (what the sealed store holds) and its byte form.
 *
 * Written: state format v4, binary (docs/apdu-protocol.md §6 has it byte by byte):
 *
 *   04 ‖ E0 { 02 serial(8), 07 lastTime(4), 04/05/06 PIN records of the user PIN, operator PIN, PUK
 *             (tries(1) ‖ max(1) ‖ salt(16) ‖ hash(32)), 09 policy (the PUT-POLICY TLVs 30..39),
 *             E1 identity* { 80 label, 10 key type, 14 PKCS#8, 11 SPKI, 12 certificate*, 40 client
 *                            auth, 41 export allowed, 42 exporter label*, 43 trust anchor* },
 *             E2 PSK* { 50 identity, 51 key, 52 hash }, 0D ticket key? (id(4) ‖ key(32)),
 *             0E pending PIN attempt* (PIN ref(1) ‖ tag(32): 00 user, 01 operator, 02 PUK),
 *             E3 security domain record? (card/applets/isd/record-codec.ts: its TLVs as the value) }

 * TLVs have one-byte tags and shortest-form BER lengths (state-codec.ts); fields come in this
 * order; anything else (unknown or out-of-order tags, bad sizes, trailing bytes) is ERR_CARD_STATE.
 * Secrets go from their Uint8Arrays (and the PKCS#8 Buffer that `KeyObject.export` returns, wiped
 * once copied) straight into the output array and never become a JS string, so the caller can wipe
 * every copy; decoding copies secrets out of the input into fresh arrays and parses the private keys
 * from views of the input.
 *
 * Read for migration: the JSON of versions 1–3 (state-json.ts), told apart by its first byte `{`;
 * the next write stores v4. Host names are not stored: they are re-derived from each leaf
 * certificate on load. Labels: labels.ts.
 *
 * A card made before the security domain existed has no `E3`: it has no security domain
 * (`isd` undefined; its ISD applet answers SELECT with 6A82). `EmulatedCard.create` writes a blank
 * record (OP_READY) that factory personalisation fills in and seals.
 *
 * Secrets: the identities' private keys (KeyObjects in memory, PKCS8 in the serialized bytes,
 * which the caller wipes after sealing / after loading), the PIN hashes, the PSK keys, the ticket
 * key, and the security domain's attestation key and SCP03 key sets. imports bytes/, protocol/,
 * card/ siblings (apdu/ via errors, tls/ via policy) and node built-ins.
 */
import type { KeyObject } from 'node:crypto';
import { freshCopy, readU32, toHex, u32, wipe } from '../bytes/index.js';
import { ClientAuthCode, IsdLimits, KeyType } from '../protocol/index.js';
import { Limits } from './constants.js';
import { PENDING_TAG_BYTES, type PinRecord } from './pins.js';
import { DEFAULT_POLICY, applyPolicyTlv, encodePolicyTlv, type CardPolicy } from './policy.js';
import { encodeTree, hostNamesOf, loadPrivateKey, parseItems, readFields, stateError, utf8Text, type Field, type Node } from './state-codec.js';
import { validExporterLabel, validLabel } from './labels.js';
import { deserializeJsonState } from './state-json.js';
import { cloneRecord, decodeIsdRecord, encodeIsdRecord, type IsdRecord } from './applets/isd/index.js';

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
  /**
   * The security domain's record (card/applets/isd); undefined on a card made before the security
   * domain existed: it has no security domain ("no security domain personalised").
   */
  isd: IsdRecord | undefined;
}

export type PinName = keyof CardState['pins'];

/** The version written: the binary format v4 (its first byte). JSON versions 1–3 still load. */
export const STATE_VERSION = 4;

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
    isd: s.isd ? cloneRecord(s.isd) : undefined,
  };
}

// ---------------------------------------------------------------- state format v4

/** Tags of the v4 state (docs/apdu-protocol.md §6). Where the APDUs have a tag for a field, it is reused. */
export const StateTag = {
  /** The one TLV after the version byte; it holds all the others. */
  state: 0xe0,
  serial: 0x02,
  lastTime: 0x07,
  userPin: 0x04,
  operatorPin: 0x05,
  puk: 0x06,
  policy: 0x09,
  identity: 0xe1,
  psk: 0xe2,
  ticketKey: 0x0d,
  /** A charged PIN attempt whose success was not recorded: PIN ref(1) ‖ pending tag(32) (pins.ts). */
  pendingAttempt: 0x0e,
  /** The security domain's record (its own TLV codec, card/applets/isd/record-codec.ts). */
  isd: 0xe3,
  // inside an identity (E1)
  label: 0x80,
  keyType: 0x10,
  pkcs8: 0x14,
  spki: 0x11,
  certificate: 0x12,
  clientAuth: 0x40,
  exportAllowed: 0x41,
  exporterLabel: 0x42,
  trustAnchor: 0x43,
  // inside a PSK (E2)
  pskIdentity: 0x50,
  pskKey: 0x51,
  pskHash: 0x52,
} as const;

/** Labelled identities (GENERATE-KEY) and the security domain's slot identities (`slot1`–`slot8`). */
const MAX_STORED_IDENTITIES = Limits.maxIdentities + IsdLimits.maxSlot;

/** A PIN record: tries(1) ‖ max(1) ‖ salt(16) ‖ hash(32). */
const PIN_RECORD = 50;
/** The ticket key record: id(4) ‖ key(32). */
const TICKET_KEY_RECORD = 36;
const MAX_KEY_DER = 4096;

const TOP_FIELDS: readonly Field[] = [
  { tag: StateTag.serial, name: 'serial', minLen: 8, maxLen: 8 },
  { tag: StateTag.lastTime, name: 'lastTime', minLen: 4, maxLen: 4 },
  { tag: StateTag.userPin, name: 'user PIN', minLen: PIN_RECORD, maxLen: PIN_RECORD },
  { tag: StateTag.operatorPin, name: 'operator PIN', minLen: PIN_RECORD, maxLen: PIN_RECORD },
  { tag: StateTag.puk, name: 'PUK', minLen: PIN_RECORD, maxLen: PIN_RECORD },
  { tag: StateTag.policy, name: 'policy', minLen: 1, maxLen: 1024 },
  { tag: StateTag.identity, name: 'identity', min: 0, max: MAX_STORED_IDENTITIES },
  { tag: StateTag.psk, name: 'PSK', min: 0, max: Limits.maxPsks },
  { tag: StateTag.ticketKey, name: 'ticket key', min: 0, max: 1, minLen: TICKET_KEY_RECORD, maxLen: TICKET_KEY_RECORD },
  // Added after the first v4 cards: optional and last, so their states still load.
  { tag: StateTag.pendingAttempt, name: 'pending PIN attempt', min: 0, max: 3, minLen: 1 + PENDING_TAG_BYTES, maxLen: 1 + PENDING_TAG_BYTES },
  { tag: StateTag.isd, name: 'security domain', min: 0, max: 1, minLen: 1 },
];

/** The PIN a pending-attempt record belongs to (its first byte). */
const PIN_REFS: readonly PinName[] = ['user', 'operator', 'puk'];

const IDENTITY_FIELDS: readonly Field[] = [
  { tag: StateTag.label, name: 'label', minLen: 1, maxLen: Limits.maxLabel },
  { tag: StateTag.keyType, name: 'key type', minLen: 1, maxLen: 1 },
  { tag: StateTag.pkcs8, name: 'private key', minLen: 1, maxLen: MAX_KEY_DER },
  { tag: StateTag.spki, name: 'SPKI', minLen: 1, maxLen: MAX_KEY_DER },
  { tag: StateTag.certificate, name: 'certificate', min: 0, max: Limits.maxChainCerts, minLen: 1, maxLen: Limits.maxChainBytes },
  { tag: StateTag.clientAuth, name: 'client auth', minLen: 1, maxLen: 1 },
  { tag: StateTag.exportAllowed, name: 'export allowed', minLen: 1, maxLen: 1 },
  { tag: StateTag.exporterLabel, name: 'exporter label', min: 0, max: Limits.maxExporterLabels, minLen: 1, maxLen: Limits.maxExporterLabel },
  { tag: StateTag.trustAnchor, name: 'trust anchor', min: 0, max: Limits.maxTrustAnchors, minLen: 1, maxLen: Limits.maxTrustAnchorBytes },
];

const PSK_FIELDS: readonly Field[] = [
  { tag: StateTag.pskIdentity, name: 'identity', minLen: 1, maxLen: Limits.maxPskIdentity },
  { tag: StateTag.pskKey, name: 'key', minLen: Limits.minPskKey, maxLen: Limits.maxPskKey },
  { tag: StateTag.pskHash, name: 'hash', minLen: 1, maxLen: 1 },
];

const CLIENT_AUTH: readonly ClientAuth[] = ['none', 'optional', 'required'];
const PSK_HASH: readonly PskRecord['hash'][] = ['sha256', 'sha384'];

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const leaf = (tag: number, ...parts: Uint8Array[]): Node => ({ tag, parts });

/**
 * The state in format v4. Holds private keys, PIN hashes, PSK keys and the ticket key: the caller
 * wipes the result after sealing. No secret becomes a string on the way.
 */
export function serializeState(s: CardState): Uint8Array {
  const exported: Uint8Array[] = [];
  let isd: Uint8Array | undefined;
  try {
    const pin = (tag: number, p: PinRecord): Node => leaf(tag, Uint8Array.of(p.tries, p.max), p.salt, p.hash);
    const nodes: Node[] = [
      leaf(StateTag.serial, s.serial),
      leaf(StateTag.lastTime, u32(s.lastTime)),
      pin(StateTag.userPin, s.pins.user),
      pin(StateTag.operatorPin, s.pins.operator),
      pin(StateTag.puk, s.pins.puk),
      leaf(StateTag.policy, encodePolicyTlv(s.policy)),
    ];
    for (const i of s.identities) {
      const pkcs8 = i.privateKey.export({ format: 'der', type: 'pkcs8' });
      exported.push(pkcs8);
      nodes.push({
        tag: StateTag.identity,
        children: [
          leaf(StateTag.label, utf8(i.label)),
          leaf(StateTag.keyType, Uint8Array.of(KeyType[i.keyType])),
          leaf(StateTag.pkcs8, pkcs8),
          leaf(StateTag.spki, i.spki),
          ...i.chain.map((c) => leaf(StateTag.certificate, c)),
          leaf(StateTag.clientAuth, Uint8Array.of(ClientAuthCode[i.clientAuth])),
          leaf(StateTag.exportAllowed, Uint8Array.of(i.exportAllowed ? 1 : 0)),
          ...i.exporterLabels.map((l) => leaf(StateTag.exporterLabel, utf8(l))),
          ...i.trustAnchors.map((a) => leaf(StateTag.trustAnchor, a)),
        ],
      });
    }
    for (const p of s.psks) {
      nodes.push({
        tag: StateTag.psk,
        children: [leaf(StateTag.pskIdentity, p.identity), leaf(StateTag.pskKey, p.key), leaf(StateTag.pskHash, Uint8Array.of(PSK_HASH.indexOf(p.hash)))],
      });
    }
    if (s.ticketKey) nodes.push(leaf(StateTag.ticketKey, s.ticketKey.id, s.ticketKey.key));
    PIN_REFS.forEach((name, ref) => {
      const p = s.pins[name].pending;
      if (p) nodes.push(leaf(StateTag.pendingAttempt, Uint8Array.of(ref), p));
    });
    if (s.isd) {
      isd = encodeIsdRecord(s.isd);
      nodes.push(leaf(StateTag.isd, isd));
    }
    return encodeTree(STATE_VERSION, [{ tag: StateTag.state, children: nodes }]);
  } finally {
    wipe(...exported, isd);
  }
}

/**
 * Parses and validates a serialized state: format v4, or the JSON of versions 1–3 (first byte `{`).
 * Throws ERR_CARD_STATE. The result shares no memory with `plain`, which the caller wipes.
 */
export function deserializeState(plain: Uint8Array): CardState {
  if (!(plain instanceof Uint8Array) || plain.length === 0) bad('empty');
  if (plain[0] === STATE_VERSION) return decodeV4(plain);
  if (plain[0] === 0x7b /* '{' */) return deserializeJsonState(plain, MAX_STORED_IDENTITIES);
  return bad(`unknown state format (first byte 0x${plain[0]!.toString(16).padStart(2, '0')})`);
}

function decodeV4(plain: Uint8Array): CardState {
  const one = (m: Map<number, Uint8Array[]>, tag: number): Uint8Array => m.get(tag)![0]!;
  const outer = readFields(parseItems(plain.subarray(1), 'state'), [{ tag: StateTag.state, name: 'state TLV' }], 'state');
  const top = readFields(parseItems(one(outer, StateTag.state), 'state'), TOP_FIELDS, 'state');
  const pin = (tag: number, what: string): PinRecord => {
    const v = one(top, tag);
    const tries = v[0]!;
    const max = v[1]!;
    if (max < 1 || max > 15 || tries > max) bad(`${what}: tries ${tries} / max ${max}`);
    return { tries, max, salt: freshCopy(v.subarray(2, 18)), hash: freshCopy(v.subarray(18, 50)) };
  };
  const policyBytes = one(top, StateTag.policy);
  let policy: CardPolicy;
  try {
    policy = applyPolicyTlv(policyBytes, DEFAULT_POLICY);
  } catch (e) {
    throw stateError(`policy: ${(e as Error).message}`, e);
  }
  const identities = top.get(StateTag.identity)!.map((v, n) => decodeIdentity(v, n));
  if (new Set(identities.map((i) => i.label)).size !== identities.length) bad('duplicate identity labels');
  const psks = top.get(StateTag.psk)!.map((v, n): PskRecord => {
    const f = readFields(parseItems(v, `PSK ${n}`), PSK_FIELDS, `PSK ${n}`);
    const hash = PSK_HASH[one(f, StateTag.pskHash)[0]!];
    if (!hash) bad(`PSK ${n} hash`);
    return { identity: freshCopy(one(f, StateTag.pskIdentity)), key: freshCopy(one(f, StateTag.pskKey)), hash };
  });
  if (new Set(psks.map((p) => toHex(p.identity))).size !== psks.length) bad('duplicate PSK identities');
  const t = top.get(StateTag.ticketKey)![0];
  const pins = { user: pin(StateTag.userPin, 'user PIN'), operator: pin(StateTag.operatorPin, 'operator PIN'), puk: pin(StateTag.puk, 'PUK') };
  for (const v of top.get(StateTag.pendingAttempt)!) {
    const name = PIN_REFS[v[0]!];
    if (!name) bad(`pending PIN attempt for unknown PIN ${v[0]}`);
    if (pins[name].pending) bad(`two pending attempts for the ${name} PIN`);
    pins[name].pending = freshCopy(v.subarray(1));
  }
  const isdBytes = top.get(StateTag.isd)![0];
  let isd: IsdRecord | undefined;
  if (isdBytes) {
    try {
      isd = decodeIsdRecord(isdBytes);
    } catch (e) {
      throw stateError(`security domain: ${(e as Error).message}`, e);
    }
  }
  return {
    serial: freshCopy(one(top, StateTag.serial)),
    pins,
    lastTime: readU32(one(top, StateTag.lastTime), 0),
    identities,
    policy,
    psks,
    ticketKey: t ? { id: freshCopy(t.subarray(0, 4)), key: freshCopy(t.subarray(4, 36)) } : undefined,
    isd,
  };
}

function decodeIdentity(v: Uint8Array, n: number): IdentityRecord {
  const what = `identity ${n}`;
  const f = readFields(parseItems(v, what), IDENTITY_FIELDS, what);
  const one = (tag: number): Uint8Array => f.get(tag)![0]!;
  const label = utf8Text(one(StateTag.label), `${what} label`);
  if (!validLabel(label)) bad(`${what} label`);
  const kt = one(StateTag.keyType)[0];
  const keyType: KeyTypeName | undefined = kt === KeyType.p256 ? 'p256' : kt === KeyType.rsa2048 ? 'rsa2048' : undefined;
  if (!keyType) bad(`${what} key type`);
  const spki = freshCopy(one(StateTag.spki));
  // the private key is parsed from a view of the input (no copy to wipe); the caller wipes the input
  const privateKey = loadPrivateKey(one(StateTag.pkcs8), keyType, spki, what);
  const chain = f.get(StateTag.certificate)!.map(freshCopy);
  const clientAuth = CLIENT_AUTH[one(StateTag.clientAuth)[0]!];
  if (!clientAuth) bad(`${what} client auth`);
  const e = one(StateTag.exportAllowed)[0]!;
  if (e > 1) bad(`${what} export allowed`);
  const exporterLabels = f.get(StateTag.exporterLabel)!.map((l, k) => {
    const s = utf8Text(l, `${what} exporter label ${k}`);
    if (!validExporterLabel(s)) bad(`${what} exporter label ${k}`);
    return s;
  });
  const trustAnchors = f.get(StateTag.trustAnchor)!.map(freshCopy);
  return { label, keyType, privateKey, spki, chain, hostNames: hostNamesOf(chain, what), clientAuth, exportAllowed: e === 1, exporterLabels, trustAnchors };
}

function bad(why: string): never {
  throw stateError(why);
}

export { validExporterLabel, validLabel, decodeLabel } from './labels.js';
