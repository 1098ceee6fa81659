/**
 * The TLV codec under the binary card state (state format v4, docs/apdu-protocol.md §6): a version
 * byte, then TLVs with one-byte tags and BER definite lengths in their shortest form (`xx` < 0x80,
 * `81 xx`, `82 xx xx`, `83 xx xx xx`); a value is either bytes or a sequence of TLVs.
 *
 * Why its own writer: the state holds secrets (PKCS#8 keys, PIN hashes, PSK keys, the ticket key),
 * which must go from their Uint8Arrays into the output without ever becoming a JS string (strings
 * cannot be wiped) and without intermediate copies nobody wipes (ByteWriter's growing buffer and
 * `block()` copies would be such leftovers). `encodeTree` measures the tree first and writes it once
 * into an exact-size array; a leaf may be several parts written back to back, so a fixed record like
 * a PIN record (tries ‖ max ‖ salt ‖ hash) never needs a temporary concatenation. The reader returns
 * views into its input (no copies): the schema reader in state.ts copies what it keeps, and the
 * caller wipes the input afterwards.
 *
 * Also the decoding helpers both state readers (v4, and the JSON of versions 1–3) use: labels,
 * private keys checked against their type and SPKI, host names of a chain's leaf.
 *
 * Every failure is ERR_CARD_STATE. imports bytes/, card/names and node built-ins.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { SetlsError, equalBytes } from '../bytes/index.js';
import { leafHostNames } from './names.js';
import type { KeyTypeName } from './state.js';

/** A TLV whose value is `parts` written back to back. */
export interface Leaf {
  readonly tag: number;
  readonly parts: readonly Uint8Array[];
}

/** A TLV whose value is its children's TLVs. */
export interface Branch {
  readonly tag: number;
  readonly children: readonly Node[];
}

export type Node = Leaf | Branch;

/** A parsed TLV; `value` is a view into the parsed bytes. */
export interface Item {
  readonly tag: number;
  readonly value: Uint8Array;
}

/** One field of a TLV sequence's schema: its tag, how many times it may occur, and its value size. */
export interface Field {
  readonly tag: number;
  readonly name: string;
  /** Occurrences (consecutive), default exactly 1. */
  readonly min?: number;
  readonly max?: number;
  /** Value length in bytes, default 0..MAX_VALUE. */
  readonly minLen?: number;
  readonly maxLen?: number;
}

/** The largest TLV value (3 length bytes). */
export const MAX_VALUE = 0xffffff;

export function stateError(why: string, cause?: unknown): SetlsError {
  return new SetlsError('ERR_CARD_STATE', `card state is invalid: ${why}`, cause === undefined ? undefined : { cause });
}

export const hexTag = (t: number): string => t.toString(16).padStart(2, '0').toUpperCase();

function lengthBytes(n: number): number {
  return n < 0x80 ? 1 : n <= 0xff ? 2 : n <= 0xffff ? 3 : 4;
}

/** `version ‖ TLV(nodes)…` as one exact-size array. The caller owns (and wipes) the result. */
export function encodeTree(version: number, nodes: readonly Node[]): Uint8Array {
  const sizes = new Map<Node, number>();
  const valueSize = (n: Node): number => {
    let s = 0;
    if ('parts' in n) for (const p of n.parts) s += p.length;
    else for (const c of n.children) s += tlvSize(c);
    if (s > MAX_VALUE) throw stateError(`tag ${hexTag(n.tag)} value of ${s} bytes is too long`);
    sizes.set(n, s);
    return s;
  };
  const tlvSize = (n: Node): number => {
    const v = valueSize(n);
    return 1 + lengthBytes(v) + v;
  };
  let total = 1;
  for (const n of nodes) total += tlvSize(n);
  const out = new Uint8Array(total);
  let o = 0;
  out[o++] = version;
  const put = (n: Node): void => {
    const v = sizes.get(n)!;
    out[o++] = n.tag;
    const lb = lengthBytes(v);
    if (lb > 1) out[o++] = 0x80 | (lb - 1);
    for (let i = lb > 1 ? lb - 2 : 0; i >= 0; i--) out[o++] = (v >>> (8 * i)) & 0xff;
    if ('parts' in n) {
      for (const p of n.parts) {
        out.set(p, o);
        o += p.length;
      }
    } else {
      for (const c of n.children) put(c);
    }
  };
  for (const n of nodes) put(n);
  if (o !== total) throw new Error(`state encoder wrote ${o} of ${total} bytes`); // cannot happen
  return out;
}

/**
 * Parses a TLV sequence that must cover `b` exactly; lengths must be in their shortest form.
 * Values are views into `b`.
 */
