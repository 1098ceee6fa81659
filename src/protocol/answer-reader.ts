/**
 * protocol/answer-reader: small readers for the values inside the card's TLV answers, as the host
 * parses them. A malformed answer is SetlsError ERR_CARD_RESPONSE. imports bytes/.
 */
import { SetlsError, parseTlvs, type Tlv } from '../bytes/index.js';

const utf8d = new TextDecoder('utf-8', { fatal: true });

/** Throws ERR_CARD_RESPONSE: the card's answer is malformed. */
export function badAnswer(message: string): never {
  throw new SetlsError('ERR_CARD_RESPONSE', message);
}

/** The TLVs of an answer (ERR_CARD_RESPONSE naming `what` when they do not parse). */
export function answerTlvs(b: Uint8Array, what: string): Tlv[] {
  try {
    return parseTlvs(b);
  } catch (e) {
    return badAnswer(`${what}: ${(e as Error).message}`);
  }
}

/** A UTF-8 value, or undefined when absent. */
export function utf8Value(v: Uint8Array | undefined, what: string): string | undefined {
  if (v === undefined) return undefined;
  try {
    return utf8d.decode(v);
  } catch {
    return badAnswer(`${what} is not UTF-8`);
  }
}

/** A 2-byte value that must be present. */
export function u16Value(v: Uint8Array | undefined, what: string): number {
  if (!v || v.length !== 2) return badAnswer(`${what} missing or not 2 bytes`);
  return (v[0]! << 8) | v[1]!;
}

/** A 1-byte value, or undefined when absent or of another size. */
export function u8Value(v: Uint8Array | undefined): number | undefined {
  return v && v.length === 1 ? v[0]! : undefined;
}

/** A 4-byte value, or undefined when absent or of another size. */
export function u32Value(v: Uint8Array | undefined): number | undefined {
  return v && v.length === 4 ? ((v[0]! << 24) | (v[1]! << 16) | (v[2]! << 8) | v[3]!) >>> 0 : undefined;
}

/** A list of 2-byte values (a trailing odd byte is ignored), or undefined when absent. */
export function u16ListValue(v: Uint8Array | undefined): number[] | undefined {
  if (!v) return undefined;
  const out: number[] = [];
  for (let i = 0; i + 1 < v.length; i += 2) out.push((v[i]! << 8) | v[i + 1]!);
  return out;
}
