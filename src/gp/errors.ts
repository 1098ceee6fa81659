/**
 * gp/errors: the stable error codes of the GlobalPlatform module and the ISO 7816-4 / GP status
 * words the card side answers with. imports bytes/.
 *
 * Host-side (off-card) failures throw a `GpError`; card-side processing never throws on bad input
 * and returns one of the status words below instead (it throws only on programming errors).
 */
import { SetlsError } from '../bytes/index.js';

export const GpErrorCode = {
  /** A key of the wrong length, a key set whose keys differ in length, a bad KVN. */
  key: 'ERR_GP_KEY',
  /** A command APDU the off-card side was asked to build or wrap is malformed or not wrappable. */
  apdu: 'ERR_GP_APDU',
  /** A wrapped command would not fit the APDU (short APDUs refused, or over 65535 bytes). */
  tooLong: 'ERR_GP_TOO_LONG',
  /** A security level other than 01/03/11/13/33, or one the card's "i" parameter does not support. */
  level: 'ERR_GP_LEVEL',
  /** A method called out of order (wrap before EXTERNAL AUTHENTICATE, after close, ...). */
  state: 'ERR_GP_STATE',
  /** INITIALIZE UPDATE response malformed, with an unexpected SW, KVN, SCP or "i". */
  initUpdate: 'ERR_GP_INIT_UPDATE',
  /** The card cryptogram did not verify: wrong keys, or not the card we think. */
  cardCryptogram: 'ERR_GP_CARD_CRYPTOGRAM',
  /** A pseudo-random card challenge that is not KDF(K-ENC, counter ‖ AID). */
  cardChallenge: 'ERR_GP_CARD_CHALLENGE',
  /** EXTERNAL AUTHENTICATE refused by the card. */
  auth: 'ERR_GP_AUTH',
  /** A response whose R-MAC, R-ENC padding or shape does not verify; the session is closed. */
  response: 'ERR_GP_RESPONSE',
  /** The 24-bit sequence counter is exhausted (or not a 24-bit value). */
  counter: 'ERR_GP_COUNTER',
  /** PUT KEY data malformed or a key check value that does not match. */
  putKey: 'ERR_GP_PUT_KEY',
  /** STORE DATA blocks out of order or too large. */
  storeData: 'ERR_GP_STORE_DATA',
} as const;
export type GpErrorCode = (typeof GpErrorCode)[keyof typeof GpErrorCode];

export class GpError extends SetlsError {
  constructor(code: GpErrorCode, message: string) {
    super(code, message);
    this.name = 'GpError';
  }
}

/** Status words used by the card side of SCP03 (GP Card Spec 2.3 §11, ISO 7816-4 §5.6). */
export const GpSw = {
  ok: 0x9000,
  /** EXTERNAL AUTHENTICATE: authentication of the host cryptogram failed. */
  authenticationFailed: 0x6300,
  wrongLength: 0x6700,
  /** C-MAC or decryption failed, secure messaging missing or malformed (GP API SecureChannel.unwrap). */
  securityStatusNotSatisfied: 0x6982,
  /** A session was aborted and not yet restarted; or no INITIALIZE UPDATE before EXTERNAL AUTHENTICATE. */
  conditionsNotSatisfied: 0x6985,
  wrongData: 0x6a80,
  notEnoughMemory: 0x6a84,
  wrongP1P2: 0x6a86,
  /** INITIALIZE UPDATE: no key set with that KVN. */
  referencedDataNotFound: 0x6a88,
  insNotSupported: 0x6d00,
  claNotSupported: 0x6e00,
} as const;

/**
 * Whether a status word is an error in SCP03's sense: everything but 9000 and the warnings
 * 62xx/63xx. Responses with an error SW carry no R-MAC and no R-ENC (GP Amendment D, R-MAC and R-ENC rules).
 */
export function isErrorSw(sw: number): boolean {
  const sw1 = sw >> 8;
  return !(sw === 0x9000 || sw1 === 0x62 || sw1 === 0x63);
}
