/**
 * ISO 7816-4 command APDUs, short and extended length (ISO 7816-4 §5.1).
 *
 *   case 1:   CLA INS P1 P2
 *   case 2S:  CLA INS P1 P2 Le(1)                      Le 00 = 256
 *   case 3S:  CLA INS P1 P2 Lc(1) data                 Lc 01..FF
 *   case 4S:  CLA INS P1 P2 Lc(1) data Le(1)
 *   case 2E:  CLA INS P1 P2 00 Le(2)                   Le 0000 = 65536
 *   case 3E:  CLA INS P1 P2 00 Lc(2) data              Lc 0001..FFFF
 *   case 4E:  CLA INS P1 P2 00 Lc(2) data Le(2)
 *
 * imports bytes/.
 */
import { SetlsError } from '../bytes/index.js';
import { SW } from './status.js';

export interface CommandApdu {
  readonly cla: number;
  readonly ins: number;
  readonly p1: number;
  readonly p2: number;
  /** Command data (Nc = data.length, 0..65535). */
  readonly data: Uint8Array;
  /** Ne: maximum response bytes expected; 0 = no response data expected (no Le field). */
  readonly ne: number;
  /** Whether the encoding was (or must be) extended length. */
  readonly extended?: boolean;
}

/** An APDU the card could not parse; `sw` is the status word to answer with. */
export class ApduError extends SetlsError {
  constructor(
    code: string,
    message: string,
    readonly sw: number,
  ) {
    super(code, message);
    this.name = 'ApduError';
  }
}

export const SHORT_MAX_NC = 255;
export const SHORT_MAX_NE = 256;
export const EXTENDED_MAX_NC = 65535;
export const EXTENDED_MAX_NE = 65536;

function checkByte(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 255) throw new RangeError(`${name} must be a byte, got ${v}`);
}

/** Encodes a command APDU; uses extended length when the sizes need it or `extended` is set. */
export function encodeCommand(c: CommandApdu): Uint8Array {
  checkByte('CLA', c.cla);
  checkByte('INS', c.ins);
  checkByte('P1', c.p1);
  checkByte('P2', c.p2);
  const nc = c.data.length;
  const ne = c.ne;
  if (nc > EXTENDED_MAX_NC) throw new RangeError(`command data of ${nc} bytes exceeds ${EXTENDED_MAX_NC}`);
  if (!Number.isInteger(ne) || ne < 0 || ne > EXTENDED_MAX_NE) throw new RangeError(`Ne ${ne} out of range`);
  const ext = c.extended === true || nc > SHORT_MAX_NC || ne > SHORT_MAX_NE;
  const parts: number[] = [c.cla, c.ins, c.p1, c.p2];
  if (!ext) {
    const out = new Uint8Array(4 + (nc ? 1 + nc : 0) + (ne ? 1 : 0));
    out.set(parts);
    let o = 4;
    if (nc) {
      out[o++] = nc;
      out.set(c.data, o);
      o += nc;
    }
    if (ne) out[o] = ne === 256 ? 0 : ne;
    return out;
  }
  const out = new Uint8Array(4 + (nc || ne ? 1 : 0) + (nc ? 2 + nc : 0) + (ne ? 2 : 0));
  out.set(parts);
  let o = 4;
  if (nc || ne) out[o++] = 0;
  if (nc) {
    out[o++] = nc >> 8;
    out[o++] = nc & 0xff;
    out.set(c.data, o);
    o += nc;
  }
  if (ne) {
    const v = ne === 65536 ? 0 : ne;
    out[o++] = v >> 8;
    out[o] = v & 0xff;
  }
  return out;
}

function malformed(b: Uint8Array, why: string): never {
  throw new ApduError('ERR_APDU_LENGTH', `malformed command APDU (${b.length} bytes): ${why}`, SW.wrongLength);
}

function parsed(b: Uint8Array, data: Uint8Array, ne: number, extended: boolean): CommandApdu {
  return extended ? { cla: b[0]!, ins: b[1]!, p1: b[2]!, p2: b[3]!, data, ne, extended } : { cla: b[0]!, ins: b[1]!, p1: b[2]!, p2: b[3]!, data, ne };
}

/**
 * Parses a command APDU the way a card must: every length consistent with the total size.
 * Throws ApduError with SW 6700 (wrong length) for any inconsistency.
 */
export function parseCommand(b: Uint8Array): CommandApdu {
  if (b.length < 4) malformed(b, 'shorter than a header');
  const body = b.length - 4;
  if (body === 0) return parsed(b, new Uint8Array(0), 0, false);
  const b4 = b[4]!;
  if (body === 1) return parsed(b, new Uint8Array(0), b4 === 0 ? 256 : b4, false);
  if (b4 !== 0) {
    // short case 3 or 4
    const nc = b4;
    if (body === 1 + nc) return parsed(b, b.slice(5, 5 + nc), 0, false);
    if (body === 2 + nc) {
      const le = b[5 + nc]!;
      return parsed(b, b.slice(5, 5 + nc), le === 0 ? 256 : le, false);
    }
    return malformed(b, `Lc=${nc} does not match body of ${body} bytes`);
  }
  // extended
  if (body === 3) {
    const le = (b[5]! << 8) | b[6]!;
    return parsed(b, new Uint8Array(0), le === 0 ? 65536 : le, true);
  }
  if (body < 3) return malformed(b, 'truncated extended length');
  const nc = (b[5]! << 8) | b[6]!;
  if (nc === 0) return malformed(b, 'extended Lc of 0');
  if (body === 3 + nc) return parsed(b, b.slice(7, 7 + nc), 0, true);
  if (body === 5 + nc) {
    const le = (b[7 + nc]! << 8) | b[8 + nc]!;
    return parsed(b, b.slice(7, 7 + nc), le === 0 ? 65536 : le, true);
  }
  return malformed(b, `extended Lc=${nc} does not match body of ${body} bytes`);
}
