/**
 * card/applets/isd/functions-identity: the STORE DATA functions on identity slots —
 * GenerateIdentityKey (BF21), AttestKey (BF22), CreateCSR (BF23), InstallCertificateChain (BF24),
 * ActivateIdentity / retire (BF25), DeleteKey (BF26), SetPolicy (BF27), LockIdentity (BF2D).
 * Each state change, with its audit entry, is one platform transaction. The keys themselves are
 * the TLS applet's (platform IdentityKeysDraft); the ISD keeps each slot's status, policy bits,
 * lock and staged chain. CreateCSR may carry the attestation evidence (id-aa-evidence) and an EST
 * challenge text. Byte layouts: docs/admin-protocol.md §5. imports bytes/, gp/admin, isd.
 */
import { concat, encodeBerTlv, toHex } from '../../../bytes/index.js';
import { encodeAttestationStatement, sha256 } from '../../../gp/admin/attestation.js';
import { ActivateAction, Field, Fn, IsdLimits, IsdSw, KeyAlg, LockAction, SlotStatus } from '../../../gp/admin/constants.js';
import { all, fieldList, opt, type Fields } from '../../../gp/admin/fields.js';
import { decodePolicy } from '../../../gp/admin/requests.js';
import { buildCsr, commonNameSubject, isOneSequence } from './der.js';
import type { CommandContext } from './context.js';
import { refuse } from './errors.js';
import { attestationSign, auditFunction, byteField, nonceField, slotField, type FunctionHandler } from './functions-common.js';
import type { IdentityPolicyBits, IsdDraft } from './platform.js';
import { findSlot, putSlot, removeSlot, type IsdRecord, type SlotRecord } from './record.js';
import { checkChain } from './x509.js';

function policyOf(bits: number): IdentityPolicyBits {
  const p = decodePolicy(bits);
  if (!p) refuse(IsdSw.wrongData, `policy bits ${bits.toString(16)}`);
  return p;
}

function slotRecord(r: IsdRecord, slot: number): SlotRecord {
  const s = findSlot(r, slot);
  if (!s) refuse(IsdSw.referencedDataNotFound, `no identity in slot ${slot}`);
  return s;
}

const generateIdentityKey: FunctionHandler = {
  rule: { [Field.slot]: 1, [Field.algorithm]: 1, [Field.policy]: 1 },
  run(ctx, f) {
    const slot = slotField(f);
    const algorithm = byteField(f, Field.algorithm, 'algorithm');
    if (algorithm !== KeyAlg.p256 && algorithm !== KeyAlg.rsa2048) refuse(IsdSw.wrongData, `algorithm ${algorithm}`);
    const bits = opt(f, Field.policy) ? byteField(f, Field.policy, 'policy') : 0;
    const policy = policyOf(bits);
    const spki = ctx.platform.transaction((d) => {
      if (findSlot(d.record, slot) || d.identities.key(slot)) refuse(IsdSw.dataAlreadyExists, `slot ${slot} is occupied`);
      const spki = d.identities.generate(slot, algorithm);
      d.identities.setPolicy(slot, policy);
      putSlot(d.record, { slot, status: SlotStatus.generated, algorithm, policy: bits, locked: false, generatedInCard: true, staged: [] });
      auditFunction(d.record, ctx.platform.now(), Fn.generateIdentityKey, Uint8Array.of(slot, algorithm, ...sha256(spki)), ctx.plain);
      return spki;
    });
    return fieldList([
      [Field.slot, Uint8Array.of(slot)],
      [Field.spki, spki],
    ]);
  },
};

/**
 * The attestation of the slot's key over `nonce` inside a draft, with its audit entry (whose seq is
 * the statement's counter): the E0 statement TLV exactly as signed, then 8F signature.
 */
function attestInDraft(ctx: CommandContext, d: IsdDraft, slot: number, nonce: Uint8Array): Uint8Array {
  const r = d.record;
  const s = slotRecord(r, slot);
  const key = d.identities.key(slot);
  if (!key) refuse(IsdSw.referencedDataNotFound, `no key in slot ${slot}`);
  if (!r.uid) refuse(IsdSw.conditionsNotSatisfied, 'no UID');
  const counter = r.audit.seq + 1;
  const statement = encodeAttestationStatement({
    uid: r.uid,
    slot,
    algorithm: s.algorithm,
    spkiSha256: sha256(key.spki),
    policy: s.policy,
    generatedInCard: s.generatedInCard,
    nonce,
    counter,
  });
  const signature = attestationSign(r, statement);
  const seq = auditFunction(r, ctx.platform.now(), Fn.attestKey, Uint8Array.of(slot, ...sha256(statement)), ctx.plain);
  if (seq !== counter) throw new Error('audit sequence moved under an attestation'); // cannot happen
  return concat(statement, encodeBerTlv(Field.signature, signature));
}

