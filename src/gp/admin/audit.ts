/**
 * gp/admin/audit: the card's audit log — entries, the hash chain, the signed head — with the
 * off-card verification of a ReadAuditLog answer. imports bytes/ and node:crypto.
 *
 *   entry   = E2 L { 99 04 seq, 8E 04 card time (Unix s, 0 = unknown), C2 01 event, [C3 L detail] }
 *   chain   h_0 = 00×32;  h_n = SHA-256(h_{n-1} ‖ entry_n)      (entry_n: the whole E2 TLV)
 *   head    = E1 L { 5A 10 UID, 99 04 seq of the last entry, 9A 20 h_seq, 8E 04 card time,
 *                    [85 L operator nonce] }            signed: ECDSA P-256 / SHA-256 by the
 *                                                       factory attestation key, over the E1 TLV
 *
 * Sequence numbers start at 1 and grow by one per entry, for ever; the card keeps the last
 * IsdLimits.auditEntriesKept entries and the chain value before the oldest it keeps, so a reader
 * can resume from any hash it verified before. The host can withhold a ReadAuditLog answer but
 * cannot remove, reorder or alter entries without breaking the chain to the signed head.
 */
import { createHash } from 'node:crypto';
import { SetlsError, ctEqual } from '../../bytes/index.js';
import { Field, IsdLimits, SignedTag, UID_LENGTH } from './constants.js';
import { AdminFormatError, be, opt, readFields, req, tlv, uint, unwrapOne } from './fields.js';
import { publicKeyOf, verifySha256 } from './attestation.js';

export const AUDIT_GENESIS = new Uint8Array(32);

export interface AuditEntry {
  readonly seq: number;
  readonly time: number;
  readonly event: number;
  readonly detail: Uint8Array;
}

export function encodeAuditEntry(e: AuditEntry): Uint8Array {
  if (e.detail.length > IsdLimits.maxAuditDetail) throw new RangeError(`audit detail of ${e.detail.length} bytes`);
  return tlv(SignedTag.auditEntry, [
    [Field.auditSeq, be(e.seq, 4)],
    [Field.time, be(e.time, 4)],
    [Field.auditEvent, Uint8Array.of(e.event)],
    [Field.auditDetail, e.detail.length ? e.detail : undefined],
  ]);
}

export function parseAuditEntry(b: Uint8Array): AuditEntry {
  const what = 'audit entry';
  const f = readFields(unwrapOne(b, SignedTag.auditEntry, what), { [Field.auditSeq]: 1, [Field.time]: 1, [Field.auditEvent]: 1, [Field.auditDetail]: 1 }, what);
  const e: AuditEntry = {
    seq: uint(req(f, Field.auditSeq, what), 4, what),
    time: uint(req(f, Field.time, what), 4, what),
    event: uint(req(f, Field.auditEvent, what), 1, what),
    detail: opt(f, Field.auditDetail) ?? new Uint8Array(0),
  };
  if (!ctEqual(encodeAuditEntry(e), b)) throw new AdminFormatError(`${what}: not in its canonical form`);
  return e;
}

/** h_n = SHA-256(h_{n-1} ‖ entry_n). */
export function chainHash(prev: Uint8Array, entry: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(prev).update(entry).digest());
}

export interface AuditHead {
  readonly uid: Uint8Array;
  readonly seq: number;
  readonly head: Uint8Array;
  readonly time: number;
  readonly nonce?: Uint8Array;
}

export function encodeAuditHead(h: AuditHead): Uint8Array {
  return tlv(SignedTag.auditHead, [
    [Field.uid, h.uid],
    [Field.auditSeq, be(h.seq, 4)],
    [Field.auditHead, h.head],
    [Field.time, be(h.time, 4)],
    [Field.nonce, h.nonce],
  ]);
}

