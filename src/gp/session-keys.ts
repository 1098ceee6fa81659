/**
 * gp/session-keys: what both sides compute from the static keys and the two challenges —
 * session keys, card and host cryptograms, the pseudo-random card challenge. Pure functions;
 * imports bytes/.
 *
 *   context          = host_challenge ‖ card_challenge
 *   S-ENC            = KDF(K-ENC, 04, |K|, context)
 *   S-MAC            = KDF(K-MAC, 06, |K|, context)
 *   S-RMAC           = KDF(K-MAC, 07, |K|, context)      (from K-MAC: there is no static R-MAC key)
 *   card cryptogram  = KDF(S-MAC, 00, 8·s, context)      s = 8 (S8) or 16 (S16)
 *   host cryptogram  = KDF(S-MAC, 01, 8·s, context)
 *   card challenge   = KDF(K-ENC, 02, 8·s, sequence_counter(3) ‖ AID of the security domain)
 *
 * Secrets: the returned session keys belong to the caller (`wipeSessionKeys`).
 */
import { concat, wipe } from '../bytes/index.js';
import { GpError, GpErrorCode } from './errors.js';
import { Ddc, scp03Kdf } from './kdf.js';
import type { StaticKeys } from './keys.js';
import { SEQUENCE_COUNTER_MAX, type SMode } from './params.js';

export interface SessionKeys {
  readonly sEnc: Uint8Array;
  readonly sMac: Uint8Array;
  readonly sRmac: Uint8Array;
}

function checkChallenges(hostChallenge: Uint8Array, cardChallenge: Uint8Array): void {
  if (hostChallenge.length !== cardChallenge.length || (hostChallenge.length !== 8 && hostChallenge.length !== 16)) {
    throw new RangeError('host and card challenges must both be 8 (S8) or 16 (S16) bytes');
  }
}

export function deriveSessionKeys(keys: StaticKeys, hostChallenge: Uint8Array, cardChallenge: Uint8Array): SessionKeys {
  checkChallenges(hostChallenge, cardChallenge);
  const context = concat(hostChallenge, cardChallenge);
  const bits = keys.enc.length * 8;
  const sk = {
    sEnc: scp03Kdf(keys.enc, Ddc.sEnc, bits, context),
    sMac: scp03Kdf(keys.mac, Ddc.sMac, bits, context),
    sRmac: scp03Kdf(keys.mac, Ddc.sRmac, bits, context),
  };
  wipe(context);
  return sk;
}

export function wipeSessionKeys(sk: SessionKeys | undefined): void {
  if (sk) wipe(sk.sEnc, sk.sMac, sk.sRmac);
}

function cryptogram(constant: number, sMac: Uint8Array, hostChallenge: Uint8Array, cardChallenge: Uint8Array): Uint8Array {
  checkChallenges(hostChallenge, cardChallenge);
  return scp03Kdf(sMac, constant, hostChallenge.length * 8, concat(hostChallenge, cardChallenge));
}

/** The card cryptogram (card → host proof of the keys), as long as the challenges. */
export function cardCryptogram(sMac: Uint8Array, hostChallenge: Uint8Array, cardChallenge: Uint8Array): Uint8Array {
  return cryptogram(Ddc.cardCryptogram, sMac, hostChallenge, cardChallenge);
}

/** The host cryptogram (host → card proof), sent in EXTERNAL AUTHENTICATE. */
export function hostCryptogram(sMac: Uint8Array, hostChallenge: Uint8Array, cardChallenge: Uint8Array): Uint8Array {
  return cryptogram(Ddc.hostCryptogram, sMac, hostChallenge, cardChallenge);
}

/** The 3-byte big-endian encoding of a sequence counter (0..FFFFFF). */
export function encodeSequenceCounter(counter: number): Uint8Array {
  if (!Number.isInteger(counter) || counter < 0 || counter > SEQUENCE_COUNTER_MAX) {
    throw new GpError(GpErrorCode.counter, `sequence counter ${counter} is not a 24-bit value`);
  }
  return Uint8Array.of(counter >> 16, (counter >> 8) & 0xff, counter & 0xff);
}

/**
 * The pseudo-random card challenge ("i" bit 10): KDF(K-ENC, 02, 8·s, counter(3) ‖ sdAid). Only key
 * holders can predict it, which lets an operator precompute a whole session for a known counter.
 */
export function pseudoRandomCardChallenge(kEnc: Uint8Array, counter: number, sdAid: Uint8Array, mode: SMode): Uint8Array {
  if (sdAid.length < 5 || sdAid.length > 16) throw new RangeError(`AID of ${sdAid.length} bytes is not 5..16`);
  const context = concat(encodeSequenceCounter(counter), sdAid);
  return scp03Kdf(kEnc, Ddc.cardChallenge, mode * 8, context);
}
