/**
 * gp/command-apdu: the ISO 7816-4 command APDU cases SCP03 wrapping must tell apart, short and
 * extended (§5.1). A local codec because gp/ may import only bytes/; its `RawCommand` has the same
 * field names as apdu/'s `CommandApdu`. imports nothing.
 *
 *   case 1   CLA INS P1 P2
 *   case 2S  … Le(1)                 Le 00 = 256        case 2E  … 00 Le(2)            0000 = 65536
 *   case 3S  … Lc(1) data            Lc 01..FF          case 3E  … 00 Lc(2) data
 *   case 4S  … Lc(1) data Le(1)                         case 4E  … 00 Lc(2) data Le(2)
 */

export interface RawCommand {
  readonly cla: number;
  readonly ins: number;
  readonly p1: number;
  readonly p2: number;
  /** Command data (Nc = data.length). */
  readonly data: Uint8Array;
  /** Ne; 0 = no Le field. Short Le 00 is 256, extended 0000 is 65536. */
  readonly ne: number;
  /** Whether the encoding is extended length. */
  readonly extended: boolean;
}

/** Parses a command APDU; undefined if its length fields do not match its size. */
export function parseCommandApdu(b: Uint8Array): RawCommand | undefined {
  if (b.length < 4) return undefined;
  const head = { cla: b[0]!, ins: b[1]!, p1: b[2]!, p2: b[3]! };
  const none = new Uint8Array(0);
  if (b.length === 4) return { ...head, data: none, ne: 0, extended: false };
  const b4 = b[4]!;
  if (b.length === 5) return { ...head, data: none, ne: b4 === 0 ? 256 : b4, extended: false };
  if (b4 !== 0) {
    if (b.length === 5 + b4) return { ...head, data: b.slice(5), ne: 0, extended: false };
    if (b.length === 6 + b4) {
      const le = b[b.length - 1]!;
      return { ...head, data: b.slice(5, 5 + b4), ne: le === 0 ? 256 : le, extended: false };
    }
    return undefined;
  }
  if (b.length < 7) return undefined;
  const n = (b[5]! << 8) | b[6]!;
  if (b.length === 7) return { ...head, data: none, ne: n === 0 ? 65536 : n, extended: true };
  if (n === 0) return undefined;
  if (b.length === 7 + n) return { ...head, data: b.slice(7), ne: 0, extended: true };
  if (b.length === 9 + n) {
    const le = (b[b.length - 2]! << 8) | b[b.length - 1]!;
    return { ...head, data: b.slice(7, 7 + n), ne: le === 0 ? 65536 : le, extended: true };
  }
  return undefined;
}

/** The Lc field as it is (or would be) encoded: empty, `Lc` or `00 Lc1 Lc2`. */
export function lcField(nc: number, extended: boolean): Uint8Array {
  if (nc === 0) return new Uint8Array(0);
  return extended ? Uint8Array.of(0, nc >> 8, nc & 0xff) : Uint8Array.of(nc);
}

/** Encodes a command; extended when `extended` is set or the sizes need it. */
export function encodeCommandApdu(c: RawCommand): Uint8Array {
  const nc = c.data.length;
  if (nc > 65535) throw new RangeError(`command data of ${nc} bytes exceeds 65535`);
  if (!Number.isInteger(c.ne) || c.ne < 0 || c.ne > 65536) throw new RangeError(`Ne ${c.ne} out of range`);
  const ext = c.extended || nc > 255 || c.ne > 256;
  const lc = lcField(nc, ext);
  let le = new Uint8Array(0);
  if (c.ne !== 0 && !ext) le = Uint8Array.of(c.ne & 0xff); // 256 → 00
  else if (c.ne !== 0) {
    const two = [(c.ne >> 8) & 0xff, c.ne & 0xff]; // 65536 → 00 00
    le = Uint8Array.from(nc === 0 ? [0, ...two] : two); // case 2E repeats the 00 marker
  }
  const out = new Uint8Array(4 + lc.length + nc + le.length);
  out.set([c.cla, c.ins, c.p1, c.p2]);
  out.set(lc, 4);
  out.set(c.data, 4 + lc.length);
  out.set(le, 4 + lc.length + nc);
  return out;
}
