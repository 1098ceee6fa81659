/**
 * protocol/atr: the card's Answer To Reset as the emulated card presents itself (card OS, vpcd) and
 * a host reads its name back. Pure functions; imports bytes/.
 *
 * An ATR for a T=0/T=1 card whose historical bytes name it: category indicator `80` followed by a
 * COMPACT-TLV "card issuer's data" object `5L` ‖ name (1–13 ASCII bytes), then TCK.
 *   3B 8K 80 01 80 5L <name> TCK     (K = 2 + L historical bytes; TD1 = 80: T=0 and TD2; TD2 = 01: T=1)
 */
import { concat } from '../bytes/index.js';

/** The name the emulated card gives in its ATR unless told otherwise. */
export const DEFAULT_CARD_NAME = 'setls';

export function buildAtr(name: string): Uint8Array {
  const n = new TextEncoder().encode(name);
  if (n.length < 1 || n.length > 13) throw new RangeError('the card name in the ATR is 1–13 bytes');
  const hist = concat(Uint8Array.of(0x80, 0x50 | n.length), n);
  const body = concat(Uint8Array.of(0x80 | hist.length, 0x80, 0x01), hist);
  let tck = 0;
  for (const b of body) tck ^= b;
  return concat(Uint8Array.of(0x3b), body, Uint8Array.of(tck));
}

/** The card name in an ATR built by buildAtr(), or undefined. */
export function atrName(atr: Uint8Array): string | undefined {
  const i = atr.indexOf(0x80, 4);
  if (atr.length < 7 || atr[0] !== 0x3b || i < 0) return undefined;
  const tag = atr[i + 1];
  if (tag === undefined || tag >> 4 !== 5) return undefined;
  const len = tag & 0x0f;
  if (i + 2 + len > atr.length - 1) return undefined;
  return new TextDecoder().decode(atr.subarray(i + 2, i + 2 + len));
}
