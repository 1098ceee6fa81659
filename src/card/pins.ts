/**
 * PIN and PUK values: the 8-byte padded format (4–8 ASCII digits, `FF` padding), salted scrypt
 * hashes, and the constant-time check. The retry counter logic (decrement and persist before
 * compare) lives in the card, which owns the store. imports bytes/ and node built-ins.
 *
 * Secrets: the padded PIN buffers (callers wipe them) and the hashes (sealed in the store).
 */
import { scryptSync } from 'node:crypto';
import { SetlsError, ctEqual, wipe } from '../bytes/index.js';
import { PinPolicy } from './constants.js';

export interface PinRecord {
  readonly salt: Uint8Array;
  readonly hash: Uint8Array;
  /** Tries left; 0 = blocked. */
  tries: number;
  readonly max: number;
}

const SCRYPT = { N: 1024, r: 8, p: 1 } as const;

/** True when `b` is a well-formed padded PIN: 4–8 ASCII digits then `FF` up to 8 bytes. */
export function isPaddedPin(b: Uint8Array): boolean {
  if (b.length !== PinPolicy.padded) return false;
  let n = 0;
  while (n < b.length && b[n]! >= 0x30 && b[n]! <= 0x39) n++;
  if (n < PinPolicy.minDigits) return false;
  for (let i = n; i < b.length; i++) if (b[i] !== 0xff) return false;
  return true;
}

/** Pads a PIN string ("1234") to the 8-byte APDU form; throws ERR_CARD_PIN_FORMAT. */
export function padPin(pin: string): Uint8Array {
  if (typeof pin !== 'string' || !/^[0-9]{4,8}$/.test(pin)) {
    throw new SetlsError('ERR_CARD_PIN_FORMAT', 'a PIN or PUK must be 4 to 8 ASCII digits');
  }
  const out = new Uint8Array(PinPolicy.padded).fill(0xff);
  for (let i = 0; i < pin.length; i++) out[i] = pin.charCodeAt(i);
  return out;
}

export function hashPin(padded: Uint8Array, salt: Uint8Array): Uint8Array {
  return new Uint8Array(scryptSync(padded, salt, 32, SCRYPT));
}

export function makePinRecord(padded: Uint8Array, salt: Uint8Array, max: number): PinRecord {
  return { salt, hash: hashPin(padded, salt), tries: max, max };
}

/** Constant-time comparison of a presented padded PIN against a record (no counter logic). */
export function pinMatches(rec: PinRecord, padded: Uint8Array): boolean {
  const h = hashPin(padded, rec.salt);
  const ok = ctEqual(h, rec.hash);
  wipe(h);
  return ok;
}
