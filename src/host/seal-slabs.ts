/**
 * The slabs exported sessions seal their records into (tls/record/native-seal.ts): one per batch of
 * records written in one socket write, handed back once the socket has written it, and kept for the
 * next batch of any session. A recycled slab is warm memory: no allocation, no zero-fill and no page
 * faults per record, which is what sealing with node:crypto costs on a bulk download
 * (docs/architecture.md, "exported bulk").
 *
 * Slabs hold only what goes on the wire (record headers, ciphertext, tags), never plaintext or keys,
 * so a slab is not wiped between uses. At most MAX_FREE_SLABS are kept; a slab whose write never
 * reports back is simply left to the GC.
 * imports tls/record (the slab type) only.
 */
import type { SealSlab } from '../tls/record/native-seal.js';

/** Room for a batch of 4 full TLS 1.3 or 1.2 records (5 + 8 + 2^14 + 1 + 16 bytes each, rounded up). */
export const SLAB_BYTES = 4 * 16_448;
const MAX_FREE_SLABS = 64;
const free: Buffer[] = [];

/** A slab to seal into, `used` = 0: a kept one, else a new one (not zero-filled: every byte written is sealed first). */
export function takeSlab(): SealSlab {
  return { buf: free.pop() ?? Buffer.allocUnsafeSlow(SLAB_BYTES), used: 0 };
}

/** The socket has written (or dropped) what was sealed into `slab`: it may be used again. */
export function giveSlab(slab: SealSlab): void {
  // never twice in the pool (two batches would then share it): a second give is ignored
  if (free.length < MAX_FREE_SLABS && slab.buf.length === SLAB_BYTES && !free.includes(slab.buf)) free.push(slab.buf);
  slab.used = SLAB_BYTES; // a stale reference seals nothing more into it
}

/** How many slabs are kept (tests). */
export function keptSlabs(): number {
  return free.length;
}
