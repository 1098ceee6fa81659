/**
 * card/services/random: the card's RNG service — node:crypto's CSPRNG drawn a block at a time, or
 * (deterministic mode, tests) a given source whose every draw is checked and copied.
 *
 * Secrets: the default RNG's block: bytes handed out are zeroed in the block at once; `wipe()` (card
 * reset and close) zeroes the bytes not yet drawn. imports bytes/ and node built-ins.
 */
import { randomFillSync } from 'node:crypto';
import { SetlsError, freshCopy } from '../../bytes/index.js';
import type { RandomSource } from '../signers.js';

/** The card's RNG: `random(n)` and a `wipe()` for reset and close (no-op in deterministic mode). */
export interface CardRandom {
  readonly random: RandomSource;
  /** Whether `random` was given (deterministic mode: see EmulatedCardOpenOptions.random). */
  readonly deterministic: boolean;
  wipe(): void;
}

export function cardRandom(given: RandomSource | undefined): CardRandom {
  if (given) return { random: checkedRandom(given), deterministic: true, wipe: () => undefined };
  const pool = new RandomPool();
  return { random: pool.source, deterministic: false, wipe: () => pool.wipe() };
}

function checkedRandom(src: RandomSource): RandomSource {
  return (n: number) => {
    const b = src(n);
    if (!(b instanceof Uint8Array) || b.length !== n) throw new SetlsError('ERR_CARD_RANDOM', `the card RNG returned a wrong-sized value for ${n} bytes`);
    return freshCopy(b);
  };
}

/**
 * node:crypto's CSPRNG drawn a block at a time (one randomFillSync for many small draws: TLS
 * randoms, ticket nonces...).
 */
class RandomPool {
  private static readonly BLOCK = 1024;
  /** Draws larger than this bypass the block. */
  private static readonly MAX_POOLED = 64;
  private readonly buf = new Uint8Array(RandomPool.BLOCK);
  private pos = RandomPool.BLOCK;
  readonly source: RandomSource = (n: number): Uint8Array => this.take(n);

  take(n: number): Uint8Array {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`random bytes: bad length ${n}`);
    if (n > RandomPool.MAX_POOLED) return randomFillSync(new Uint8Array(n));
    if (this.pos + n > this.buf.length) {
      randomFillSync(this.buf);
      this.pos = 0;
    }
    const out = this.buf.slice(this.pos, this.pos + n);
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  wipe(): void {
    this.buf.fill(0);
    this.pos = this.buf.length;
  }
}
