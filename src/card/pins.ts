/**
 * PIN and PUK values: the 8-byte padded format (4–8 ASCII digits, `FF` padding), salted scrypt
 * hashes, the constant-time check, and the pending-attempt tag. The retry counter logic (decrement
 * and persist before compare) is services/pin-service.ts, over the card's store.
 * imports bytes/, protocol/ and node built-ins.
 *
 * The pending-attempt tag of a presented value is HMAC-SHA256(scrypt(value, salt), "setls pending PIN
 * attempt"): it is stored with the decremented counter, before the comparison, so the card can tell
 * the same value presented again after a crash (that attempt was already charged). It costs a guesser
 * the same scrypt as the PIN hash itself, and never equals it.
 *
 * Secrets: the padded PIN buffers (callers wipe them), the hashes and pending tags (sealed in the store).
 */
import { createHmac, scryptSync } from 'node:crypto';
import { SetlsError, ctEqual, wipe } from '../bytes/index.js';
import { isPaddedPin, isPinText, padPinText } from '../protocol/index.js';

export { isPaddedPin };

export interface PinRecord {
  readonly salt: Uint8Array;
  readonly hash: Uint8Array;
  /** Tries left; 0 = blocked. */
  tries: number;
  readonly max: number;
  /**
   * The pending-attempt tag (32 bytes) of the last value charged to `tries` whose success was not
   * yet recorded (a correct value's second write clears it). Shared between state copies: never mutated.
   */
  pending?: Uint8Array | undefined;
}

/** Size of a pending-attempt tag. */
export const PENDING_TAG_BYTES = 32;
const PENDING_LABEL = 'setls pending PIN attempt';

const SCRYPT = { N: 1024, r: 8, p: 1 } as const;

/** Pads a PIN string ("1234") to the 8-byte APDU form (protocol/pin.ts); throws ERR_CARD_PIN_FORMAT. */
export function padPin(pin: string): Uint8Array {
  if (!isPinText(pin)) throw new SetlsError('ERR_CARD_PIN_FORMAT', 'a PIN or PUK must be 4 to 8 ASCII digits');
  return padPinText(pin);
}

export function hashPin(padded: Uint8Array, salt: Uint8Array): Uint8Array {
  return new Uint8Array(scryptSync(padded, salt, 32, SCRYPT));
}

export function makePinRecord(padded: Uint8Array, salt: Uint8Array, max: number): PinRecord {
  return { salt, hash: hashPin(padded, salt), tries: max, max };
}

/** The pending-attempt tag of a presented value, from its scrypt digest (see the header). */
export function pendingTag(digest: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha256', digest).update(PENDING_LABEL).digest());
}

/** Constant-time comparison of a presented padded PIN against a record (no counter logic). */
export function pinMatches(rec: PinRecord, padded: Uint8Array): boolean {
  const h = hashPin(padded, rec.salt);
  const ok = ctEqual(h, rec.hash);
  wipe(h);
  return ok;
}
