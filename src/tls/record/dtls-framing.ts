/**
 * DTLS 1.2 framing (RFC 6347 §4.1, §4.2.2, §4.2.3), shared by the engine (tls/dtls/) and the host
 * (host/dtls/: HelloVerifyRequest, fragmentation, reassembly, retransmission). No keys, no secrets:
 * like framing.ts, this is the part of the record layer the host may see.
 *
 *   struct {
 *     ContentType type; ProtocolVersion version;  // FE FD = DTLS 1.2
 *     uint16 epoch; uint48 sequence_number;
 *     uint16 length; opaque fragment[length];
 *   } DTLSPlaintext / DTLSCiphertext;             // 13-byte header
 *
 *   struct {
 *     HandshakeType msg_type; uint24 length;
 *     uint16 message_seq; uint24 fragment_offset; uint24 fragment_length;
 *     opaque fragment[fragment_length];
 *   } Handshake;                                  // 12-byte header
 *
 * imports bytes/ only.
 */
import { concat } from '../../bytes/index.js';

export const DTLS_RECORD_HEADER_LENGTH = 13;
export const DTLS_HANDSHAKE_HEADER_LENGTH = 12;
export const DTLS12_VERSION = 0xfefd;
export const DTLS10_VERSION = 0xfeff;
/** Largest record fragment accepted: 2^14 + 2048 (RFC 6347 §4.1 / RFC 5246 §6.2.3). */
export const DTLS_MAX_FRAGMENT = 16384 + 2048;
/** Largest handshake message the framing reassembles (bounds memory on the host and the card). */
export const DTLS_MAX_HANDSHAKE_MESSAGE = 65536;
/** HandshakeType hello_verify_request (RFC 6347 §4.2.1). */
export const HELLO_VERIFY_REQUEST = 3;

export interface DtlsRecord {
  readonly type: number;
  readonly version: number;
  readonly epoch: number;
  /** 48-bit sequence number (fits a JS number exactly). */
  readonly seq: number;
  /** The fragment (ciphertext once epoch > 0). */
  readonly fragment: Uint8Array;
  /** The whole record, header included. */
  readonly raw: Uint8Array;
}

function u48(b: Uint8Array, o: number): number {
  return ((b[o]! << 8) | b[o + 1]!) * 0x100000000 + (((b[o + 2]! << 24) | (b[o + 3]! << 16) | (b[o + 4]! << 8) | b[o + 5]!) >>> 0);
}

/**
 * Splits one datagram into DTLS records. Parsing stops at the first thing that is not a record
 * (unknown type, a version that is not FE xx, a length beyond the datagram): those bytes are
 * dropped, as RFC 6347 §4.1.2.7 asks for invalid records. Returns views on `datagram`.
 */
export function parseDtlsRecords(datagram: Uint8Array): DtlsRecord[] {
  const out: DtlsRecord[] = [];
  let o = 0;
  while (datagram.length - o >= DTLS_RECORD_HEADER_LENGTH) {
    const type = datagram[o]!;
    if (type < 20 || type > 23 || datagram[o + 1] !== 0xfe) break;
    const version = (datagram[o + 1]! << 8) | datagram[o + 2]!;
    const epoch = (datagram[o + 3]! << 8) | datagram[o + 4]!;
    const seq = u48(datagram, o + 5);
    const length = (datagram[o + 11]! << 8) | datagram[o + 12]!;
    const end = o + DTLS_RECORD_HEADER_LENGTH + length;
    if (length > DTLS_MAX_FRAGMENT || end > datagram.length) break;
    out.push({ type, version, epoch, seq, fragment: datagram.subarray(o + DTLS_RECORD_HEADER_LENGTH, end), raw: datagram.subarray(o, end) });
    o = end;
  }
  return out;
}

/** The 13-byte header followed by `fragment`. */
export function encodeDtlsRecord(type: number, epoch: number, seq: number, fragment: Uint8Array, version = DTLS12_VERSION): Uint8Array {
  const out = new Uint8Array(DTLS_RECORD_HEADER_LENGTH + fragment.length);
  writeDtlsRecordHeader(out, 0, type, version, epoch, seq, fragment.length);
  out.set(fragment, DTLS_RECORD_HEADER_LENGTH);
  return out;
}

