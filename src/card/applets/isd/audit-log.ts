/**
 * card/applets/isd/audit-log: the card side of the audit log (format: gp/admin/audit.ts) — append
 * an entry to a draft record (sequence number, hash chain, bounded list: the oldest entry drops
 * off and the chain value before the oldest kept moves past it), and read a page of it.
 * imports gp/admin.
 */
import { chainHash, encodeAuditEntry } from '../../../gp/admin/audit.js';
import { IsdLimits } from '../../../gp/admin/constants.js';
import type { IsdRecord } from './record.js';

/** Appends an entry to the draft's log; returns its sequence number. */
export function appendAudit(r: IsdRecord, time: number, event: number, detail: Uint8Array = new Uint8Array(0)): number {
  const seq = r.audit.seq + 1;
  const entry = encodeAuditEntry({ seq, time: Math.max(0, Math.min(0xffffffff, Math.floor(time))), event, detail });
  const entries = [...r.audit.entries, entry];
  let base = r.audit.base;
  while (entries.length > IsdLimits.auditEntriesKept) base = chainHash(base, entries.shift()!);
  r.audit = { seq, head: chainHash(r.audit.head, entry), base, entries };
  return seq;
}

export interface AuditSlice {
  readonly hashBefore: Uint8Array;
  readonly entries: readonly Uint8Array[];
  readonly hashAfter: Uint8Array;
}

/**
 * Entries with sequence numbers from `from` (or the oldest kept, if `from` is older), at most `max`,
 * with the chain values before and after them.
 */
export function auditSlice(r: IsdRecord, from: number, max: number): AuditSlice {
  const a = r.audit;
  const oldest = a.seq - a.entries.length + 1;
  const start = Math.max(from, oldest);
  let h = a.base;
  let i = 0;
  for (; i < a.entries.length && oldest + i < start; i++) h = chainHash(h, a.entries[i]!);
  const hashBefore = h;
  const entries: Uint8Array[] = [];
  for (; i < a.entries.length && entries.length < max; i++) {
    entries.push(a.entries[i]!);
    h = chainHash(h, a.entries[i]!);
  }
  return { hashBefore, entries, hashAfter: h };
}
