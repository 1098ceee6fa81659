/**
 * card/applets/isd/functions-trust: the STORE DATA functions on what the card trusts —
 * PutTrustAnchors (BF28: the operator root; the client-authentication CAs of mutual TLS),
 * PutRevocationList (BF29: client-certificate serials under a number that never goes back) and
 * PutTimeAnchor (BF2A: an operator-signed lower bound of card time, checked against the operator
 * root; the only way to move the card clock back). One transaction each, with its audit entry.
 * imports bytes/, gp/admin, isd siblings.
 */
import { concat, encodeBerTlv, equalBytes } from '../../../bytes/index.js';
import { publicKeyOf, sha256, verifySha256 } from '../../../gp/admin/attestation.js';
import { AnchorRole, Field, Fn, IsdLimits, IsdSw, SignedTag } from '../../../gp/admin/constants.js';
import { all, be, fieldList, opt } from '../../../gp/admin/fields.js';
import { parseTimeAnchor } from '../../../gp/admin/time-anchor.js';
import { refuse } from './errors.js';
import { auditFunction, byteField, u32Field, type FunctionHandler } from './functions-common.js';
import { checkCaCertificate } from './x509.js';

/** A serial number in its canonical form: INTEGER content without redundant leading zero bytes. */
export function canonicalSerial(s: Uint8Array): Uint8Array {
  let i = 0;
  while (i < s.length - 1 && s[i] === 0) i++;
  return s.slice(i);
}

/** SHA-256 over the certificates back to back (the anchors digest). */
export function anchorsDigest(certs: readonly Uint8Array[]): Uint8Array {
  return sha256(concat(...certs));
}

/** SHA-256 over len(1) ‖ serial for each serial, in order (the revocation list digest). */
export function serialsDigest(serials: readonly Uint8Array[]): Uint8Array {
  return sha256(concat(...serials.map((s) => concat(Uint8Array.of(s.length), s))));
}

const putTrustAnchors: FunctionHandler = {
  rule: { [Field.anchorRole]: 1, [Field.certificate]: IsdLimits.maxClientCas },
  run(ctx, f) {
    const role = byteField(f, Field.anchorRole, 'anchor role');
    const certs = all(f, Field.certificate).map((c) => c.slice());
    if (role === AnchorRole.operatorRoot) {
      if (certs.length !== 1) refuse(IsdSw.wrongData, 'the operator root is one certificate');
    } else if (role !== AnchorRole.clientCa) refuse(IsdSw.wrongData, `anchor role ${role}`);
    certs.forEach((c, i) => checkCaCertificate(c, `anchor ${i}`));
    const digest = anchorsDigest(certs);
    ctx.platform.transaction((d) => {
      if (role === AnchorRole.operatorRoot) d.record.operatorRoot = certs[0]!;
      else d.record.clientCas = certs;
      auditFunction(d.record, ctx.platform.now(), Fn.putTrustAnchors, Uint8Array.of(role, ...digest));
    });
    return fieldList([
      [Field.anchorRole, Uint8Array.of(role)],
      [Field.digest, digest],
    ]);
  },
};

const putRevocationList: FunctionHandler = {
  rule: { [Field.number]: 1, [Field.serial]: IsdLimits.maxRevokedSerials },
  run(ctx, f) {
    const number = u32Field(f, Field.number, 'revocation list number');
    const serials: Uint8Array[] = [];
    for (const raw of all(f, Field.serial)) {
      if (raw.length < 1 || raw.length > IsdLimits.maxSerialBytes) refuse(IsdSw.wrongData, `serial of ${raw.length} bytes`);
      const s = canonicalSerial(raw);
      if (!serials.some((x) => equalBytes(x, s))) serials.push(s);
    }
    const digest = serialsDigest(serials);
    ctx.platform.transaction((d) => {
      if (number <= d.record.revocationNumber) refuse(IsdSw.conditionsNotSatisfied, `revocation list ${number} is not newer than ${d.record.revocationNumber}`);
      d.record.revocationNumber = number;
      d.record.revokedSerials = serials;
      auditFunction(d.record, ctx.platform.now(), Fn.putRevocationList, concat(be(number, 4), be(serials.length, 2), digest));
    });
    return fieldList([
      [Field.number, be(number, 4)],
      [Field.digest, digest],
    ]);
  },
};

const putTimeAnchor: FunctionHandler = {
  rule: { [SignedTag.timeAnchor]: 1, [Field.signature]: 1 },
  run(ctx, f) {
    const value = opt(f, SignedTag.timeAnchor);
    const signature = opt(f, Field.signature);
    if (!value || !signature) refuse(IsdSw.wrongData, 'time anchor and signature needed');
    const content = encodeBerTlv(SignedTag.timeAnchor, value);
    let anchor;
    try {
      anchor = parseTimeAnchor(content);
    } catch {
      return refuse(IsdSw.wrongData, 'time anchor malformed');
    }
    ctx.platform.transaction((d) => {
      const r = d.record;
      if (!r.operatorRoot) refuse(IsdSw.conditionsNotSatisfied, 'no operator root anchor to check a time anchor with');
      if (!r.uid || !equalBytes(anchor.uid, r.uid)) refuse(IsdSw.wrongData, 'time anchor for another card');
      if (anchor.counter <= (r.timeAnchor?.counter ?? 0)) refuse(IsdSw.conditionsNotSatisfied, `time anchor counter ${anchor.counter} is not newer`);
      if (!verifySha256(publicKeyOf(r.operatorRoot), content, signature)) refuse(IsdSw.wrongData, 'time anchor signature does not verify');
      d.clock.setFloor(anchor.time);
      r.timeAnchor = { time: anchor.time, counter: anchor.counter };
      auditFunction(r, ctx.platform.now(), Fn.putTimeAnchor, concat(be(anchor.time, 4), be(anchor.counter, 4)));
    });
    return fieldList([
      [Field.time, be(anchor.time, 4)],
      [Field.number, be(anchor.counter, 4)],
    ]);
  },
};

export const TRUST_FUNCTIONS: ReadonlyMap<number, FunctionHandler> = new Map([
  [Fn.putTrustAnchors, putTrustAnchors],
  [Fn.putRevocationList, putRevocationList],
  [Fn.putTimeAnchor, putTimeAnchor],
]);
