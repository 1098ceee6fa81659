/**
 * card/applets/isd/functions-card: GetCardInfo (BF20), ReadAuditLog (BF2B) — the two reads, also
 * answered by a TERMINATED card — and ResetPin (BF2C: set a new user or operator PIN and unblock
 * it, or reset its retry counter only; the new PIN only ever travels C-DECRYPTION-encrypted).
 * imports bytes/, gp/admin, isd siblings.
 */
import { concat, encodeBerTlv, encodeBerTlvs, wipe } from '../../../bytes/index.js';
import { sha256 } from '../../../gp/admin/attestation.js';
import { encodeAuditHead } from '../../../gp/admin/audit.js';
import { Field, Fn, IsdLimits, IsdSw, PinAction, PinRef } from '../../../gp/admin/constants.js';
import { be, fieldList, opt } from '../../../gp/admin/fields.js';
import { auditSlice } from './audit-log.js';
import { refuse } from './errors.js';
import { attestationSign, auditFunction, byteField, nonceField, u32Field, type FunctionHandler } from './functions-common.js';
import { anchorsDigest } from './functions-trust.js';

const getCardInfo: FunctionHandler = {
  rule: {},
  run(ctx) {
    ctx.platform.sync?.();
    const r = ctx.platform.record();
    const keys = ctx.platform.identities();
    const slots = r.slots.map((s) =>
      encodeBerTlv(
        Field.slotSummary,
        encodeBerTlvs([
          { tag: Field.slot, value: Uint8Array.of(s.slot) },
          { tag: Field.algorithm, value: Uint8Array.of(s.algorithm) },
          { tag: Field.slotStatus, value: Uint8Array.of(s.status) },
          { tag: Field.policy, value: Uint8Array.of(s.policy) },
          { tag: Field.locked, value: Uint8Array.of(s.locked ? 1 : 0) },
          { tag: Field.digest, value: sha256(keys.key(s.slot)?.spki ?? new Uint8Array(0)) },
        ]),
      ),
    );
    return concat(
      fieldList([
        [Field.uid, r.uid ?? new Uint8Array(0)],
        [Field.lifecycle, Uint8Array.of(r.lifecycle)],
        [Field.kvnList, Uint8Array.from(r.keySets.map((k) => k.kvn))],
        [Field.sequenceCounter, be(r.sequenceCounter, 4)],
        [Field.failedAuths, be(Math.min(ctx.failedAuths, 0xffff), 2)],
        [Field.auditSeq, be(r.audit.seq, 4)],
        [Field.auditHead, r.audit.head],
        [Field.number, be(r.revocationNumber, 4)],
        [
          Field.timeAnchorSummary,
          r.timeAnchor
            ? fieldList([
                [Field.time, be(r.timeAnchor.time, 4)],
                [Field.number, be(r.timeAnchor.counter, 4)],
              ])
            : undefined,
        ],
        [Field.operatorRootDigest, r.operatorRoot ? sha256(r.operatorRoot) : undefined],
        [Field.clientCaDigest, r.clientCas.length ? anchorsDigest(r.clientCas) : undefined],
      ]),
      ...slots,
    );
  },
};

const readAuditLog: FunctionHandler = {
  rule: { [Field.fromSeq]: 1, [Field.maxEntries]: 1, [Field.nonce]: 1 },
  run(ctx, f) {
    const from = opt(f, Field.fromSeq) ? u32Field(f, Field.fromSeq, 'from') : 1;
    const max = opt(f, Field.maxEntries) ? byteField(f, Field.maxEntries, 'max entries') : IsdLimits.maxAuditRead;
    if (max < 1 || max > IsdLimits.maxAuditRead) refuse(IsdSw.wrongData, `max entries ${max} outside 1..${IsdLimits.maxAuditRead}`);
    const nonce = nonceField(f, Field.nonce, false);
    ctx.platform.sync?.(); // a signed head covers only entries that are written
    const r = ctx.platform.record();
    if (!r.uid) refuse(IsdSw.conditionsNotSatisfied, 'no UID');
    const head = encodeAuditHead({ uid: r.uid, seq: r.audit.seq, head: r.audit.head, time: Math.max(0, Math.floor(ctx.platform.now())), ...(nonce ? { nonce } : {}) });
    const signature = attestationSign(r, head);
    const page = auditSlice(r, from, max);
    return concat(
      head,
      encodeBerTlv(Field.signature, signature),
      encodeBerTlv(Field.hashBefore, page.hashBefore),
      ...page.entries,
      encodeBerTlv(Field.hashAfter, page.hashAfter),
    );
  },
};

/** 4–8 ASCII digits then FF up to 8 bytes (the PIN format of the TLS applet). */
export function isPaddedPin(b: Uint8Array): boolean {
  if (b.length !== 8) return false;
  let n = 0;
  while (n < 8 && b[n]! >= 0x30 && b[n]! <= 0x39) n++;
  if (n < 4) return false;
  for (let i = n; i < 8; i++) if (b[i] !== 0xff) return false;
  return true;
}

const resetPin: FunctionHandler = {
  rule: { [Field.pinRef]: 1, [Field.action]: 1, [Field.newPin]: 1 },
  run(ctx, f) {
    const ref = byteField(f, Field.pinRef, 'PIN reference');
    const pin = ref === PinRef.user ? 'user' : ref === PinRef.operator ? 'operator' : refuse(IsdSw.wrongData, `PIN reference ${ref}`);
    const action = byteField(f, Field.action, 'action');
    const newPin = opt(f, Field.newPin);
    try {
      if (action === PinAction.setAndUnblock) {
        if (!newPin || !isPaddedPin(newPin)) refuse(IsdSw.wrongData, 'new PIN: 4–8 ASCII digits padded with FF to 8 bytes');
      } else if (action !== PinAction.unblockOnly || newPin) refuse(IsdSw.wrongData, `action ${action} (02 carries no PIN)`);
      ctx.platform.transaction((d) => {
        d.pins.reset(pin, newPin);
        auditFunction(d.record, ctx.platform.now(), Fn.resetPin, Uint8Array.of(ref, action));
      });
    } finally {
      wipe(newPin);
    }
    return fieldList([[Field.pinRef, Uint8Array.of(ref)]]);
  },
};

export const CARD_FUNCTIONS: ReadonlyMap<number, FunctionHandler> = new Map([
  [Fn.getCardInfo, getCardInfo],
  [Fn.readAuditLog, readAuditLog],
  [Fn.resetPin, resetPin],
]);

