/**
 * Command segmentation (draft-urien-eap-smartcard §9.2: P1 bit 0 "More") and response chaining
 * (61xx / 9Fxx answered with GET RESPONSE `C0` or FETCH `12`, 6Cxx answered by repeating the
 * command with the right Le). Host side and card side both live here so they agree.
 * imports bytes/.
 */
import { SetlsError, concat } from '../bytes/index.js';
import { encodeCommand, SHORT_MAX_NC, SHORT_MAX_NE, EXTENDED_MAX_NE, type CommandApdu } from './command.js';
import { parseResponse, type ResponseApdu } from './response.js';
import { SW } from './status.js';

export const INS_GET_RESPONSE = 0xc0;
export const INS_FETCH = 0x12;
export const P1_MORE = 0x01;

/** Sends raw APDU bytes and returns raw response bytes. */
export type Transmit = (apdu: Uint8Array) => Promise<Uint8Array>;

export interface ChainingOptions {
  /** Largest command data per APDU: ≤255 for short APDUs, ≤65535 for extended. Default 255. */
  readonly maxCommandData?: number;
  /** Use extended-length APDUs (Le up to 65536). Default false. */
  readonly extended?: boolean;
  /** Largest total response accepted across a 61xx/9Fxx chain (bounded memory). Default 1 MiB. */
  readonly maxResponse?: number;
  /** CLA for GET RESPONSE / FETCH. Default: the command's CLA. */
  readonly getResponseCla?: number;
}

/**
 * Splits `data` into segments of a chained command. Every segment but the last has the P1 More bit
 * set; Ne is asked only on the last. An empty payload gives one segment.
 */
export function segmentCommand(base: CommandApdu, maxChunk: number): CommandApdu[] {
  if (maxChunk < 1) throw new RangeError('maxChunk must be ≥ 1');
  const out: CommandApdu[] = [];
  const d = base.data;
  if (d.length <= maxChunk) return [base];
  for (let o = 0; o < d.length; o += maxChunk) {
    const last = o + maxChunk >= d.length;
    out.push({
      cla: base.cla,
      ins: base.ins,
      p1: last ? base.p1 & ~P1_MORE : base.p1 | P1_MORE,
      p2: base.p2,
      data: d.subarray(o, Math.min(d.length, o + maxChunk)),
      ne: last ? base.ne : 0,
      ...(base.extended !== undefined ? { extended: base.extended } : {}),
    });
  }
  return out;
}

/**
 * `c` with Ne and the length encoding set. Built property by property: an object spread followed by
 * more properties (`{ ...c, extended }`) takes a slow path in V8 (Node 20: ~2 µs against ~0.2 µs),
 * and this runs for every APDU.
 */
function withEncoding(c: CommandApdu, ne: number, extended: boolean): CommandApdu {
  return { cla: c.cla, ins: c.ins, p1: c.p1, p2: c.p2, data: c.data, ne, extended };
}

function moreBytes(sw: number): number | undefined {
  const hi = sw >> 8;
  if (hi === 0x61 || hi === 0x9f) return sw & 0xff || 256;
  return undefined;
}

/**
 * Sends one logical command: segments it (P1 More), then follows 61xx/9Fxx with GET RESPONSE
 * (for 9Fxx: FETCH) and 6Cxx with a repeat, and returns the whole response with the final SW.
 * An intermediate segment answered with anything but 9000 ends the exchange with that SW.
 */
export async function transceive(transmit: Transmit, cmd: CommandApdu, opts: ChainingOptions = {}): Promise<ResponseApdu> {
  const ext = opts.extended === true;
  const maxChunk = opts.maxCommandData ?? (ext ? 65535 : SHORT_MAX_NC);
  const maxResponse = opts.maxResponse ?? 1 << 20;
  const neMax = ext ? EXTENDED_MAX_NE : SHORT_MAX_NE;
  const segs = segmentCommand(cmd, maxChunk);
  let res: ResponseApdu | undefined;
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!;
    res = parseResponse(await transmit(encodeCommand(withEncoding(s, s.ne, ext))));
    if (i < segs.length - 1 && res.sw !== SW.ok) return res;
  }
  let r = res!;
  const last = segs[segs.length - 1]!;
  if (r.sw >> 8 === 0x6c) {
    const le = r.sw & 0xff || 256;
    r = parseResponse(await transmit(encodeCommand(withEncoding(last, le, ext))));
  }
  const chunks: Uint8Array[] = [r.data];
  let total = r.data.length;
  let more = moreBytes(r.sw);
  while (more !== undefined) {
    const ins = r.sw >> 8 === 0x9f ? INS_FETCH : INS_GET_RESPONSE;
    const ne = ext ? neMax : more;
    r = parseResponse(
      await transmit(
        encodeCommand({ cla: opts.getResponseCla ?? cmd.cla, ins, p1: 0, p2: 0, data: new Uint8Array(0), ne, extended: ext && ne > 256 }),
      ),
    );
    total += r.data.length;
    if (total > maxResponse) {
      throw new SetlsError('ERR_APDU_RESPONSE_TOO_LARGE', `response chain exceeds ${maxResponse} bytes`);
    }
    chunks.push(r.data);
    more = moreBytes(r.sw);
  }
  return { data: chunks.length === 1 ? chunks[0]! : concat(...chunks), sw: r.sw };
}

/**
 * Card side: a pending response longer than the host asked for. `take(ne)` returns the next
 * block and the SW to send with it (61xx while more remain, then `finalSw`).
 */
export class PendingResponse {
  private off = 0;
  constructor(
    private readonly data: Uint8Array,
    private readonly finalSw: number = SW.ok,
  ) {}
  get remaining(): number {
    return this.data.length - this.off;
  }
  take(ne: number): { data: Uint8Array; sw: number } {
    const n = Math.min(ne, this.remaining);
    const data = this.data.slice(this.off, this.off + n);
    this.off += n;
    const left = this.remaining;
    if (left === 0) return { data, sw: this.finalSw };
    return { data, sw: SW.moreData | (left >= 256 ? 0 : left) };
  }
  /** Wipes the buffered response (it may hold plaintext). */
  wipe(): void {
    this.data.fill(0);
  }
}
