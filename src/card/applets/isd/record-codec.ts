/**
 * card/applets/isd/record-codec: the byte form of the ISD record, in the style of the card state
 * v4 (docs/apdu-protocol.md §6): TLVs with one-byte tags and BER definite lengths in their shortest
 * form (`xx`, `81 xx`, `82 xx xx`, `83 xx xx xx`), fields in this order, nothing else accepted.
 * Integration embeds the whole sequence as the value of one more TLV of the card state.
 *
 *   01 format (01)                    02 lifecycle (1)                 03 UID (16)?
 *   04 next sequence counter (4)
 *   E0 attestation? { 10 PKCS#8 (secret), 11 SPKI, 12 certificate* (leaf first) }
 *   E1 key set* { 20 KVN, 21 K-ENC, 22 K-MAC, 23 K-DEK }         (secret; ascending KVN)
 *   30 locked applet AID*             31 operator root certificate?    32 client-auth CA*
 *   33 revocation list number (4)     34 revoked serial*               35 time anchor? time(4) ‖ counter(4)
 *   39 audit entry* (E2 TLV)
 *   E2 slot* { 40 slot, 41 status, 42 algorithm, 43 policy, 44 locked, 45 generated in card,
 *              46 staged certificate* }                              (ascending slot)
 *   36 audit seq (4)                  37 audit head (32)               38 audit base (32)
 *
 * The three fixed-size audit fields come last, so a record cut short anywhere does not decode.
 *
 * Secrets go from their arrays straight into the one exact-size output of bytes/tlv-tree (no JS
 * strings, no growing buffers); the caller wipes the output after sealing it. Decoding copies every value out of the
 * input, which the caller wipes. Any malformation throws ERR_ISD_STATE. imports bytes/, gp/.
 */
import { freshCopy } from '../../../bytes/index.js';
import { encodeTlvTree, parseStrictTlvs, readTlvFields, type TlvField, type TlvItem, type TlvNode } from '../../../bytes/tlv-tree.js';
import { CardLifecycle, COUNTER_EXHAUSTED, IsdLimits, KeyAlg, SlotStatus, UID_LENGTH } from '../../../gp/admin/constants.js';
import { staticKeys, type StaticKeys } from '../../../gp/keys.js';
import { isScp03Kvn } from '../../../gp/params.js';
import { isdStateError } from './errors.js';
import type { IsdRecord, SlotRecord } from './record.js';

export const RECORD_FORMAT = 0x01;

export const RecordTag = {
  format: 0x01,
  lifecycle: 0x02,
  uid: 0x03,
  sequenceCounter: 0x04,
  attestation: 0xe0,
  attPkcs8: 0x10,
  attSpki: 0x11,
  attCert: 0x12,
  keySet: 0xe1,
  kvn: 0x20,
  enc: 0x21,
  mac: 0x22,
  dek: 0x23,
  lockedApplet: 0x30,
  operatorRoot: 0x31,
  clientCa: 0x32,
  revocationNumber: 0x33,
  revokedSerial: 0x34,
  timeAnchor: 0x35,
  auditSeq: 0x36,
  auditHead: 0x37,
  auditBase: 0x38,
  auditEntry: 0x39,
  slot: 0xe2,
  slotNumber: 0x40,
  slotStatus: 0x41,
  slotAlgorithm: 0x42,
  slotPolicy: 0x43,
  slotLocked: 0x44,
  slotGenerated: 0x45,
  slotStaged: 0x46,
} as const;

type Node = TlvNode;

const fail = (why: string): Error => isdStateError(why);
const encodeNodes = (nodes: readonly Node[]): Uint8Array => encodeTlvTree(nodes, fail);

