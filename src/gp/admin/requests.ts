/**
 * gp/admin/requests: the off-card side of the STORE DATA functions — one builder per function
 * request (the BER-TLV that `buildStoreData` splits into blocks) and the parsers of their responses.
 * The byte layout of each is in docs/admin-protocol.md §5. imports bytes/.
 */
import { encodeBerTlv } from '../../bytes/index.js';
import { ActivateAction, AnchorRole, ClientAuthMode, Field, Fn, LockAction, PinAction, PinRef, PolicyBits, SignedTag, SlotStatus } from './constants.js';
import { AdminFormatError, all, be, opt, readFields, req, tlv, uint, unwrapOne, type FieldRule, type Fields } from './fields.js';
import type { AuditPage } from './audit.js';

export type ClientAuth = keyof typeof ClientAuthMode;

export interface IdentityPolicy {
  readonly exportAllowed: boolean;
  readonly clientAuth: ClientAuth;
}

export function encodePolicy(p: IdentityPolicy): number {
  return (p.exportAllowed ? PolicyBits.exportAllowed : 0) | (ClientAuthMode[p.clientAuth] << PolicyBits.clientAuthShift);
}

/** Decodes policy bits; undefined for reserved bits or client-auth value 3. */
export function decodePolicy(bits: number): IdentityPolicy | undefined {
  if ((bits & ~(PolicyBits.exportAllowed | PolicyBits.clientAuthMask)) !== 0) return undefined;
  const ca = (bits & PolicyBits.clientAuthMask) >> PolicyBits.clientAuthShift;
  const clientAuth = (Object.keys(ClientAuthMode) as ClientAuth[]).find((k) => ClientAuthMode[k] === ca);
  if (!clientAuth) return undefined;
  return { exportAllowed: (bits & PolicyBits.exportAllowed) !== 0, clientAuth };
}

const b1 = (n: number): Uint8Array => Uint8Array.of(n);

export const AdminRequest = {
  getCardInfo: (): Uint8Array => tlv(Fn.getCardInfo, []),
  generateIdentityKey: (o: { slot: number; algorithm: number; policy?: IdentityPolicy }): Uint8Array =>
    tlv(Fn.generateIdentityKey, [
      [Field.slot, b1(o.slot)],
      [Field.algorithm, b1(o.algorithm)],
      [Field.policy, o.policy ? b1(encodePolicy(o.policy)) : undefined],
    ]),
  attestKey: (o: { slot: number; nonce: Uint8Array }): Uint8Array =>
    tlv(Fn.attestKey, [
      [Field.slot, b1(o.slot)],
      [Field.nonce, o.nonce],
    ]),
  /** `challenge`: the challengePassword text; `evidence`: embed the attestation over `nonce` (id-aa-evidence). */
  createCsr: (o: { slot: number; subject?: Uint8Array; nonce?: Uint8Array; challenge?: string; evidence?: boolean }): Uint8Array =>
    tlv(Fn.createCsr, [
      [Field.slot, b1(o.slot)],
      [Field.subject, o.subject],
      [Field.nonce, o.nonce],
      [Field.challenge, o.challenge !== undefined ? new TextEncoder().encode(o.challenge) : undefined],
      [Field.evidence, o.evidence ? b1(1) : undefined],
    ]),
  installCertificateChain: (o: { slot: number; certificates: readonly Uint8Array[] }): Uint8Array =>
    tlv(Fn.installCertificateChain, [[Field.slot, b1(o.slot)], ...o.certificates.map((c) => [Field.certificate, c] as const)]),
  activateIdentity: (o: { slot: number; retire?: boolean; retireSlot?: number }): Uint8Array =>
    tlv(Fn.activateIdentity, [
      [Field.slot, b1(o.slot)],
      [Field.action, b1(o.retire ? ActivateAction.retire : ActivateAction.activate)],
      [Field.retireSlot, o.retireSlot !== undefined ? b1(o.retireSlot) : undefined],
    ]),
  deleteKey: (o: { slot: number }): Uint8Array => tlv(Fn.deleteKey, [[Field.slot, b1(o.slot)]]),
  setPolicy: (o: { slot: number; policy: IdentityPolicy }): Uint8Array =>
    tlv(Fn.setPolicy, [
      [Field.slot, b1(o.slot)],
      [Field.policy, b1(encodePolicy(o.policy))],
    ]),
  putTrustAnchors: (o: { role: 'operator-root' | 'client-ca'; certificates: readonly Uint8Array[] }): Uint8Array =>
    tlv(Fn.putTrustAnchors, [
      [Field.anchorRole, b1(o.role === 'operator-root' ? AnchorRole.operatorRoot : AnchorRole.clientCa)],
      ...o.certificates.map((c) => [Field.certificate, c] as const),
    ]),
  putRevocationList: (o: { number: number; serials: readonly Uint8Array[] }): Uint8Array =>
    tlv(Fn.putRevocationList, [[Field.number, be(o.number, 4)], ...o.serials.map((s) => [Field.serial, s] as const)]),
  /** `content` is the whole E3 TLV (time-anchor.ts), `signature` the operator root's over it. */
  putTimeAnchor: (o: { content: Uint8Array; signature: Uint8Array }): Uint8Array => {
    const value = unwrapOne(o.content, SignedTag.timeAnchor, 'time anchor');
    return tlv(Fn.putTimeAnchor, [
      [SignedTag.timeAnchor, value],
      [Field.signature, o.signature],
    ]);
  },
  readAuditLog: (o: { from?: number; max?: number; nonce?: Uint8Array } = {}): Uint8Array =>
    tlv(Fn.readAuditLog, [
      [Field.fromSeq, o.from !== undefined ? be(o.from, 4) : undefined],
      [Field.maxEntries, o.max !== undefined ? b1(o.max) : undefined],
      [Field.nonce, o.nonce],
    ]),
  /** `newPin`: the 8-byte padded PIN (ASCII digits then FF), with action set-and-unblock only. */
  resetPin: (o: { pin: 'user' | 'operator'; newPin?: Uint8Array }): Uint8Array =>
    tlv(Fn.resetPin, [
      [Field.pinRef, b1(PinRef[o.pin])],
      [Field.action, b1(o.newPin ? PinAction.setAndUnblock : PinAction.unblockOnly)],
      [Field.newPin, o.newPin],
    ]),
  lockIdentity: (o: { slot: number; lock: boolean }): Uint8Array =>
    tlv(Fn.lockIdentity, [
      [Field.slot, b1(o.slot)],
      [Field.action, b1(o.lock ? LockAction.lock : LockAction.unlock)],
    ]),
  factorySetUid: (uid: Uint8Array): Uint8Array => tlv(Fn.factorySetUid, [[Field.uid, uid]]),
  factoryGenerateAttestationKey: (): Uint8Array => tlv(Fn.factoryGenerateAttestationKey, []),
  factoryInstallAttestationChain: (certificates: readonly Uint8Array[]): Uint8Array =>
    tlv(Fn.factoryInstallAttestationChain, certificates.map((c) => [Field.certificate, c] as const)),
  /** Factory key set in clear (the factory link is trusted; OP_READY only): KVN ‖ K-ENC ‖ K-MAC ‖ K-DEK. */
  factoryPutKeys: (keyBlock: Uint8Array): Uint8Array => tlv(Fn.factoryPutKeys, [[Field.factoryKeySet, keyBlock]]),
} as const;

