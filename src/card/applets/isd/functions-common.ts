/**
 * card/applets/isd/functions-common: what the STORE DATA function handlers share — the handler
 * type, field readers that refuse with 6A80, signing with the factory attestation key, and the
 * "function executed" audit entry. imports bytes/, gp/admin, isd siblings, node:crypto.
 */
import { createPrivateKey, sign } from 'node:crypto';
import { concat } from '../../../bytes/index.js';
import { AuditEvent, IsdLimits, IsdSw } from '../../../gp/admin/constants.js';
import { opt, req, uint, type FieldRule, type Fields } from '../../../gp/admin/fields.js';
import { appendAudit } from './audit-log.js';
import type { CommandContext } from './context.js';
import { refuse } from './errors.js';
import type { IsdRecord } from './record.js';

export interface FunctionHandler {
  /** Fields the request may carry (tag → most occurrences). */
  readonly rule: FieldRule;
  /** Runs the function; returns the response's field list (the dispatcher wraps it in the function's tag). */
  readonly run: (ctx: CommandContext, f: Fields) => Uint8Array;
}

/** A required one-byte field. */
export function byteField(f: Fields, tag: number, what: string): number {
  const v = opt(f, tag);
  if (v === undefined || v.length !== 1) refuse(IsdSw.wrongData, `${what}: one byte expected`);
  return v[0]!;
}

export function slotField(f: Fields, tag = 0x80): number {
  const s = byteField(f, tag, 'slot');
  if (s < 1 || s > IsdLimits.maxSlot) refuse(IsdSw.wrongData, `slot ${s} outside 1..${IsdLimits.maxSlot}`);
  return s;
}

export function nonceField(f: Fields, tag: number, required: boolean): Uint8Array | undefined {
  const n = opt(f, tag);
  if (n === undefined) {
    if (required) refuse(IsdSw.wrongData, 'nonce missing');
    return undefined;
  }
  if (n.length < IsdLimits.minNonce || n.length > IsdLimits.maxNonce) refuse(IsdSw.wrongData, `nonce of ${n.length} bytes`);
  return n;
}

export function u32Field(f: Fields, tag: number, what: string): number {
  try {
    return uint(req(f, tag, what), 4, what);
  } catch {
    return refuse(IsdSw.wrongData, `${what}: 4 bytes expected`);
  }
}

/** ECDSA P-256 / SHA-256 (DER) with the factory attestation key. */
export function attestationSign(r: IsdRecord, data: Uint8Array): Uint8Array {
  if (!r.attestation) refuse(IsdSw.conditionsNotSatisfied, 'no attestation key');
  const key = createPrivateKey({ key: r.attestation.pkcs8 as Buffer, format: 'der', type: 'pkcs8' });
  return new Uint8Array(sign('sha256', data, { key, dsaEncoding: 'der' }));
}

/**
 * Appends "function executed" ("… without secure messaging" when `plain`): detail = function tag (2)
 * ‖ summary. Returns the entry's seq.
 */
export function auditFunction(r: IsdRecord, now: number, fn: number, summary: Uint8Array, plain = false): number {
  return appendAudit(r, now, plain ? AuditEvent.plainFunctionExecuted : AuditEvent.functionExecuted, concat(Uint8Array.of(fn >> 8, fn & 0xff), summary));
}
