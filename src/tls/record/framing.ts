/**
 * TLS record framing (RFC 8446 §5.1): splits a byte stream into whole records without looking
 * inside them. The host uses this to hand the card whole records; it holds no keys.
 *
 *   struct { ContentType type; ProtocolVersion legacy_record_version; uint16 length; opaque fragment[length]; } TLSPlaintext;
 *
 * imports bytes/ only.
 */
import { SetlsError, concat } from '../../bytes/index.js';

export const RECORD_HEADER_LENGTH = 5;
/** Largest fragment a peer may send: 2^14 + 256 (TLSCiphertext, RFC 8446 §5.2). */
export const MAX_CIPHERTEXT_FRAGMENT = 16384 + 256;

export interface RecordHeader {
  readonly type: number;
  readonly version: number;
  readonly length: number;
}

/** Reads a record header; throws ERR_TLS_RECORD_OVERFLOW or ERR_TLS_BAD_RECORD on nonsense. */
export function parseRecordHeader(b: Uint8Array, offset = 0): RecordHeader {
  const type = b[offset]!;
  const version = (b[offset + 1]! << 8) | b[offset + 2]!;
  const length = (b[offset + 3]! << 8) | b[offset + 4]!;
  if (type < 20 || type > 24) throw new SetlsError('ERR_TLS_BAD_RECORD', `unknown record content type ${type}`);
  if (b[offset + 1] !== 3) throw new SetlsError('ERR_TLS_BAD_RECORD', `bad record version 0x${version.toString(16)}`);
  if (length > MAX_CIPHERTEXT_FRAGMENT) {
    throw new SetlsError('ERR_TLS_RECORD_OVERFLOW', `record of ${length} bytes exceeds ${MAX_CIPHERTEXT_FRAGMENT}`);
  }
  return { type, version, length };
}

/**
 * Accumulates stream bytes and yields whole records. Memory is bounded: at most one record
 * (header + 16640 bytes) plus what one push brings is buffered.
 */
export class RecordFramer {
  private buf: Uint8Array = new Uint8Array(0);

  /** Bytes buffered that do not yet form a whole record. */
  get pending(): number {
    return this.buf.length;
  }

  /** Adds stream bytes; returns the whole records now available (each a fresh copy). */
  push(data: Uint8Array): Uint8Array[] {
    // Always a plain Uint8Array copy: Buffer#slice would return views on Node's shared pool.
    this.buf = this.buf.length ? concat(this.buf, data) : new Uint8Array(data);
    const out: Uint8Array[] = [];
    let o = 0;
    while (this.buf.length - o >= RECORD_HEADER_LENGTH) {
      const h = parseRecordHeader(this.buf, o);
      const end = o + RECORD_HEADER_LENGTH + h.length;
      if (end > this.buf.length) break;
      out.push(this.buf.slice(o, end));
      o = end;
    }
    this.buf = this.buf.slice(o);
    return out;
  }
}
