/**
 * protocol/pin: the PIN/PUK format of VERIFY, CHANGE-PIN and UNBLOCK-PIN: 4–8 ASCII digits padded
 * with `FF` to 8 bytes. Pure functions; imports nothing.
 *
 * Secrets: the padded arrays hold PINs; the caller wipes them.
 */

export const PinFormat = { padded: 8, minDigits: 4, maxDigits: 8, pad: 0xff } as const;

const PIN_TEXT = /^[0-9]{4,8}$/;

/** Whether `pin` is 4–8 ASCII digits. */
export function isPinText(pin: unknown): pin is string {
  return typeof pin === 'string' && PIN_TEXT.test(pin);
}

/** The 8-byte padded form of a PIN text; the caller checks `isPinText` first (RangeError otherwise). */
export function padPinText(pin: string): Uint8Array {
  if (!isPinText(pin)) throw new RangeError('a PIN is 4 to 8 ASCII digits');
  const out = new Uint8Array(PinFormat.padded).fill(PinFormat.pad);
  for (let i = 0; i < pin.length; i++) out[i] = pin.charCodeAt(i);
  return out;
}

/** True when `b` is a well-formed padded PIN: 4–8 ASCII digits then `FF` up to 8 bytes. */
export function isPaddedPin(b: Uint8Array): boolean {
  if (b.length !== PinFormat.padded) return false;
  let n = 0;
  while (n < b.length && b[n]! >= 0x30 && b[n]! <= 0x39) n++;
  if (n < PinFormat.minDigits) return false;
  for (let i = n; i < b.length; i++) if (b[i] !== PinFormat.pad) return false;
  return true;
}
