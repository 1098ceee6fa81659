/**
 * The optional native AEAD sealer (native/setls_aead.c, built by native/build.mjs at install):
 * seals a record's pieces straight into a slab the caller recycles, with the key schedule set once
 * per key, over the OpenSSL inside the node binary. node:crypto's cipher.update() instead returns a
 * fresh zero-filled buffer per record, which on a bulk download costs a memset and page faults per
 * record (docs/architecture.md, "exported bulk").
 *
 * An accelerator only: when the module is not built, SETLS_NATIVE=0 is set, the AEAD is AES-CCM or the
 * tag is not 16 bytes, `NativeSealer.create` returns undefined and the caller seals with node:crypto
 * (tls/crypto.ts), byte for byte the same records. At load the binding must seal a known answer
 * (computed with node:crypto) for each AEAD before it is used at all.
 *
 * imports node:crypto, node:module, tls/errors.ts and tls/crypto.ts (types).
 */
import { createCipheriv } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { AeadName } from '../crypto.js';
import { tlsError } from '../errors.js';

interface Binding {
  sealerNew(aead: string, key: Uint8Array): object;
  sealerFree(sealer: object): void;
  seal(sealer: object, nonce: Uint8Array, aad: Uint8Array, pieces: readonly Uint8Array[], last: Uint8Array, out: Uint8Array, offset: number): number;
}

/** A region of memory records are sealed into, in order; `used` bytes of it are taken. */
export interface SealSlab {
  readonly buf: Buffer;
  used: number;
}

/** The most pieces one native seal takes (native/setls_aead.c MAX_PIECES); a record of more is sealed with node:crypto. */
export const NATIVE_MAX_PIECES = 64;

const NATIVE_AEADS: ReadonlySet<AeadName> = new Set(['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305']);
const KEY_LENGTH: Readonly<Record<string, number>> = { 'aes-128-gcm': 16, 'aes-256-gcm': 32, 'chacha20-poly1305': 32 };

/** The binding passes when it seals, for every AEAD it is used for, what node:crypto seals. */
function selfTest(b: Binding): string | undefined {
  for (const aead of NATIVE_AEADS) {
    const key = new Uint8Array(KEY_LENGTH[aead]!).map((_, i) => i * 7 + 1);
    const nonce = new Uint8Array(12).map((_, i) => 0xa0 + i);
    const aad = Uint8Array.of(23, 3, 3, 0, 50);
    const pieces = [new Uint8Array(20).fill(0x61), new Uint8Array(13).fill(0x62)];
    const last = Uint8Array.of(23);
    const c = createCipheriv(aead as 'aes-128-gcm', key, nonce, { authTagLength: 16 });
    c.setAAD(aad);
    const want = Buffer.concat([c.update(Buffer.concat([...pieces, last])), c.final(), c.getAuthTag()]);
    const out = Buffer.alloc(want.length + 3);
    const s = b.sealerNew(aead, key);
    try {
      const n = b.seal(s, nonce, aad, pieces, last, out, 3);
      if (n !== want.length || !want.equals(out.subarray(3, 3 + n))) return `refused: it sealed ${aead} differently from node:crypto`;
    } finally {
      b.sealerFree(s);
    }
  }
  return undefined;
}

function load(): { binding: Binding | undefined; reason: string } {
  if (process.env.SETLS_NATIVE === '0') return { binding: undefined, reason: 'disabled by SETLS_NATIVE=0' };
  let b: Binding;
  try {
    const path = fileURLToPath(new URL('../../../native/build/Release/setls_aead.node', import.meta.url));
    b = createRequire(import.meta.url)(path) as Binding;
  } catch (e) {
    return { binding: undefined, reason: `not built (${(e as Error).message.split('\n')[0]}); run npm run build:native` };
  }
  try {
    const bad = selfTest(b);
    if (bad) return { binding: undefined, reason: bad };
  } catch (e) {
    return { binding: undefined, reason: `refused: its self-test failed (${(e as Error).message})` };
  }
  return { binding: b, reason: 'loaded' };
}