export function writeDtlsRecordHeader(out: Uint8Array, o: number, type: number, version: number, epoch: number, seq: number, length: number): void {
  const hi = Math.floor(seq / 0x100000000);
  const lo = seq >>> 0;
  out[o] = type;
  out[o + 1] = version >>> 8;
  out[o + 2] = version & 0xff;
  out[o + 3] = epoch >>> 8;
  out[o + 4] = epoch & 0xff;
  out[o + 5] = hi >>> 8;
  out[o + 6] = hi & 0xff;
  out[o + 7] = lo >>> 24;
  out[o + 8] = (lo >>> 16) & 0xff;
  out[o + 9] = (lo >>> 8) & 0xff;
  out[o + 10] = lo & 0xff;
  out[o + 11] = length >>> 8;
  out[o + 12] = length & 0xff;
}

/** The 8-byte epoch ‖ seq48 (AEAD nonce_explicit and additional data, RFC 6347 §4.1.2.1). */
export function epochSeq(epoch: number, seq: number): Uint8Array {
  const b = new Uint8Array(8);
  const hi = Math.floor(seq / 0x100000000);
  const lo = seq >>> 0;
  b[0] = epoch >>> 8;
  b[1] = epoch & 0xff;
  b[2] = hi >>> 8;
  b[3] = hi & 0xff;
  b[4] = lo >>> 24;
  b[5] = (lo >>> 16) & 0xff;
  b[6] = (lo >>> 8) & 0xff;
  b[7] = lo & 0xff;
  return b;
}

export interface DtlsHandshakeFragment {
  readonly msgType: number;
  readonly length: number;
  readonly messageSeq: number;
  readonly fragmentOffset: number;
  readonly fragmentLength: number;
  readonly fragment: Uint8Array;
}

const u24 = (b: Uint8Array, o: number): number => (b[o]! << 16) | (b[o + 1]! << 8) | b[o + 2]!;

/**
 * The handshake fragments in one (plaintext) handshake record body. undefined when the body does
 * not parse exactly (a fragment beyond its message, a truncated header or fragment).
 */
export function parseDtlsHandshakeFragments(body: Uint8Array): DtlsHandshakeFragment[] | undefined {
  const out: DtlsHandshakeFragment[] = [];
  let o = 0;
  while (o < body.length) {
    if (body.length - o < DTLS_HANDSHAKE_HEADER_LENGTH) return undefined;
    const msgType = body[o]!;
    const length = u24(body, o + 1);
    const messageSeq = (body[o + 4]! << 8) | body[o + 5]!;
    const fragmentOffset = u24(body, o + 6);
    const fragmentLength = u24(body, o + 9);
    const start = o + DTLS_HANDSHAKE_HEADER_LENGTH;
    if (start + fragmentLength > body.length || fragmentOffset + fragmentLength > length || length > DTLS_MAX_HANDSHAKE_MESSAGE) return undefined;
    out.push({ msgType, length, messageSeq, fragmentOffset, fragmentLength, fragment: body.subarray(start, start + fragmentLength) });
    o = start + fragmentLength;
  }
  return out;
}

/** One handshake fragment (or a whole message when offset 0 and the fragment is the whole body). */
export function encodeDtlsHandshake(msgType: number, messageSeq: number, length: number, fragmentOffset: number, fragment: Uint8Array): Uint8Array {
  const out = new Uint8Array(DTLS_HANDSHAKE_HEADER_LENGTH + fragment.length);
  out[0] = msgType;
  out[1] = length >>> 16;
  out[2] = (length >>> 8) & 0xff;
  out[3] = length & 0xff;
  out[4] = messageSeq >>> 8;
  out[5] = messageSeq & 0xff;
  out[6] = fragmentOffset >>> 16;
  out[7] = (fragmentOffset >>> 8) & 0xff;
  out[8] = fragmentOffset & 0xff;
  out[9] = fragment.length >>> 16;
  out[10] = (fragment.length >>> 8) & 0xff;
  out[11] = fragment.length & 0xff;
  out.set(fragment, DTLS_HANDSHAKE_HEADER_LENGTH);
  return out;
}

/**
 * Splits one whole handshake message (12-byte header, offset 0, fragment_length = length) into
 * fragments whose header + data is at most `maxFragment` bytes (RFC 6347 §4.2.3).
 */
export function fragmentDtlsHandshake(message: Uint8Array, maxFragment: number): Uint8Array[] {
  const msgType = message[0]!;
  const length = u24(message, 1);
  const messageSeq = (message[4]! << 8) | message[5]!;
  const body = message.subarray(DTLS_HANDSHAKE_HEADER_LENGTH, DTLS_HANDSHAKE_HEADER_LENGTH + length);
  const room = Math.max(1, maxFragment - DTLS_HANDSHAKE_HEADER_LENGTH);
  if (body.length <= room) return [message.slice(0, DTLS_HANDSHAKE_HEADER_LENGTH + length)];
  const out: Uint8Array[] = [];
  for (let o = 0; o < body.length; o += room) out.push(encodeDtlsHandshake(msgType, messageSeq, length, o, body.subarray(o, o + room)));
  return out;
}