const attestKey: FunctionHandler = {
  rule: { [Field.slot]: 1, [Field.nonce]: 1 },
  run(ctx, f) {
    const slot = slotField(f);
    const nonce = nonceField(f, Field.nonce, true)!;
    return ctx.platform.transaction((d) => attestInDraft(ctx, d, slot, nonce));
  },
};

/** CreateCSR's challenge text (`C6`): printable ASCII, 1..maxChallenge bytes. */
function challengeField(f: Fields): string | undefined {
  const c = opt(f, Field.challenge);
  if (c === undefined) return undefined;
  if (c.length < 1 || c.length > IsdLimits.maxChallenge || !c.every((b) => b >= 0x21 && b <= 0x7e)) refuse(IsdSw.wrongData, 'challenge: 1..127 printable ASCII bytes');
  return String.fromCharCode(...c);
}

const createCsr: FunctionHandler = {
  rule: { [Field.slot]: 1, [Field.subject]: 1, [Field.nonce]: 1, [Field.challenge]: 1, [Field.evidence]: 1 },
  run(ctx, f) {
    const slot = slotField(f);
    const subject = opt(f, Field.subject);
    if (subject && (subject.length > IsdLimits.maxSubject || !isOneSequence(subject))) refuse(IsdSw.wrongData, 'subject must be one DER Name');
    const nonce = nonceField(f, Field.nonce, false);
    const challenge = challengeField(f);
    const withEvidence = opt(f, Field.evidence) !== undefined;
    if (withEvidence && byteField(f, Field.evidence, 'evidence') !== 1) refuse(IsdSw.wrongData, 'evidence: 01 expected');
    if (withEvidence && !nonce) refuse(IsdSw.wrongData, 'evidence needs a nonce');
    const csr = ctx.platform.transaction((d) => {
      const r = d.record;
      const s = slotRecord(r, slot);
      const key = d.identities.key(slot);
      if (!key) refuse(IsdSw.referencedDataNotFound, `no key in slot ${slot}`);
      if (withEvidence && !r.attestation) refuse(IsdSw.conditionsNotSatisfied, 'no attestation key');
      const evidence = withEvidence ? { statementAndSignature: attestInDraft(ctx, d, slot, nonce!), chain: r.attestation!.chain } : undefined;
      const csr = buildCsr({
        subject: subject ?? commonNameSubject(`${toHex(r.uid ?? new Uint8Array(0))}-${slot}`),
        spki: key.spki,
        algorithm: s.algorithm,
        ...(nonce ? { nonce } : {}),
        ...(challenge !== undefined ? { challenge } : {}),
        ...(evidence ? { evidence } : {}),
        sign: (tbs) => d.identities.sign(slot, tbs),
      });
      auditFunction(r, ctx.platform.now(), Fn.createCsr, Uint8Array.of(slot, ...sha256(csr)), ctx.plain);
      return csr;
    });
    return fieldList([[Field.csr, csr]]);
  },
};

const installCertificateChain: FunctionHandler = {
  rule: { [Field.slot]: 1, [Field.certificate]: IsdLimits.maxChainCerts },
  run(ctx, f) {
    const slot = slotField(f);
    const certs = all(f, Field.certificate).map((c) => c.slice());
    return ctx.platform.transaction((d) => {
      const r = d.record;
      const s = slotRecord(r, slot);
      const key = d.identities.key(slot);
      if (!key) refuse(IsdSw.referencedDataNotFound, `no key in slot ${slot}`);
      checkChain(certs, key.spki, r.operatorRoot, `slot ${slot} chain`);
      const status = s.status === SlotStatus.active ? SlotStatus.active : SlotStatus.staged;
      putSlot(r, { ...s, status, staged: certs });
      auditFunction(r, ctx.platform.now(), Fn.installCertificateChain, Uint8Array.of(slot, ...sha256(certs[0]!)), ctx.plain);
      return fieldList([
        [Field.slot, Uint8Array.of(slot)],
        [Field.slotStatus, Uint8Array.of(status)],
      ]);
    });
  },
};

