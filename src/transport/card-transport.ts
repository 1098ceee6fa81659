/**
 * The one channel between the host and a card: raw ISO 7816-4 command APDU bytes in, raw response
 * APDU bytes (data ‖ SW1 SW2) out. Nothing else crosses the card boundary.
 * imports bytes/ only.
 */
import { SetlsError } from '../bytes/index.js';

export interface CardTransport {
  /** Sends one command APDU and resolves with the response APDU (data ‖ SW1 SW2). */
  transmit(apdu: Uint8Array): Promise<Uint8Array>;
  /** Releases the reader/card. Later transmits reject with ERR_APDU_TRANSPORT_CLOSED. */
  close(): Promise<void>;
  /** True when the transport carries extended-length APDUs (Lc up to 65535, Le up to 65536). */
  readonly extendedLength: boolean;
  /**
   * Optional: runs one whole command/response chain (segments + 61xx GET RESPONSEs) so that no other
   * APDU gets between its APDUs (PC/SC: SCardBeginTransaction/EndTransaction). `transmit()` calls
   * made by `fn` run inside it. Transports without it are already one-client (in-process).
   */
  withTransaction?<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Optional: as transmit(), but a card that answers synchronously (the in-process emulated card
   * with nothing in flight) returns its response as is, with no promise; otherwise the promise
   * transmit() would return. Throws what transmit() would reject with. A synchronous answer cannot
   * be late, so callers skip their per-APDU deadline timer for it (the host's per-APDU cost).
   */
  transmitDirect?(apdu: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

export function transportClosed(): SetlsError {
  return new SetlsError('ERR_APDU_TRANSPORT_CLOSED', 'the card transport is closed');
}

/** Validates an APDU at a transport's public entry. */
export function checkApdu(apdu: unknown): asserts apdu is Uint8Array {
  if (!(apdu instanceof Uint8Array)) throw new TypeError('an APDU must be a Uint8Array');
  if (apdu.length < 4) throw new SetlsError('ERR_APDU_LENGTH', `command APDU of ${apdu.length} bytes is shorter than a header`);
  if (apdu.length > 4 + 3 + 65535 + 2) throw new SetlsError('ERR_APDU_LENGTH', `command APDU of ${apdu.length} bytes is too long`);
}