export function parseAuditHead(b: Uint8Array): AuditHead {
  const what = 'audit head';
  const f = readFields(unwrapOne(b, SignedTag.auditHead, what), { [Field.uid]: 1, [Field.auditSeq]: 1, [Field.auditHead]: 1, [Field.time]: 1, [Field.nonce]: 1 }, what);
  const uid = req(f, Field.uid, what);
  const head = req(f, Field.auditHead, what);
  if (uid.length !== UID_LENGTH || head.length !== 32) throw new AdminFormatError(`${what}: UID or head of the wrong size`);
  const nonce = opt(f, Field.nonce);
  const h: AuditHead = { uid, seq: uint(req(f, Field.auditSeq, what), 4, what), head, time: uint(req(f, Field.time, what), 4, what), ...(nonce ? { nonce } : {}) };
  if (!ctEqual(encodeAuditHead(h), b)) throw new AdminFormatError(`${what}: not in its canonical form`);
  return h;
}

/** A ReadAuditLog answer, parsed (not yet verified). */
export interface AuditPage {
  readonly headStatement: Uint8Array;
  readonly signature: Uint8Array;
  /** The chain value before the first entry returned. */
  readonly hashBefore: Uint8Array;
  /** The entries, oldest first (whole E2 TLVs). */
  readonly entries: readonly Uint8Array[];
  /** The chain value after the last entry returned. */
  readonly hashAfter: Uint8Array;
}

export interface VerifiedAuditPage {
  readonly head: AuditHead;
  readonly entries: readonly AuditEntry[];
  /** Whether the page reaches the signed head (false: more entries follow; ask from the next seq). */
  readonly complete: boolean;
  readonly hashAfter: Uint8Array;
}

/**
 * Off card: verifies one ReadAuditLog page — the head's signature (attestation certificate), the
 * UID and nonce, consecutive sequence numbers, the chain from `hashBefore` through every entry to
 * `hashAfter`, and, when the page ends at the head, `hashAfter` = the signed head. When the reader
 * already knows the chain value before the page (`knownBefore`, from its previous read), the page
 * must start from it; a mismatch is an AUDIT_GAP or a rewritten log. Throws ERR_ADMIN_AUDIT.
 */
export function verifyAuditPage(
  page: AuditPage,
  opts: { attestationCert: Uint8Array; uid: Uint8Array; nonce?: Uint8Array; knownBefore?: Uint8Array; expectFirstSeq?: number },
): VerifiedAuditPage {
  const bad = (why: string): never => {
    throw new SetlsError('ERR_ADMIN_AUDIT', `audit log: ${why}`);
  };
  if (!verifySha256(publicKeyOf(opts.attestationCert), page.headStatement, page.signature)) bad('the head signature does not verify');
  const head = parseAuditHead(page.headStatement);
  if (!ctEqual(head.uid, opts.uid)) bad('the head is for another card');
  if (opts.nonce && (!head.nonce || !ctEqual(head.nonce, opts.nonce))) bad('the head does not carry our nonce');
  if (opts.knownBefore && !ctEqual(opts.knownBefore, page.hashBefore)) bad('the page does not continue the chain we verified (gap or rewrite)');
  let h = page.hashBefore;
  const entries: AuditEntry[] = [];
  for (const raw of page.entries) {
    const e = parseAuditEntry(raw);
    const want = entries.length ? entries[entries.length - 1]!.seq + 1 : (opts.expectFirstSeq ?? e.seq);
    if (e.seq !== want) bad(`entry ${e.seq} where ${want} was expected`);
    entries.push(e);
    h = chainHash(h, raw);
  }
  if (!ctEqual(h, page.hashAfter)) bad('the entries do not chain to the stated hash');
  const lastSeq = entries.length ? entries[entries.length - 1]!.seq : undefined;
  const complete = lastSeq === undefined ? true : lastSeq === head.seq;
  if (lastSeq !== undefined && lastSeq > head.seq) bad('entries beyond the signed head');
  if (complete && !ctEqual(h, head.head)) bad('the chain does not reach the signed head');
  return { head, entries, complete, hashAfter: h };
}

