/**
 * AEAD record protection for TLS 1.3 (RFC 8446 §5.2–§5.3).
 *
 *   struct {
 *       opaque content[TLSPlaintext.length];
 *       ContentType type;
 *       uint8 zeros[length_of_padding];
 *   } TLSInnerPlaintext;
 *
 *   struct {
 *       ContentType opaque_type = application_data; // 23
 *       ProtocolVersion legacy_record_version = 0x0303;
 *       uint16 length;
 *       opaque encrypted_record[TLSCiphertext.length];
 *   } TLSCiphertext;
 *
 * Per-record nonce = IV xor (64-bit sequence number, left-padded to iv_length). AAD = the 5-byte header.
 * SECRETS: RecordKey.key and RecordKey.iv; wipe() zeroes them.
 * imports bytes/ and tls/ siblings only.
 */
import { ByteWriter, wipe } from '../../bytes/index.js';
import { MAX_PLAINTEXT } from '../constants.js';
import { aeadOpen, aeadSeal, type SuiteParams } from '../crypto.js';
import { tlsError } from '../errors.js';
import type { TrafficKeys } from '../keyschedule/schedule.js';

/** Largest TLSInnerPlaintext we accept: 2^14 content + 1 type byte (RFC 8446 §5.4, RFC 8449). */
export const MAX_INNER_PLAINTEXT = MAX_PLAINTEXT + 1;

/** TLS 1.3 per-record nonce (RFC 8446 §5.3): a copy of the IV xor the 64-bit sequence number, left-padded. */
export function nonceFor(iv: Uint8Array, seq: number): Uint8Array {
  return nonceInto(iv, seq, new Uint8Array(iv.length));
}

/**
 * nonceFor() into `n` (iv.length bytes, e.g. one scratch buffer per direction that the caller
 * wipes): no allocation per record. Returns `n`.
 */
export function nonceInto(iv: Uint8Array, seq: number, n: Uint8Array): Uint8Array {
  if (n.length !== iv.length) throw new RangeError('nonce buffer must be as long as the IV');
  n.set(iv);
  const hi = Math.floor(seq / 0x100000000);
  const lo = seq >>> 0;
  const l = n.length;
  n[l - 8]! ^= (hi >>> 24) & 0xff;
  n[l - 7]! ^= (hi >>> 16) & 0xff;
  n[l - 6]! ^= (hi >>> 8) & 0xff;
  n[l - 5]! ^= hi & 0xff;
  n[l - 4]! ^= (lo >>> 24) & 0xff;
  n[l - 3]! ^= (lo >>> 16) & 0xff;
  n[l - 2]! ^= (lo >>> 8) & 0xff;
  n[l - 1]! ^= lo & 0xff;
  return n;
}

function header(type: number, length: number): Uint8Array {
  return new ByteWriter(5).u8(type).u16(0x0303).u16(length).finish();
}

/** One direction's AEAD state: key, IV and sequence number. */
export class RecordKey {
  private seq = 0;
  private readonly key: Uint8Array;
  private readonly iv: Uint8Array;

  constructor(
    private readonly suite: SuiteParams,
    keys: TrafficKeys,
  ) {
    this.key = keys.key;
    this.iv = keys.iv;
  }

  get sequence(): number {
    return this.seq;
  }

  /** Protects one record: returns header || encrypted_record. `content` must be ≤ 2^14 bytes. */
  seal(type: number, content: Uint8Array): Uint8Array {
    if (content.length > MAX_PLAINTEXT) throw tlsError('ERR_TLS_INTERNAL', 'record content too large');
    // The connection sends a KeyUpdate well before this hard limit (config.keyUpdateAfterRecords).
    if (this.seq >= this.suite.maxRecordsPerKey) throw tlsError('ERR_TLS_SEQUENCE_EXHAUSTED', 'write key exhausted');
    const inner = new Uint8Array(content.length + 1);
    inner.set(content);
    inner[content.length] = type;
    const hdr = header(23, inner.length + this.suite.tagLength);
    const nonce = nonceFor(this.iv, this.seq++);
    const body = aeadSeal(this.suite.aead, this.key, nonce, hdr, inner, this.suite.tagLength);
    wipe(inner);
    const out = new Uint8Array(5 + body.length);
    out.set(hdr);
    out.set(body, 5);
    return out;
  }

  /**
   * Opens one record (whole, header included). Returns undefined when authentication fails (the caller
   * decides between bad_record_mac and skipping rejected 0-RTT data); the sequence number then stays.
   * `maxInnerPlaintext` is the record_size_limit we announced (RFC 8449; default 2^14 + 1): a longer
   * TLSInnerPlaintext (content + type + padding) is record_overflow.
   */
  open(record: Uint8Array, maxInnerPlaintext = MAX_INNER_PLAINTEXT): { type: number; content: Uint8Array } | undefined {
    const hdr = record.subarray(0, 5);
    const body = record.subarray(5);
    if (body.length > MAX_INNER_PLAINTEXT + 255) throw tlsError('ERR_TLS_RECORD_OVERFLOW', 'ciphertext too long');
    if (this.seq >= Number.MAX_SAFE_INTEGER) throw tlsError('ERR_TLS_SEQUENCE_EXHAUSTED', 'read sequence exhausted');
    const inner = aeadOpen(this.suite.aead, this.key, nonceFor(this.iv, this.seq), hdr, body, this.suite.tagLength);
    if (!inner) return undefined;
    this.seq++;
    if (inner.length > Math.min(maxInnerPlaintext, MAX_INNER_PLAINTEXT)) {
      throw tlsError('ERR_TLS_RECORD_OVERFLOW', 'TLSInnerPlaintext too long');
    }
    // Strip zero padding; the last non-zero byte is the content type.
    let i = inner.length - 1;
    while (i >= 0 && inner[i] === 0) i--;
    if (i < 0) throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'TLSInnerPlaintext without content type');
    return { type: inner[i]!, content: inner.subarray(0, i) };
  }

  wipe(): void {
    wipe(this.key, this.iv);
  }
}

/** A plaintext record (before keys are installed). */
export function plaintextRecord(type: number, content: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + content.length);
  out.set(header(type, content.length));
  out.set(content, 5);
  return out;
}