/**
 * Reassembles handshake messages from fragments, in message_seq order (RFC 6347 §4.2.3): fragments
 * of messages already delivered are reported as duplicates; messages further ahead than `window`
 * are dropped; overlapping fragments are fine. Memory: at most `window` messages of at most
 * DTLS_MAX_HANDSHAKE_MESSAGE bytes.
 */
export class DtlsHandshakeReassembler {
  private nextSeq: number;
  private readonly partial = new Map<number, { msgType: number; body: Uint8Array; have: Uint8Array; missing: number }>();

  constructor(
    firstSeq = 0,
    private readonly window = 8,
  ) {
    this.nextSeq = firstSeq;
  }

  /** message_seq of the next message to deliver. */
  get next(): number {
    return this.nextSeq;
  }

  /** Skips ahead (the engine learns the client's first message_seq from its ClientHello). */
  reset(nextSeq: number): void {
    this.nextSeq = nextSeq;
    this.partial.clear();
  }

  /**
   * Adds one fragment. Returns 'duplicate' for a message already delivered, 'dropped' for one out of
   * the window or inconsistent with earlier fragments, otherwise 'ok'.
   */
  push(f: DtlsHandshakeFragment): 'ok' | 'duplicate' | 'dropped' {
    if (f.messageSeq < this.nextSeq) return 'duplicate';
    if (f.messageSeq >= this.nextSeq + this.window) return 'dropped';
    let p = this.partial.get(f.messageSeq);
    if (!p) {
      p = { msgType: f.msgType, body: new Uint8Array(f.length), have: new Uint8Array(f.length), missing: f.length };
      this.partial.set(f.messageSeq, p);
    } else if (p.msgType !== f.msgType || p.body.length !== f.length) {
      return 'dropped';
    }
    p.body.set(f.fragment, f.fragmentOffset);
    for (let i = f.fragmentOffset; i < f.fragmentOffset + f.fragmentLength; i++) {
      if (!p.have[i]) {
        p.have[i] = 1;
        p.missing--;
      }
    }
    return 'ok';
  }

  /** The next whole message in order (12-byte header with offset 0, fragment_length = length), or undefined. */
  take(): { msgType: number; messageSeq: number; body: Uint8Array; raw: Uint8Array } | undefined {
    const p = this.partial.get(this.nextSeq);
    if (!p || p.missing > 0) return undefined;
    this.partial.delete(this.nextSeq);
    const messageSeq = this.nextSeq++;
    const raw = encodeDtlsHandshake(p.msgType, messageSeq, p.body.length, 0, p.body);
    return { msgType: p.msgType, messageSeq, body: raw.subarray(DTLS_HANDSHAKE_HEADER_LENGTH), raw };
  }

  clear(): void {
    this.partial.clear();
  }
}

/** Concatenates records into datagrams of at most `mtu` bytes (a record larger than `mtu` travels alone). */
export function packDatagrams(records: readonly Uint8Array[], mtu: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let cur: Uint8Array[] = [];
  let size = 0;
  for (const r of records) {
    if (size > 0 && size + r.length > mtu) {
      out.push(concat(...cur));
      cur = [];
      size = 0;
    }
    cur.push(r);
    size += r.length;
  }
  if (size > 0) out.push(concat(...cur));
  return out;
}

/** The parts of a DTLS ClientHello body (RFC 6347 §4.2.1: the cookie follows the session id). */
export interface DtlsClientHelloParts {
  readonly clientVersion: number;
  readonly random: Uint8Array;
  readonly sessionId: Uint8Array;
  readonly cookie: Uint8Array;
  /** cipher_suites ‖ compression_methods ‖ extensions, as sent. */
  readonly rest: Uint8Array;
}

/** undefined when the body is too short for the fixed part (the rest is checked by the engine). */
export function splitDtlsClientHello(body: Uint8Array): DtlsClientHelloParts | undefined {
  if (body.length < 2 + 32 + 1) return undefined;
  const sidLen = body[34]!;
  if (sidLen > 32 || body.length < 35 + sidLen + 1) return undefined;
  const cookieLen = body[35 + sidLen]!;
  const restStart = 36 + sidLen + cookieLen;
  if (body.length < restStart) return undefined;
  return {
    clientVersion: (body[0]! << 8) | body[1]!,
    random: body.subarray(2, 34),
    sessionId: body.subarray(35, 35 + sidLen),
    cookie: body.subarray(36 + sidLen, restStart),
    rest: body.subarray(restStart),
  };
}
