/**
 * gp/admin/fields: reading and writing the BER-TLV field lists of function requests, responses and
 * signed structures — strict: every tag must be one the caller allows, each at most as often as
 * allowed, and the list must cover the bytes exactly (bytes/tlv.ts `parseBerTlvs`, shortest lengths).
 * Integers are big-endian of fixed width. Throws `AdminFormatError` (ERR_ADMIN_FORMAT).
 * imports bytes/.
 */
import { SetlsError, encodeBerTlv, encodeBerTlvs, parseBerTlvs, type BerTlv } from '../../bytes/index.js';

export class AdminFormatError extends SetlsError {
  constructor(message: string) {
    super('ERR_ADMIN_FORMAT', message);
    this.name = 'AdminFormatError';
  }
}

/** The values of a field list by tag, in order of appearance. */
export type Fields = ReadonlyMap<number, readonly Uint8Array[]>;

/** Allowed tags → most occurrences (default 1). */
export type FieldRule = Readonly<Record<number, number>>;

const hex = (t: number): string => t.toString(16).toUpperCase();

/**
 * Parses `b` as a list of BER-TLVs whose tags all appear in `rule`, each at most rule[tag] times.
 */
export function readFields(b: Uint8Array, rule: FieldRule, what: string): Fields {
  let items: BerTlv[];
  try {
    items = parseBerTlvs(b, 4096);
  } catch (e) {
    throw new AdminFormatError(`${what}: ${(e as Error).message}`);
  }
  const out = new Map<number, Uint8Array[]>();
  for (const t of items) {
    const max = rule[t.tag];
    if (max === undefined) throw new AdminFormatError(`${what}: unexpected tag ${hex(t.tag)}`);
    const list = out.get(t.tag) ?? [];
    if (list.length >= max) throw new AdminFormatError(`${what}: tag ${hex(t.tag)} more than ${max} time(s)`);
    list.push(t.value);
    out.set(t.tag, list);
  }
  return out;
}

/** The one value of `tag`, or undefined when absent. */
export function opt(f: Fields, tag: number): Uint8Array | undefined {
  return f.get(tag)?.[0];
}

/** The one value of `tag`; throws when absent. */
export function req(f: Fields, tag: number, what: string): Uint8Array {
  const v = opt(f, tag);
  if (v === undefined) throw new AdminFormatError(`${what}: field ${hex(tag)} missing`);
  return v;
}

/** Every value of `tag` (possibly none). */
export function all(f: Fields, tag: number): readonly Uint8Array[] {
  return f.get(tag) ?? [];
}

/** A fixed-width unsigned big-endian integer of `len` bytes (1..4). */
export function uint(v: Uint8Array, len: number, what: string): number {
  if (v.length !== len) throw new AdminFormatError(`${what}: ${v.length} bytes where ${len} are expected`);
  let n = 0;
  for (const x of v) n = n * 256 + x;
  return n;
}

/** `n` as `len` big-endian bytes. */
export function be(n: number, len: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** (8 * len)) throw new RangeError(`${n} does not fit ${len} byte(s)`);
  const out = new Uint8Array(len);
  let v = n;
  for (let i = len - 1; i >= 0; i--) {
    out[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return out;
}

/** One TLV whose value is the given fields (undefined values are left out), in order. */
export function tlv(tag: number, fields: readonly (readonly [number, Uint8Array | undefined])[]): Uint8Array {
  const items: BerTlv[] = [];
  for (const [t, v] of fields) if (v !== undefined) items.push({ tag: t, value: v });
  return encodeBerTlv(tag, encodeBerTlvs(items));
}

/** Field list bytes (no outer TLV). */
export function fieldList(fields: readonly (readonly [number, Uint8Array | undefined])[]): Uint8Array {
  const items: BerTlv[] = [];
  for (const [t, v] of fields) if (v !== undefined) items.push({ tag: t, value: v });
  return encodeBerTlvs(items);
}

/** Parses exactly one outer TLV with tag `tag` and returns its value. */
export function unwrapOne(b: Uint8Array, tag: number, what: string): Uint8Array {
  let items: BerTlv[];
  try {
    items = parseBerTlvs(b, 2);
  } catch (e) {
    throw new AdminFormatError(`${what}: ${(e as Error).message}`);
  }
  if (items.length !== 1 || items[0]!.tag !== tag) throw new AdminFormatError(`${what}: expected one ${hex(tag)} TLV`);
  return items[0]!.value;
}
