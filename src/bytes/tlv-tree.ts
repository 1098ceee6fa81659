/**
 * bytes/tlv-tree: nested TLVs for records that hold secrets (the card state, the ISD record) — one
 * byte tags, BER definite lengths in their shortest form (`xx` < 0x80, `81 xx`, `82 xx xx`,
 * `83 xx xx xx`), a value being either bytes or a sequence of TLVs.
 *
 * Why not ByteWriter: secrets (PKCS#8 keys, PIN hashes, SCP03 keys) must go from their arrays into
 * the output without intermediate copies nobody wipes (a growing buffer, `block()` copies).
 * `encodeTlvTree` measures the tree first and writes it once into an exact-size array; a leaf may be
 * several parts written back to back, so a fixed record never needs a temporary concatenation.
 * `parseStrictTlvs` returns views into its input (no copies) and `readTlvFields` matches them
 * against a schema (order, counts, sizes). Every failure goes through the caller's `fail`, so each
 * record keeps its own error code. imports nothing.
 */

/** A TLV whose value is `parts` written back to back. */
export interface TlvLeaf {
  readonly tag: number;
  readonly parts: readonly Uint8Array[];
}

/** A TLV whose value is its children's TLVs. */
export interface TlvBranch {
  readonly tag: number;
  readonly children: readonly TlvNode[];
}

export type TlvNode = TlvLeaf | TlvBranch;

/** A parsed TLV; `value` is a view into the parsed bytes. */
export interface TlvItem {
  readonly tag: number;
  readonly value: Uint8Array;
}

/** One field of a TLV sequence's schema: its tag, how many times it may occur, its value size. */
export interface TlvField {
  readonly tag: number;
  /** For messages (default `tag XX`). */
  readonly name?: string;
  /** Occurrences (consecutive), default exactly 1. */
  readonly min?: number;
  readonly max?: number;
  /** Value length in bytes, default 0..TLV_TREE_MAX_VALUE. */
  readonly minLen?: number;
  readonly maxLen?: number;
}

/** Builds the error thrown for a malformed or oversized tree. */
export type TlvFail = (why: string) => Error;

/** The largest value (3 length bytes). */
export const TLV_TREE_MAX_VALUE = 0xffffff;

export const hexTag = (t: number): string => t.toString(16).padStart(2, '0').toUpperCase();

const lengthBytes = (n: number): number => (n < 0x80 ? 1 : n <= 0xff ? 2 : n <= 0xffff ? 3 : 4);

/** `prefix ‖ TLV(nodes)…` as one exact-size array. The caller owns (and wipes) the result. */
export function encodeTlvTree(nodes: readonly TlvNode[], fail: TlvFail, prefix?: Uint8Array): Uint8Array {
  const sizes = new Map<TlvNode, number>();
  const tlvSize = (n: TlvNode): number => {
    let s = 0;
    if ('parts' in n) for (const p of n.parts) s += p.length;
    else for (const c of n.children) s += tlvSize(c);
    if (s > TLV_TREE_MAX_VALUE) throw fail(`tag ${hexTag(n.tag)} value of ${s} bytes is too long`);
    sizes.set(n, s);
    return 1 + lengthBytes(s) + s;
  };
  let total = prefix?.length ?? 0;
  for (const n of nodes) total += tlvSize(n);
  const out = new Uint8Array(total);
  let o = 0;
  if (prefix) {
    out.set(prefix, 0);
    o = prefix.length;
  }
  const put = (n: TlvNode): void => {
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
  if (o !== total) throw new Error(`TLV tree encoder wrote ${o} of ${total} bytes`); // cannot happen
  return out;
}

/**
 * Parses a TLV sequence that must cover `b` exactly; lengths must be in their shortest form.
 * Values are views into `b`.
 */
export function parseStrictTlvs(b: Uint8Array, what: string, fail: TlvFail): TlvItem[] {
  const out: TlvItem[] = [];
  let o = 0;
  while (o < b.length) {
    const at = o;
    if (o + 2 > b.length) throw fail(`${what}: truncated TLV header at offset ${at}`);
    const tag = b[o++]!;
    let n = b[o++]!;
    if (n >= 0x80) {
      const k = n & 0x7f;
      if (k < 1 || k > 3) throw fail(`${what}: tag ${hexTag(tag)} has an unsupported length form ${hexTag(n)}`);
      if (o + k > b.length) throw fail(`${what}: tag ${hexTag(tag)} has a truncated length`);
      n = 0;
      for (let i = 0; i < k; i++) n = (n << 8) | b[o++]!;
      if (lengthBytes(n) !== k + 1) throw fail(`${what}: tag ${hexTag(tag)} length ${n} is not in its shortest form`);
    }
    if (n > b.length - o) throw fail(`${what}: tag ${hexTag(tag)} needs ${n} bytes, ${b.length - o} left`);
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
export function readTlvFields(items: readonly TlvItem[], schema: readonly TlvField[], what: string, fail: TlvFail): Map<number, Uint8Array[]> {
  const out = new Map<number, Uint8Array[]>();
  let i = 0;
  for (const f of schema) {
    const min = f.min ?? 1;
    const max = f.max ?? 1;
    const name = f.name === undefined ? `tag ${hexTag(f.tag)}` : `${f.name} (tag ${hexTag(f.tag)})`;
    const values: Uint8Array[] = [];
    while (i < items.length && items[i]!.tag === f.tag) {
      const v = items[i]!.value;
      if (values.length === max) throw fail(`${what}: ${name} occurs more than ${max} time${max === 1 ? '' : 's'}`);
      const lo = f.minLen ?? 0;
      const hi = f.maxLen ?? TLV_TREE_MAX_VALUE;
      if (v.length < lo || v.length > hi) throw fail(`${what}: ${name} has ${v.length} bytes, not ${lo === hi ? lo : `${lo}..${hi}`}`);
      values.push(v);
      i++;
    }
    if (values.length < min) throw fail(`${what}: ${name} is missing`);
    out.set(f.tag, values);
  }
  if (i < items.length) {
    const t = items[i]!.tag;
    const known = schema.some((f) => f.tag === t);
    throw fail(`${what}: ${known ? 'out of order' : 'unknown'} tag ${hexTag(t)} at item ${i}`);
  }
  return out;
}