export function parseItems(b: Uint8Array, what: string): Item[] {
  const out: Item[] = [];
  let o = 0;
  while (o < b.length) {
    const at = o;
    if (o + 2 > b.length) throw stateError(`${what}: truncated TLV header at offset ${at}`);
    const tag = b[o++]!;
    let n = b[o++]!;
    if (n >= 0x80) {
      const k = n & 0x7f;
      if (k < 1 || k > 3) throw stateError(`${what}: tag ${hexTag(tag)} has an unsupported length form ${hexTag(n)}`);
      if (o + k > b.length) throw stateError(`${what}: tag ${hexTag(tag)} has a truncated length`);
      n = 0;
      for (let i = 0; i < k; i++) n = (n << 8) | b[o++]!;
      if (lengthBytes(n) !== k + 1) throw stateError(`${what}: tag ${hexTag(tag)} length ${n} is not in its shortest form`);
    }
    if (n > b.length - o) throw stateError(`${what}: tag ${hexTag(tag)} needs ${n} bytes, ${b.length - o} left`);
    out.push({ tag, value: b.subarray(o, o + n) });
    o += n;
  }
  return out;
}

/**
 * Matches `items` against `schema`, in schema order (a repeated field's TLVs are consecutive); an
 * unknown tag, a tag out of order, a missing or repeated field, or a value of the wrong size throws.
 * Returns the values by tag (views into the input).
 */
export function readFields(items: readonly Item[], schema: readonly Field[], what: string): Map<number, Uint8Array[]> {
  const out = new Map<number, Uint8Array[]>();
  let i = 0;
  for (const f of schema) {
    const min = f.min ?? 1;
    const max = f.max ?? 1;
    const values: Uint8Array[] = [];
    while (i < items.length && items[i]!.tag === f.tag) {
      const v = items[i]!.value;
      if (values.length === max) throw stateError(`${what}: ${f.name} (tag ${hexTag(f.tag)}) occurs more than ${max} time${max === 1 ? '' : 's'}`);
      const lo = f.minLen ?? 0;
      const hi = f.maxLen ?? MAX_VALUE;
      if (v.length < lo || v.length > hi) {
        throw stateError(`${what}: ${f.name} (tag ${hexTag(f.tag)}) has ${v.length} bytes, not ${lo === hi ? lo : `${lo}..${hi}`}`);
      }
      values.push(v);
      i++;
    }
    if (values.length < min) throw stateError(`${what}: ${f.name} (tag ${hexTag(f.tag)}) is missing`);
    out.set(f.tag, values);
  }
  if (i < items.length) {
    const t = items[i]!.tag;
    const known = schema.some((f) => f.tag === t);
    throw stateError(`${what}: ${known ? 'out of order' : 'unknown'} tag ${hexTag(t)} at item ${i}`);
  }
  return out;
}

function stateBad(why: string): never {
  throw stateError(why);
}

/** Non-secret UTF-8 (labels) only. */
export function utf8Text(b: Uint8Array, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    return stateBad(`${what} is not UTF-8`);
  }
}

/** The private key from PKCS#8 DER, checked against its key type and SPKI. Does not wipe `pkcs8`. */
export function loadPrivateKey(pkcs8: Uint8Array, keyType: KeyTypeName, spki: Uint8Array, what: string): KeyObject {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pkcs8 as Buffer, format: 'der', type: 'pkcs8' });
  } catch {
    return stateBad(`${what} private key does not parse`);
  }
  if (!keyMatchesType(privateKey, keyType)) stateBad(`${what} private key is not of type ${keyType}`);
  const derived = new Uint8Array(createPublicKey(privateKey).export({ format: 'der', type: 'spki' }));
  if (!equalBytes(derived, spki)) stateBad(`${what} public key does not match its private key`);
  return privateKey;
}

/** The host names of a chain's leaf (none without a chain). */
export function hostNamesOf(chain: readonly Uint8Array[], what: string): string[] {
  try {
    return chain.length > 0 ? leafHostNames(chain[0]!) : [];
  } catch {
    return stateBad(`${what} leaf certificate does not parse`);
  }
}

/** Whether a private key is of the identity key type. */
export function keyMatchesType(k: KeyObject, t: KeyTypeName): boolean {
  const d = k.asymmetricKeyDetails;
  if (t === 'rsa2048') return k.asymmetricKeyType === 'rsa' && d?.modulusLength === 2048 && d.publicExponent === 0x10001n;
  return k.asymmetricKeyType === 'ec' && d?.namedCurve === 'prime256v1';
}