/** What each function's response may hold (tag → most occurrences). */
export const RESPONSE_RULES: Readonly<Record<number, FieldRule>> = {
  [Fn.getCardInfo]: {
    [Field.uid]: 1,
    [Field.lifecycle]: 1,
    [Field.kvnList]: 1,
    [Field.sequenceCounter]: 1,
    [Field.failedAuths]: 1,
    [Field.auditSeq]: 1,
    [Field.auditHead]: 1,
    [Field.number]: 1,
    [Field.timeAnchorSummary]: 1,
    [Field.operatorRootDigest]: 1,
    [Field.clientCaDigest]: 1,
    [Field.slotSummary]: 8,
  },
  [Fn.generateIdentityKey]: { [Field.slot]: 1, [Field.spki]: 1 },
  [Fn.attestKey]: { [SignedTag.attestation]: 1, [Field.signature]: 1 },
  [Fn.createCsr]: { [Field.csr]: 1 },
  [Fn.installCertificateChain]: { [Field.slot]: 1, [Field.slotStatus]: 1 },
  [Fn.activateIdentity]: { [Field.slot]: 1, [Field.slotStatus]: 1 },
  [Fn.deleteKey]: { [Field.slot]: 1 },
  [Fn.setPolicy]: { [Field.slot]: 1, [Field.policy]: 1 },
  [Fn.putTrustAnchors]: { [Field.anchorRole]: 1, [Field.digest]: 1 },
  [Fn.putRevocationList]: { [Field.number]: 1, [Field.digest]: 1 },
  [Fn.putTimeAnchor]: { [Field.time]: 1, [Field.number]: 1 },
  [Fn.readAuditLog]: { [SignedTag.auditHead]: 1, [Field.signature]: 1, [Field.hashBefore]: 1, [SignedTag.auditEntry]: 64, [Field.hashAfter]: 1 },
  [Fn.resetPin]: { [Field.pinRef]: 1 },
  [Fn.lockIdentity]: { [Field.slot]: 1, [Field.locked]: 1 },
  [Fn.factorySetUid]: { [Field.uid]: 1 },
  [Fn.factoryGenerateAttestationKey]: { [Field.spki]: 1, [Field.csr]: 1 },
  [Fn.factoryInstallAttestationChain]: { [Field.digest]: 1 },
  [Fn.factoryPutKeys]: { [Field.keyCheckValues]: 1 },
};

