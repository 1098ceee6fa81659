/**
 * operator/admin/ops: the administrative operations an executor asks of a card's security domain,
 * each turned into the plain command APDUs (basic channel) that the SCP03 session then wraps —
 * a STORE DATA function request (split into blocks), PUT KEY, SET STATUS, GET STATUS — and the
 * answer of each operation once unwrapped. Byte layouts: docs/admin-protocol.md §5–§6.
 * imports bytes/, gp/, gp/admin.
 */
import { concat, toHex } from '../../bytes/index.js';
import { AdminRequest } from '../../gp/admin/requests.js';
import { GET_STATUS_P2_TLV, IsdIns } from '../../gp/admin/constants.js';
import { buildPutKey } from '../../gp/put-key.js';
import { buildStoreData } from '../../gp/store-data.js';
import type { StaticKeys } from '../../gp/keys.js';

export type AdminOp =
  /** A STORE DATA function request (the BER-TLV from gp/admin AdminRequest). */
  | { readonly kind: 'call'; readonly request: Uint8Array; readonly accept?: readonly number[]; readonly label?: string }
  /** PUT KEY: add `keys` (or replace `replaceKvn`), under the session's K-DEK. */
  | { readonly kind: 'putKey'; readonly keys: StaticKeys; readonly replaceKvn?: number; readonly label?: string }
  | { readonly kind: 'setStatus'; readonly p1: number; readonly p2: number; readonly data?: Uint8Array; readonly accept?: readonly number[]; readonly label?: string }
  | { readonly kind: 'getStatus'; readonly p1: number; readonly aid?: Uint8Array; readonly label?: string };

/** The unwrapped answer of one operation: its data (the function's response TLV) and status word. */
export interface OpResult {
  readonly sw: number;
  readonly data: Uint8Array;
}

export const Op = {
  call: (request: Uint8Array, opts: { accept?: readonly number[]; label?: string } = {}): AdminOp => ({ kind: 'call', request, ...opts }),
  getCardInfo: (): AdminOp => ({ kind: 'call', request: AdminRequest.getCardInfo(), label: 'GetCardInfo' }),
  putKey: (keys: StaticKeys, replaceKvn?: number): AdminOp => ({ kind: 'putKey', keys, ...(replaceKvn !== undefined ? { replaceKvn } : {}), label: 'PUT KEY' }),
  setStatus: (p1: number, p2: number, data?: Uint8Array, accept?: readonly number[]): AdminOp => ({
    kind: 'setStatus',
    p1,
    p2,
    ...(data ? { data } : {}),
    ...(accept ? { accept } : {}),
    label: 'SET STATUS',
  }),
  getStatus: (p1: number, aid?: Uint8Array): AdminOp => ({ kind: 'getStatus', p1, ...(aid ? { aid } : {}), label: 'GET STATUS' }),
} as const;

/** A short name of an operation (logs, errors): never its data. */
export function opLabel(op: AdminOp): string {
  if (op.label) return op.label;
  if (op.kind === 'call') return `STORE DATA ${toHex(op.request.subarray(0, 2)).toUpperCase()}`;
  return op.kind;
}

/** Status words an operation may answer besides 9000 without that being a sign of tampering. */
export function acceptedSws(op: AdminOp): readonly number[] {
  return op.kind === 'call' || op.kind === 'setStatus' ? (op.accept ?? []) : [];
}

/** The plain (unwrapped, channel 0) command APDUs of `op`; `dek` is the session's K-DEK (PUT KEY). */
export function plainApdus(op: AdminOp, dek: Uint8Array | undefined): Uint8Array[] {
  switch (op.kind) {
    case 'call':
      return buildStoreData(op.request);
    case 'putKey':
      if (!dek) throw new Error('PUT KEY needs the session K-DEK');
      return [buildPutKey(dek, op.keys, op.replaceKvn !== undefined ? { replaceKvn: op.replaceKvn } : {})];
    case 'setStatus': {
      const head = Uint8Array.of(0x80, IsdIns.setStatus, op.p1, op.p2);
      return [op.data && op.data.length ? concat(head, Uint8Array.of(op.data.length), op.data) : head];
    }
    case 'getStatus': {
      const aid = op.aid ?? new Uint8Array(0);
      const crit = concat(Uint8Array.of(0x4f, aid.length), aid);
      return [concat(Uint8Array.of(0x80, IsdIns.getStatus, op.p1, GET_STATUS_P2_TLV, crit.length), crit, Uint8Array.of(0))];
    }
  }
}