const leaf = (tag: number, ...parts: Uint8Array[]): Node => ({ tag, parts });
const u8 = (n: number): Uint8Array => Uint8Array.of(n);
function u32(n: number): Uint8Array {
  return Uint8Array.of((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** The record's byte form (holds secrets: the caller wipes it once stored). */
export function encodeIsdRecord(r: IsdRecord): Uint8Array {
  const T = RecordTag;
  const nodes: Node[] = [leaf(T.format, u8(RECORD_FORMAT)), leaf(T.lifecycle, u8(r.lifecycle))];
  if (r.uid) nodes.push(leaf(T.uid, r.uid));
  nodes.push(leaf(T.sequenceCounter, u32(r.sequenceCounter)));
  if (r.attestation) {
    const a = r.attestation;
    nodes.push({ tag: T.attestation, children: [leaf(T.attPkcs8, a.pkcs8), leaf(T.attSpki, a.spki), ...a.chain.map((c) => leaf(T.attCert, c))] });
  }
  for (const k of r.keySets) {
    nodes.push({ tag: T.keySet, children: [leaf(T.kvn, u8(k.kvn)), leaf(T.enc, k.enc), leaf(T.mac, k.mac), leaf(T.dek, k.dek)] });
  }
  for (const a of r.lockedApplets) nodes.push(leaf(T.lockedApplet, a));
  if (r.operatorRoot) nodes.push(leaf(T.operatorRoot, r.operatorRoot));
  for (const c of r.clientCas) nodes.push(leaf(T.clientCa, c));
  nodes.push(leaf(T.revocationNumber, u32(r.revocationNumber)));
  for (const s of r.revokedSerials) nodes.push(leaf(T.revokedSerial, s));
  if (r.timeAnchor) nodes.push(leaf(T.timeAnchor, u32(r.timeAnchor.time), u32(r.timeAnchor.counter)));
  for (const e of r.audit.entries) nodes.push(leaf(T.auditEntry, e));
  for (const s of r.slots) {
    nodes.push({
      tag: T.slot,
      children: [
        leaf(T.slotNumber, u8(s.slot)),
        leaf(T.slotStatus, u8(s.status)),
        leaf(T.slotAlgorithm, u8(s.algorithm)),
        leaf(T.slotPolicy, u8(s.policy)),
        leaf(T.slotLocked, u8(s.locked ? 1 : 0)),
        leaf(T.slotGenerated, u8(s.generatedInCard ? 1 : 0)),
        ...s.staged.map((c) => leaf(T.slotStaged, c)),
      ],
    });
  }
  nodes.push(leaf(T.auditSeq, u32(r.audit.seq)), leaf(T.auditHead, r.audit.head), leaf(T.auditBase, r.audit.base));
  return encodeNodes(nodes);
}

// ------------------------------------------------------------------ decoding

const parseItems = (b: Uint8Array, what: string): TlvItem[] => parseStrictTlvs(b, what, fail);
const readSchema = (items: readonly TlvItem[], schema: readonly TlvField[], what: string): Map<number, Uint8Array[]> => readTlvFields(items, schema, what, fail);

const T = RecordTag;
const L = IsdLimits;
const TOP: readonly TlvField[] = [
  { tag: T.format, minLen: 1, maxLen: 1 },
  { tag: T.lifecycle, minLen: 1, maxLen: 1 },
  { tag: T.uid, min: 0, minLen: UID_LENGTH, maxLen: UID_LENGTH },
  { tag: T.sequenceCounter, minLen: 4, maxLen: 4 },
  { tag: T.attestation, min: 0 },
  { tag: T.keySet, min: 0, max: L.maxKeySets },
  { tag: T.lockedApplet, min: 0, max: 16, minLen: 5, maxLen: 16 },
  { tag: T.operatorRoot, min: 0, minLen: 1, maxLen: L.maxCertBytes },
  { tag: T.clientCa, min: 0, max: L.maxClientCas, minLen: 1, maxLen: L.maxCertBytes },
  { tag: T.revocationNumber, minLen: 4, maxLen: 4 },
  { tag: T.revokedSerial, min: 0, max: L.maxRevokedSerials, minLen: 1, maxLen: L.maxSerialBytes },
  { tag: T.timeAnchor, min: 0, minLen: 8, maxLen: 8 },
  { tag: T.auditEntry, min: 0, max: L.auditEntriesKept, minLen: 1, maxLen: 256 },
  { tag: T.slot, min: 0, max: L.maxSlot },
  { tag: T.auditSeq, minLen: 4, maxLen: 4 },
  { tag: T.auditHead, minLen: 32, maxLen: 32 },
  { tag: T.auditBase, minLen: 32, maxLen: 32 },
];
const ATTESTATION: readonly TlvField[] = [
  { tag: T.attPkcs8, minLen: 1, maxLen: 512 },
  { tag: T.attSpki, minLen: 1, maxLen: 512 },
  { tag: T.attCert, min: 0, max: L.maxChainCerts, minLen: 1, maxLen: L.maxCertBytes },
];
const KEY_SET: readonly TlvField[] = [
  { tag: T.kvn, minLen: 1, maxLen: 1 },
  { tag: T.enc, minLen: 16, maxLen: 32 },
  { tag: T.mac, minLen: 16, maxLen: 32 },
  { tag: T.dek, minLen: 16, maxLen: 32 },
];
const SLOT: readonly TlvField[] = [
  { tag: T.slotNumber, minLen: 1, maxLen: 1 },
  { tag: T.slotStatus, minLen: 1, maxLen: 1 },
  { tag: T.slotAlgorithm, minLen: 1, maxLen: 1 },
  { tag: T.slotPolicy, minLen: 1, maxLen: 1 },
  { tag: T.slotLocked, minLen: 1, maxLen: 1 },
  { tag: T.slotGenerated, minLen: 1, maxLen: 1 },
  { tag: T.slotStaged, min: 0, max: L.maxChainCerts, minLen: 1, maxLen: L.maxCertBytes },
];

const LIFECYCLES: ReadonlySet<number> = new Set(Object.values(CardLifecycle));
const STATUSES: ReadonlySet<number> = new Set(Object.values(SlotStatus));
const ALGS: ReadonlySet<number> = new Set(Object.values(KeyAlg));

const rd32 = (b: Uint8Array, o = 0): number => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
const bool = (b: Uint8Array, what: string): boolean => {
  if (b[0]! > 1) throw isdStateError(`${what} is not 0/1`);
  return b[0] === 1;
};

/** Parses and checks a record's byte form; the result shares no memory with `b`. */
export function decodeIsdRecord(b: Uint8Array): IsdRecord {
  const top = readSchema(parseItems(b, 'record'), TOP, 'record');
  const one = (m: Map<number, Uint8Array[]>, tag: number): Uint8Array => m.get(tag)![0]!;
  const maybe = (m: Map<number, Uint8Array[]>, tag: number): Uint8Array | undefined => m.get(tag)![0];
  if (one(top, T.format)[0] !== RECORD_FORMAT) throw isdStateError(`format ${one(top, T.format)[0]}`);
  const lifecycle = one(top, T.lifecycle)[0]!;
  if (!LIFECYCLES.has(lifecycle)) throw isdStateError(`lifecycle ${lifecycle.toString(16)}`);
  const counter = rd32(one(top, T.sequenceCounter));
  if (counter > COUNTER_EXHAUSTED) throw isdStateError(`sequence counter ${counter}`);
  const uid = maybe(top, T.uid);
  const att = maybe(top, T.attestation);
  let attestation: IsdRecord['attestation'];
  if (att) {
    const a = readSchema(parseItems(att, 'attestation'), ATTESTATION, 'attestation');
    attestation = { pkcs8: freshCopy(one(a, T.attPkcs8)), spki: freshCopy(one(a, T.attSpki)), chain: a.get(T.attCert)!.map(freshCopy) };
  }
  const keySets: StaticKeys[] = top.get(T.keySet)!.map((v, n) => {
    const k = readSchema(parseItems(v, `key set ${n}`), KEY_SET, `key set ${n}`);
    const kvn = one(k, T.kvn)[0]!;
    if (!isScp03Kvn(kvn)) throw isdStateError(`key set ${n}: KVN ${kvn.toString(16)}`);
    try {
      return staticKeys(kvn, one(k, T.enc), one(k, T.mac), one(k, T.dek));
    } catch {
      throw isdStateError(`key set ${n}: keys of unequal or wrong lengths`);
    }
  });
  for (let i = 1; i < keySets.length; i++) if (keySets[i]!.kvn <= keySets[i - 1]!.kvn) throw isdStateError('key sets not in ascending KVN order');
  const ta = maybe(top, T.timeAnchor);
  const slots: SlotRecord[] = top.get(T.slot)!.map((v, n) => {
    const s = readSchema(parseItems(v, `slot ${n}`), SLOT, `slot ${n}`);
    const slot = one(s, T.slotNumber)[0]!;
    const status = one(s, T.slotStatus)[0]!;
    const algorithm = one(s, T.slotAlgorithm)[0]!;
    if (slot < 1 || slot > L.maxSlot || !STATUSES.has(status) || !ALGS.has(algorithm)) throw isdStateError(`slot ${n}: slot, status or algorithm`);
    return {
      slot,
      status: status as SlotRecord['status'],
      algorithm: algorithm as SlotRecord['algorithm'],
      policy: one(s, T.slotPolicy)[0]!,
      locked: bool(one(s, T.slotLocked), `slot ${slot} locked`),
      generatedInCard: bool(one(s, T.slotGenerated), `slot ${slot} generated`),
      staged: s.get(T.slotStaged)!.map(freshCopy),
    };
  });
  for (let i = 1; i < slots.length; i++) if (slots[i]!.slot <= slots[i - 1]!.slot) throw isdStateError('slots not in ascending order');
  const seq = rd32(one(top, T.auditSeq));
  const entries = top.get(T.auditEntry)!.map(freshCopy);
  if (entries.length > seq) throw isdStateError('more audit entries than sequence numbers');
  const head = freshCopy(one(top, T.auditHead));
  const base = freshCopy(one(top, T.auditBase));
  return {
    lifecycle,
    uid: uid ? freshCopy(uid) : undefined,
    sequenceCounter: counter,
    attestation,
    keySets,
    lockedApplets: top.get(T.lockedApplet)!.map(freshCopy),
    operatorRoot: maybe(top, T.operatorRoot) ? freshCopy(one(top, T.operatorRoot)) : undefined,
    clientCas: top.get(T.clientCa)!.map(freshCopy),
    revocationNumber: rd32(one(top, T.revocationNumber)),
    revokedSerials: top.get(T.revokedSerial)!.map(freshCopy),
    timeAnchor: ta ? { time: rd32(ta, 0), counter: rd32(ta, 4) } : undefined,
    audit: { seq, head, base, entries },
    slots,
  };
}