/** Parses a function response: one TLV with the function's tag, its fields per RESPONSE_RULES. */
export function parseFunctionResponse(fn: number, data: Uint8Array): Fields {
  const rule = RESPONSE_RULES[fn];
  if (!rule) throw new AdminFormatError(`unknown function ${fn.toString(16)}`);
  return readFields(unwrapOne(data, fn, 'function response'), rule, `response ${fn.toString(16).toUpperCase()}`);
}

export interface SlotSummary {
  readonly slot: number;
  readonly algorithm: number;
  readonly status: number;
  readonly policy: number;
  readonly locked: boolean;
  readonly spkiSha256: Uint8Array;
}

export interface CardInfo {
  readonly uid: Uint8Array;
  readonly lifecycle: number;
  readonly kvns: readonly number[];
  readonly nextCounter: number;
  readonly failedAuths: number;
  readonly auditSeq: number;
  readonly auditHead: Uint8Array;
  readonly revocationNumber: number;
  readonly timeAnchor?: { readonly time: number; readonly counter: number };
  readonly operatorRootSha256?: Uint8Array;
  readonly clientCaSha256?: Uint8Array;
  readonly slots: readonly SlotSummary[];
}

const SLOT_RULE: FieldRule = { [Field.slot]: 1, [Field.algorithm]: 1, [Field.slotStatus]: 1, [Field.policy]: 1, [Field.locked]: 1, [Field.digest]: 1 };

export function parseCardInfo(data: Uint8Array): CardInfo {
  const w = 'GetCardInfo';
  const f = parseFunctionResponse(Fn.getCardInfo, data);
  const ta = opt(f, Field.timeAnchorSummary);
  const taf = ta ? readFields(ta, { [Field.time]: 1, [Field.number]: 1 }, w) : undefined;
  const root = opt(f, Field.operatorRootDigest);
  const cas = opt(f, Field.clientCaDigest);
  return {
    uid: req(f, Field.uid, w),
    lifecycle: uint(req(f, Field.lifecycle, w), 1, w),
    kvns: [...req(f, Field.kvnList, w)],
    nextCounter: uint(req(f, Field.sequenceCounter, w), 4, w),
    failedAuths: uint(req(f, Field.failedAuths, w), 2, w),
    auditSeq: uint(req(f, Field.auditSeq, w), 4, w),
    auditHead: req(f, Field.auditHead, w),
    revocationNumber: uint(req(f, Field.number, w), 4, w),
    ...(taf ? { timeAnchor: { time: uint(req(taf, Field.time, w), 4, w), counter: uint(req(taf, Field.number, w), 4, w) } } : {}),
    ...(root ? { operatorRootSha256: root } : {}),
    ...(cas ? { clientCaSha256: cas } : {}),
    slots: all(f, Field.slotSummary).map((v) => {
      const s = readFields(v, SLOT_RULE, `${w} slot`);
      return {
        slot: uint(req(s, Field.slot, w), 1, w),
        algorithm: uint(req(s, Field.algorithm, w), 1, w),
        status: uint(req(s, Field.slotStatus, w), 1, w),
        policy: uint(req(s, Field.policy, w), 1, w),
        locked: uint(req(s, Field.locked, w), 1, w) === 1,
        spkiSha256: req(s, Field.digest, w),
      };
    }),
  };
}

/** AttestKey's answer: the E0 statement TLV (the signed bytes) and the signature. */
export function parseAttestKeyResponse(data: Uint8Array): { statement: Uint8Array; signature: Uint8Array } {
  const f = parseFunctionResponse(Fn.attestKey, data);
  return { statement: encodeBerTlv(SignedTag.attestation, req(f, SignedTag.attestation, 'AttestKey')), signature: req(f, Field.signature, 'AttestKey') };
}

/** ReadAuditLog's answer as an AuditPage (audit.ts verifies it). */
export function parseAuditLogResponse(data: Uint8Array): AuditPage {
  const w = 'ReadAuditLog';
  const f = parseFunctionResponse(Fn.readAuditLog, data);
  return {
    headStatement: encodeBerTlv(SignedTag.auditHead, req(f, SignedTag.auditHead, w)),
    signature: req(f, Field.signature, w),
    hashBefore: req(f, Field.hashBefore, w),
    entries: all(f, SignedTag.auditEntry).map((v) => encodeBerTlv(SignedTag.auditEntry, v)),
    hashAfter: req(f, Field.hashAfter, w),
  };
}

export const SLOT_STATUS_NAMES: Readonly<Record<number, string>> = {
  [SlotStatus.generated]: 'generated',
  [SlotStatus.staged]: 'staged',
  [SlotStatus.active]: 'active',
  [SlotStatus.retired]: 'retired',
};
