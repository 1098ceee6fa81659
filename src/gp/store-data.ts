/**
 * gp/store-data: STORE DATA block chaining (GP Card Spec 2.3 §11.11), both sides. imports bytes/.
 *
 *   80|ch E2 P1 P2 Lc <block> [00]
 *   P1  b8 (80) last block · b5–b4 structure: 10 (10) BER-TLV, 01 (08) DGI, 00 none ·
 *       b1 (01) response data expected (set, with Le 00, on the last block only)
 *   P2  block number, 00..FF, consecutive from 00
 *
 * The default block of 239 bytes is the largest whose wrapped form (padded to 240, + 8-byte C-MAC)
 * still fits a short APDU at security level 33. Pure; holds no secrets.
 */
import { concat } from '../bytes/index.js';
import { claFor } from './cla.js';
import { GpSw } from './errors.js';
import { GpIns } from './params.js';

export const StoreDataP1 = { lastBlock: 0x80, berTlv: 0x10, dgi: 0x08, responseExpected: 0x01 } as const;
/** The P1 bits that must be the same in every block of one STORE DATA sequence. */
const STRUCTURE_MASK = 0x7e;
export const STORE_DATA_DEFAULT_BLOCK = 239;

export interface StoreDataOptions {
  readonly structure?: 'ber-tlv' | 'dgi' | 'none';
  /** Whether the last block expects response data (default true). */
  readonly responseExpected?: boolean;
  readonly blockSize?: number;
  readonly channel?: number;
}

/** Splits `data` into the plain STORE DATA commands that carry it (wrap each before sending). */
export function buildStoreData(data: Uint8Array, opts: StoreDataOptions = {}): Uint8Array[] {
  const size = opts.blockSize ?? STORE_DATA_DEFAULT_BLOCK;
  if (!Number.isInteger(size) || size < 1 || size > 255) throw new RangeError('STORE DATA block size must be 1..255');
  const blocks = Math.max(1, Math.ceil(data.length / size));
  if (blocks > 256) throw new RangeError(`${data.length} bytes need ${blocks} STORE DATA blocks, more than 256`);
  const structure = opts.structure ?? 'ber-tlv';
  const p1Base = structure === 'ber-tlv' ? StoreDataP1.berTlv : structure === 'dgi' ? StoreDataP1.dgi : 0;
  const cla = claFor(opts.channel ?? 0);
  const out: Uint8Array[] = [];
  for (let n = 0; n < blocks; n++) {
    const block = data.subarray(n * size, Math.min(data.length, (n + 1) * size));
    const last = n === blocks - 1;
    const wantsResponse = last && opts.responseExpected !== false;
    const p1 = p1Base | (last ? StoreDataP1.lastBlock : 0) | (wantsResponse ? StoreDataP1.responseExpected : 0);
    out.push(
      concat(
        Uint8Array.of(cla, GpIns.storeData, p1, n),
        block.length ? Uint8Array.of(block.length) : new Uint8Array(0),
        block,
        wantsResponse ? Uint8Array.of(0x00) : new Uint8Array(0),
      ),
    );
  }
  return out;
}

export type StoreDataStep =
  | { readonly done: false }
  | { readonly done: true; readonly data: Uint8Array; readonly p1: number }
  | { readonly error: true; readonly sw: number; readonly why: string };

/**
 * Card: reassembles one STORE DATA sequence. Blocks must be numbered 00, 01, … with the same
 * structure bits; the total is bounded by `maxTotal`. Any error forgets the partial sequence.
 */
export class StoreDataAssembler {
  private parts: Uint8Array[] = [];
  private size = 0;
  private next = 0;
  private p1Bits = -1;

  constructor(private readonly maxTotal = 16384) {}

  /** Whether a sequence is in progress. */
  get pending(): boolean {
    return this.next > 0;
  }

  reset(): void {
    for (const p of this.parts) p.fill(0);
    this.parts = [];
    this.size = 0;
    this.next = 0;
    this.p1Bits = -1;
  }

  accept(p1: number, p2: number, data: Uint8Array): StoreDataStep {
    const err = (sw: number, why: string): StoreDataStep => {
      this.reset();
      return { error: true, sw, why };
    };
    if (p2 !== this.next) return err(GpSw.wrongP1P2, `block ${p2} where ${this.next} was expected`);
    const bits = p1 & STRUCTURE_MASK;
    if (this.p1Bits >= 0 && bits !== this.p1Bits) return err(GpSw.wrongP1P2, 'P1 structure bits changed within one sequence');
    if (this.size + data.length > this.maxTotal) return err(GpSw.notEnoughMemory, `STORE DATA over ${this.maxTotal} bytes`);
    this.p1Bits = bits;
    this.parts.push(data.slice());
    this.size += data.length;
    if ((p1 & StoreDataP1.lastBlock) === 0) {
      if (this.next === 255) return err(GpSw.wrongP1P2, 'block 255 is not marked last');
      this.next++;
      return { done: false };
    }
    const all = concat(...this.parts);
    this.reset();
    return { done: true, data: all, p1 };
  }
}