let loaded: { binding: Binding | undefined; reason: string } | undefined;
function binding(): Binding | undefined {
  return (loaded ??= load()).binding;
}

/** Whether records are sealed natively in this process, and if not, why. */
export function nativeSealStatus(): { readonly active: boolean; readonly reason: string } {
  binding();
  return { active: loaded!.binding !== undefined, reason: loaded!.reason };
}

/** One key's native sealing context (the key is copied into OpenSSL's context; free() wipes it). */
export class NativeSealer {
  private constructor(
    private readonly b: Binding,
    private handle: object | undefined,
  ) {}

  /** undefined when records of this AEAD cannot be sealed natively here (the caller uses node:crypto). */
  static create(aead: AeadName, key: Uint8Array, tagLength: number): NativeSealer | undefined {
    if (!NATIVE_AEADS.has(aead) || tagLength !== 16) return undefined;
    const b = binding();
    return b ? new NativeSealer(b, b.sealerNew(aead, key)) : undefined;
  }

  /** Whether sealInto() takes a record of `pieces` holding `bytes` (+ `extra`) into `slab`. */
  static fits(pieces: readonly Uint8Array[], bytes: number, extra: number, slab: SealSlab): boolean {
    return pieces.length <= NATIVE_MAX_PIECES && slab.buf.length - slab.used >= bytes + extra;
  }

  /**
   * Seals `pieces` ‖ `last` with `nonce` and `aad` into `slab` at its `used` offset, advancing it:
   * returns the ciphertext-and-tag length, or -1 (nothing written) when the slab lacks room or
   * there are more than NATIVE_MAX_PIECES pieces.
   */
  sealInto(nonce: Uint8Array, aad: Uint8Array, pieces: readonly Uint8Array[], bytes: number, last: Uint8Array, slab: SealSlab): number {
    if (!this.handle) throw new Error('native sealer used after free()');
    if (!NativeSealer.fits(pieces, bytes + last.length + 16, 0, slab)) return -1;
    const n = this.b.seal(this.handle, nonce, aad, pieces, last, slab.buf, slab.used);
    slab.used += n;
    return n;
  }

  free(): void {
    if (this.handle) this.b.sealerFree(this.handle);
    this.handle = undefined;
  }
}

/**
 * Appends the slab's bytes from `start` to its `used` offset to the chunks `out` to write in order:
 * the last chunk is extended instead when it is a view of the same slab ending at `start`.
 */
export function pushSlabView(out: Uint8Array[], slab: SealSlab, start: number): void {
  const b = slab.buf;
  const prev = out[out.length - 1];
  if (prev !== undefined && prev.buffer === b.buffer && prev.byteOffset + prev.length === b.byteOffset + start) {
    out[out.length - 1] = b.subarray(prev.byteOffset - b.byteOffset, slab.used);
  } else {
    out.push(b.subarray(start, slab.used));
  }
}

/**
 * One whole record into `slab`: `head` (the record header, and TLS 1.2's explicit nonce), then
 * `pieces` ‖ `last` sealed with `nonce` and `aad` (the header itself when `aad` is null, as in TLS
 * 1.3); then the record is appended to `out` (pushSlabView). On any error the slab is as before and
 * `out` untouched. The caller checked NativeSealer.fits and wipes its nonce.
 */
export function sealRecordIntoSlab(
  sealer: NativeSealer,
  slab: SealSlab,
  out: Uint8Array[],
  head: Uint8Array,
  aad: Uint8Array | null,
  nonce: Uint8Array,
  pieces: readonly Uint8Array[],
  bytes: number,
  last: Uint8Array,
): void {
  const start = slab.used;
  slab.buf.set(head, start);
  slab.used = start + head.length;
  try {
    const n = sealer.sealInto(nonce, aad ?? slab.buf.subarray(start, start + 5), pieces, bytes, last, slab);
    if (n !== bytes + last.length + 16) throw tlsError('ERR_TLS_INTERNAL', `native sealer: ${n} bytes sealed, not ${bytes + last.length + 16}`);
  } catch (e) {
    slab.used = start;
    throw e;
  }
  pushSlabView(out, slab, start);
}
