/**
 * TLS record framing (RFC 8446 §5.1): splits a byte stream into whole records without looking
 * inside them. The host uses this to hand the card whole records; it holds no keys.
 *
 *   struct { ContentType type; ProtocolVersion legacy_record_version; uint16 length; opaque fragment[length]; } TLSPlaintext;
 *
 * A header no record may have (unknown content type, a version that is not 3.x, or a length beyond
 * 2^14 + 2048, the TLS 1.2 bound) ends the framing: the framer hands that 5-byte header on alone, as
 * the last "record" of the stream, and drops every later byte. The receiver of the records (the
 * card's engine, or the host's exported record layer) judges the header and answers with the fatal
 * alert it deserves (unexpected_message, decode_error, record_overflow) under its current keys —
 * the framer cannot, it has no keys. Memory stays bounded: a header claiming 65 535 bytes is never
 * buffered up to its length (docs/apdu-protocol.md §4, "A lone record header").
 *
 * imports bytes/ only.
 */
import { SetlsError, concat } from '../../bytes/index.js';

export const RECORD_HEADER_LENGTH = 5;
/** Largest fragment a TLS 1.3 peer may send: 2^14 + 256 (TLSCiphertext, RFC 8446 §5.2). */
export const MAX_CIPHERTEXT_FRAGMENT = 16384 + 256;
/** Largest fragment a TLS 1.2 peer may send: 2^14 + 2048 (TLSCiphertext, RFC 5246 §6.2.3). */
export const MAX_CIPHERTEXT_FRAGMENT_12 = 16384 + 2048;
/** Largest fragment the framer buffers (the larger of the two bounds: the receiver applies its own). */
export const MAX_FRAMED_FRAGMENT = MAX_CIPHERTEXT_FRAGMENT_12;

export interface RecordHeader {
  readonly type: number;
  readonly version: number;
  readonly length: number;
}

/**
 * Reads a record header; throws ERR_TLS_RECORD_OVERFLOW (length above `maxFragment`, default the
 * TLS 1.3 bound) or ERR_TLS_BAD_RECORD (content type or version no record has).
 */
export function parseRecordHeader(b: Uint8Array, offset = 0, maxFragment: number = MAX_CIPHERTEXT_FRAGMENT): RecordHeader {
  const type = b[offset]!;
  const version = (b[offset + 1]! << 8) | b[offset + 2]!;
  const length = (b[offset + 3]! << 8) | b[offset + 4]!;
  if (type < 20 || type > 24) throw new SetlsError('ERR_TLS_BAD_RECORD', `unknown record content type ${type}`);
  if (b[offset + 1] !== 3) throw new SetlsError('ERR_TLS_BAD_RECORD', `bad record version 0x${version.toString(16)}`);
  if (length > maxFragment) {
    throw new SetlsError('ERR_TLS_RECORD_OVERFLOW', `record of ${length} bytes exceeds ${maxFragment}`);
  }
  return { type, version, length };
}

/**
 * When `rec` is a lone header no record may have (what RecordFramer hands on last): the error that
 * header raises (ERR_TLS_BAD_RECORD or ERR_TLS_RECORD_OVERFLOW); otherwise undefined.
 */
export function loneHeaderError(rec: Uint8Array): SetlsError | undefined {
  if (rec.length !== RECORD_HEADER_LENGTH) return undefined;
  try {
    parseRecordHeader(rec, 0, MAX_FRAMED_FRAGMENT);
    return undefined;
  } catch (e) {
    return e as SetlsError;
  }
}

/**
 * Accumulates stream bytes and yields whole records. Memory is bounded: at most one record
 * (header + 2^14 + 2048 bytes) plus what one push brings is buffered. A bad header is yielded alone
 * and ends the framing (see the file comment).
 */
export class RecordFramer {
  private buf: Uint8Array = new Uint8Array(0);
  private stopped = false;

  /** Bytes buffered that do not yet form a whole record. */
  get pending(): number {
    return this.buf.length;
  }

  /** True once a bad header was handed on: every later byte is dropped. */
  get ended(): boolean {
    return this.stopped;
  }

  /** Adds stream bytes; returns the whole records now available (each a fresh copy). */
  push(data: Uint8Array): Uint8Array[] {
    if (this.stopped) return [];
    // Always a plain Uint8Array copy: Buffer#slice would return views on Node's shared pool.
    this.buf = this.buf.length ? concat(this.buf, data) : new Uint8Array(data);
    const out: Uint8Array[] = [];
    let o = 0;
    while (this.buf.length - o >= RECORD_HEADER_LENGTH) {
      let h: RecordHeader;
      try {
        h = parseRecordHeader(this.buf, o, MAX_FRAMED_FRAGMENT);
      } catch {
        out.push(this.buf.slice(o, o + RECORD_HEADER_LENGTH));
        this.stopped = true;
        this.buf = new Uint8Array(0);
        return out;
      }
      const end = o + RECORD_HEADER_LENGTH + h.length;
      if (end > this.buf.length) break;
      out.push(this.buf.slice(o, end));
      o = end;
    }
    this.buf = this.buf.slice(o);
    return out;
  }
}