const activateIdentity: FunctionHandler = {
  rule: { [Field.slot]: 1, [Field.action]: 1, [Field.retireSlot]: 1 },
  run(ctx, f) {
    const slot = slotField(f);
    const action = opt(f, Field.action) ? byteField(f, Field.action, 'action') : ActivateAction.activate;
    if (action !== ActivateAction.activate && action !== ActivateAction.retire) refuse(IsdSw.wrongData, `action ${action}`);
    const retireSlot = opt(f, Field.retireSlot) ? slotField(f, Field.retireSlot) : undefined;
    if (retireSlot !== undefined && (retireSlot === slot || action !== ActivateAction.activate)) refuse(IsdSw.wrongData, 'retire slot must be another slot, with activate');
    return ctx.platform.transaction((d) => {
      const r = d.record;
      const s = slotRecord(r, slot);
      let status: number;
      if (action === ActivateAction.activate) {
        if (s.staged.length === 0) refuse(IsdSw.conditionsNotSatisfied, `slot ${slot} has no staged chain`);
        d.identities.setChain(slot, s.staged);
        putSlot(r, { ...s, status: SlotStatus.active, staged: [] });
        status = SlotStatus.active;
        if (retireSlot !== undefined) {
          const o = slotRecord(r, retireSlot);
          if (o.status !== SlotStatus.active) refuse(IsdSw.conditionsNotSatisfied, `slot ${retireSlot} is not active`);
          d.identities.setChain(retireSlot, []);
          putSlot(r, { ...o, status: SlotStatus.retired });
        }
      } else {
        if (s.status !== SlotStatus.active) refuse(IsdSw.conditionsNotSatisfied, `slot ${slot} is not active`);
        d.identities.setChain(slot, []);
        putSlot(r, { ...s, status: SlotStatus.retired });
        status = SlotStatus.retired;
      }
      auditFunction(r, ctx.platform.now(), Fn.activateIdentity, Uint8Array.of(slot, action, retireSlot ?? 0), ctx.plain);
      return fieldList([
        [Field.slot, Uint8Array.of(slot)],
        [Field.slotStatus, Uint8Array.of(status)],
      ]);
    });
  },
};

const deleteKey: FunctionHandler = {
  rule: { [Field.slot]: 1 },
  run(ctx, f) {
    const slot = slotField(f);
    ctx.platform.transaction((d) => {
      if (!findSlot(d.record, slot) && !d.identities.key(slot)) refuse(IsdSw.referencedDataNotFound, `slot ${slot} is empty`);
      d.identities.delete(slot);
      removeSlot(d.record, slot);
      auditFunction(d.record, ctx.platform.now(), Fn.deleteKey, Uint8Array.of(slot));
    });
    return fieldList([[Field.slot, Uint8Array.of(slot)]]);
  },
};

const setPolicy: FunctionHandler = {
  rule: { [Field.slot]: 1, [Field.policy]: 1 },
  run(ctx, f) {
    const slot = slotField(f);
    const bits = byteField(f, Field.policy, 'policy');
    const policy = policyOf(bits);
    ctx.platform.transaction((d) => {
      const s = slotRecord(d.record, slot);
      d.identities.setPolicy(slot, policy);
      putSlot(d.record, { ...s, policy: bits });
      auditFunction(d.record, ctx.platform.now(), Fn.setPolicy, Uint8Array.of(slot, bits));
    });
    return fieldList([
      [Field.slot, Uint8Array.of(slot)],
      [Field.policy, Uint8Array.of(bits)],
    ]);
  },
};

const lockIdentity: FunctionHandler = {
  rule: { [Field.slot]: 1, [Field.action]: 1 },
  run(ctx, f) {
    const slot = slotField(f);
    const action = byteField(f, Field.action, 'action');
    if (action !== LockAction.lock && action !== LockAction.unlock) refuse(IsdSw.wrongData, `action ${action}`);
    const locked = action === LockAction.lock;
    ctx.platform.transaction((d) => {
      const s = slotRecord(d.record, slot);
      putSlot(d.record, { ...s, locked });
      auditFunction(d.record, ctx.platform.now(), Fn.lockIdentity, Uint8Array.of(slot, action));
    });
    return fieldList([
      [Field.slot, Uint8Array.of(slot)],
      [Field.locked, Uint8Array.of(locked ? 1 : 0)],
    ]);
  },
};

export const IDENTITY_FUNCTIONS: ReadonlyMap<number, FunctionHandler> = new Map([
  [Fn.generateIdentityKey, generateIdentityKey],
  [Fn.attestKey, attestKey],
  [Fn.createCsr, createCsr],
  [Fn.installCertificateChain, installCertificateChain],
  [Fn.activateIdentity, activateIdentity],
  [Fn.deleteKey, deleteKey],
  [Fn.setPolicy, setPolicy],
  [Fn.lockIdentity, lockIdentity],
]);
