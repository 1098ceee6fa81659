/**
 * card/applets/isd/record: the security domain's persistent record — everything the ISD keeps
 * across power cycles — as a TypeScript type, with the blank (OP_READY) record and the draft copy.
 * Its byte form is record-codec.ts. imports gp/ (key set type) and gp/admin (constants).
 *
 * Secrets: the attestation private key (PKCS#8) and the SCP03 key sets. Byte arrays are treated as
 * immutable: a change replaces an array, never writes into one, so a draft may share arrays with
 * the committed record.
 */
import type { StaticKeys } from '../../../gp/keys.js';
import { CardLifecycle, type KeyAlg, type SlotStatus } from '../../../gp/admin/constants.js';

export interface AttestationKeyRecord {
  /** PKCS#8 DER of the P-256 attestation private key (secret). */
  readonly pkcs8: Uint8Array;
  readonly spki: Uint8Array;
  /** Manufacturer-signed chain, leaf first (empty until installed). */
  readonly chain: readonly Uint8Array[];
}

/** Administrative facts of one identity slot (the key itself is the TLS applet's). */
export interface SlotRecord {
  readonly slot: number;
  readonly status: SlotStatus;
  readonly algorithm: KeyAlg;
  /** Policy bits (gp/admin PolicyBits). */
  readonly policy: number;
  /** A locked identity refuses new handshakes. */
  readonly locked: boolean;
  readonly generatedInCard: boolean;
  /** A chain installed but not yet activated (leaf first); empty when none. */
  readonly staged: readonly Uint8Array[];
}

export interface AuditRecord {
  /** Sequence number of the last entry (0 = none yet). */
  readonly seq: number;
  /** Chain value after the last entry. */
  readonly head: Uint8Array;
  /** Chain value before the oldest entry kept. */
  readonly base: Uint8Array;
  /** The entries kept (whole E2 TLVs), oldest first. */
  readonly entries: readonly Uint8Array[];
}

export interface IsdRecord {
  lifecycle: number;
  uid: Uint8Array | undefined;
  /** The next SCP03 sequence counter value (0..COUNTER_EXHAUSTED). */
  sequenceCounter: number;
  attestation: AttestationKeyRecord | undefined;
  /** SCP03 key sets, by ascending KVN. */
  keySets: StaticKeys[];
  /** AIDs of locked applets. */
  lockedApplets: Uint8Array[];
  operatorRoot: Uint8Array | undefined;
  clientCas: Uint8Array[];
  revocationNumber: number;
  /** Revoked client-certificate serials (INTEGER content, no redundant leading 00). */
  revokedSerials: Uint8Array[];
  timeAnchor: { readonly time: number; readonly counter: number } | undefined;
  audit: AuditRecord;
  /** By ascending slot. */
  slots: SlotRecord[];
}

/** The record of a card fresh from the fab: OP_READY, nothing else. */
export function blankRecord(): IsdRecord {
  return {
    lifecycle: CardLifecycle.opReady,
    uid: undefined,
    sequenceCounter: 0,
    attestation: undefined,
    keySets: [],
    lockedApplets: [],
    operatorRoot: undefined,
    clientCas: [],
    revocationNumber: 0,
    revokedSerials: [],
    timeAnchor: undefined,
    audit: { seq: 0, head: new Uint8Array(32), base: new Uint8Array(32), entries: [] },
    slots: [],
  };
}

/** A draft copy: every list copied, byte arrays shared (never mutated in place). */
export function cloneRecord(r: IsdRecord): IsdRecord {
  return {
    ...r,
    keySets: [...r.keySets],
    lockedApplets: [...r.lockedApplets],
    clientCas: [...r.clientCas],
    revokedSerials: [...r.revokedSerials],
    audit: { ...r.audit, entries: [...r.audit.entries] },
    slots: [...r.slots],
  };
}

export function findSlot(r: IsdRecord, slot: number): SlotRecord | undefined {
  return r.slots.find((s) => s.slot === slot);
}

/** Replaces (or adds) a slot record, keeping slots sorted. */
export function putSlot(r: IsdRecord, s: SlotRecord): void {
  r.slots = [...r.slots.filter((x) => x.slot !== s.slot), s].sort((a, b) => a.slot - b.slot);
}

export function removeSlot(r: IsdRecord, slot: number): void {
  r.slots = r.slots.filter((x) => x.slot !== slot);
}
