/**
 * gp/handshake: the bytes of INITIALIZE UPDATE and EXTERNAL AUTHENTICATE, shared by both sides.
 * Pure codecs; imports bytes/.
 *
 *   INITIALIZE UPDATE   80|ch 50 KVN 00 Lc=s <host challenge s> 00
 *   response            <key diversification data 10> <KVN> 03 <i> <card challenge s>
 *                       <card cryptogram s> [<sequence counter 3> if i has bit 10] 90 00
 *   EXTERNAL AUTHENTICATE  84|ch 82 SL 00 Lc=2s <host cryptogram s> <C-MAC s>
 *                       C-MAC = CMAC(S-MAC, 00×16 ‖ 84 82 SL 00 2s ‖ host cryptogram)
 *
 * (s = 8 in S8 mode, 16 in S16 mode; CLA carries the logical channel, see cla.ts.)
 */
import { concat } from '../bytes/index.js';
import { claFor } from './cla.js';
import { GpError, GpErrorCode } from './errors.js';
import { encodeSequenceCounter } from './session-keys.js';
import { GpIns, IParam, isValidI, modeOfI, SCP03_ID, type SecurityLevel, type SMode } from './params.js';

export const KEY_DIVERSIFICATION_DATA_LENGTH = 10;

/** The INITIALIZE UPDATE command (case 4, Le 00). */
export function buildInitializeUpdate(kvn: number, hostChallenge: Uint8Array, channel = 0): Uint8Array {
  if (!Number.isInteger(kvn) || kvn < 0 || kvn > 0x7f) throw new GpError(GpErrorCode.key, `KVN ${kvn} outside 00..7F`);
  if (hostChallenge.length !== 8 && hostChallenge.length !== 16) throw new RangeError('host challenge must be 8 or 16 bytes');
  return concat(Uint8Array.of(claFor(channel), GpIns.initializeUpdate, kvn, 0x00, hostChallenge.length), hostChallenge, Uint8Array.of(0x00));
}

export interface InitializeUpdateResponse {
  /** Key diversification data (10 bytes; card-unique data chosen by the card). */
  readonly keyDiversificationData: Uint8Array;
  /** KVN of the key set the card used. */
  readonly kvn: number;
  /** The SCP03 "i" parameter. */
  readonly i: number;
  readonly cardChallenge: Uint8Array;
  readonly cardCryptogram: Uint8Array;
  /** The 24-bit sequence counter, present when i has the pseudo-random challenge bit (10). */
  readonly sequenceCounter?: number;
}

/** The response data of INITIALIZE UPDATE (without SW). */
export function encodeInitializeUpdateResponse(r: InitializeUpdateResponse): Uint8Array {
  if (r.keyDiversificationData.length !== KEY_DIVERSIFICATION_DATA_LENGTH) throw new RangeError('key diversification data must be 10 bytes');
  if (!isValidI(r.i)) throw new RangeError(`invalid i parameter ${r.i}`);
  const s = modeOfI(r.i);
  if (r.cardChallenge.length !== s || r.cardCryptogram.length !== s) throw new RangeError(`card challenge and cryptogram must be ${s} bytes`);
  const pseudo = (r.i & IParam.pseudoRandomChallenge) !== 0;
  if (pseudo !== (r.sequenceCounter !== undefined)) {
    throw new RangeError('a sequence counter goes with the pseudo-random challenge bit and only with it');
  }
  return concat(
    r.keyDiversificationData,
    Uint8Array.of(r.kvn, SCP03_ID, r.i),
    r.cardChallenge,
    r.cardCryptogram,
    pseudo ? encodeSequenceCounter(r.sequenceCounter!) : new Uint8Array(0),
  );
}

/** Parses INITIALIZE UPDATE response data (without SW); throws ERR_GP_INIT_UPDATE. */
export function parseInitializeUpdateResponse(data: Uint8Array): InitializeUpdateResponse {
  const bad = (why: string): never => {
    throw new GpError(GpErrorCode.initUpdate, `INITIALIZE UPDATE response: ${why}`);
  };
  if (data.length < 13) bad(`${data.length} bytes is too short`);
  if (data[11] !== SCP03_ID) bad(`SCP identifier ${data[11]} is not 03`);
  const i = data[12]!;
  if (!isValidI(i)) bad(`unsupported i parameter 0x${i.toString(16)}`);
  const s = modeOfI(i);
  const pseudo = (i & IParam.pseudoRandomChallenge) !== 0;
  const want = 13 + 2 * s + (pseudo ? 3 : 0);
  if (data.length !== want) bad(`${data.length} bytes where i=0x${i.toString(16)} means ${want}`);
  const at = 13 + 2 * s;
  return {
    keyDiversificationData: data.slice(0, 10),
    kvn: data[10]!,
    i,
    cardChallenge: data.slice(13, 13 + s),
    cardCryptogram: data.slice(13 + s, at),
    ...(pseudo ? { sequenceCounter: (data[at]! << 16) | (data[at + 1]! << 8) | data[at + 2]! } : {}),
  };
}

/** The bytes EXTERNAL AUTHENTICATE's C-MAC covers: `84 82 SL 00 2s ‖ host cryptogram` (CLA' per cla.ts). */
export function externalAuthenticateMacInput(level: SecurityLevel, hostCryptogram: Uint8Array): Uint8Array {
  return concat(Uint8Array.of(0x84, GpIns.externalAuthenticate, level, 0x00, 2 * hostCryptogram.length), hostCryptogram);
}

/** The EXTERNAL AUTHENTICATE command on `channel` (case 3). */
export function encodeExternalAuthenticate(level: SecurityLevel, hostCryptogram: Uint8Array, mac: Uint8Array, s: SMode, channel = 0): Uint8Array {
  return concat(
    Uint8Array.of(claFor(channel, { sm: true }), GpIns.externalAuthenticate, level, 0x00, 2 * s),
    hostCryptogram,
    mac.subarray(0, s),
  );
}
