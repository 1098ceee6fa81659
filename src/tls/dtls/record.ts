/**
 * DTLS 1.2 AEAD record protection (RFC 6347 §4.1.2.1) and the anti-replay window (§4.1.2.6).
 *
 *   additional_data = epoch(2) ‖ seq(6) ‖ type(1) ‖ version(2 = FE FD) ‖ length(2)
 *   AES-GCM (RFC 5288) / AES-CCM(_8) (RFC 6655, RFC 7251): nonce = salt[4] ‖ nonce_explicit[8], and
 *     nonce_explicit = epoch ‖ seq48 (RFC 6655 §3 / RFC 7251 §2: the 64-bit DTLS sequence number);
 *   ChaCha20-Poly1305 (RFC 7905 §2): nonce = IV[12] xor (epoch ‖ seq48), no explicit part.
 *
 * The read side never moves its replay window before the AEAD check passed (a forged record cannot
 * poison the window), and reports a failure as `undefined` so the caller drops the record silently.
 * SECRETS: key and IV; wipe() zeroes them.
 * imports bytes/ and tls/ siblings only.
 */
import { wipe } from '../../bytes/index.js';
import { MAX_PLAINTEXT } from '../constants.js';
import { aeadOpen, aeadSeal } from '../crypto.js';
import { tlsError } from '../errors.js';
import { DTLS12_VERSION, DTLS_RECORD_HEADER_LENGTH, epochSeq, writeDtlsRecordHeader, type DtlsRecord } from '../record/dtls-framing.js';
import { aeadNonce12 } from '../record/protection12.js';
import type { AeadSuite12 } from '../record/aead-suites12.js';

/** Highest sequence number a 48-bit field holds. */
export const MAX_DTLS_SEQ = 2 ** 48 - 1;

function aad(epoch: number, seq: number, type: number, version: number, length: number): Uint8Array {
  const a = new Uint8Array(13);
  a.set(epochSeq(epoch, seq));
  a[8] = type;
  a[9] = version >>> 8;
  a[10] = version & 0xff;
  a[11] = length >>> 8;
  a[12] = length & 0xff;
  return a;
}

/**
 * Sliding anti-replay window of 64 records (RFC 6347 §4.1.2.6, RFC 4303 §3.4.3). `check` is pure;
 * `accept` moves the window and must only follow a successful AEAD check.
 */
export class ReplayWindow {
  private top = -1;
  private bits = 0n; // bit i set: record (top - i) seen
  static readonly SIZE = 64;

  check(seq: number): boolean {
    if (seq > this.top) return true;
    const d = this.top - seq;
    if (d >= ReplayWindow.SIZE) return false;
    return ((this.bits >> BigInt(d)) & 1n) === 0n;
  }

  accept(seq: number): void {
    if (seq > this.top) {
      const shift = seq - this.top;
      this.bits = shift >= ReplayWindow.SIZE ? 1n : ((this.bits << BigInt(shift)) | 1n) & 0xffffffffffffffffn;
      this.top = seq;
    } else {
      this.bits |= 1n << BigInt(this.top - seq);
    }
  }

  /** Highest sequence number accepted (-1 before any). */
  get highest(): number {
    return this.top;
  }
}

/** One direction's DTLS 1.2 AEAD state for one epoch. */
export class DtlsRecordKey {
  private seq: number;
  readonly window = new ReplayWindow();

  constructor(
    private readonly suite: AeadSuite12,
    private readonly key: Uint8Array,
    private readonly iv: Uint8Array,
    readonly epoch: number,
    initialSequence = 0,
  ) {
    this.seq = initialSequence;
  }

  /** Next write sequence number. */
  get sequence(): number {
    return this.seq;
  }

  /** Copies of key and IV (session export only). SECRET. */
  exportKeys(): { key: Uint8Array<ArrayBuffer>; iv: Uint8Array<ArrayBuffer> } {
    return { key: new Uint8Array(this.key), iv: new Uint8Array(this.iv) };
  }

  private nonce(es: Uint8Array): Uint8Array {
    return aeadNonce12(this.suite, this.iv, es);
  }

  /** Protects one record with the next sequence number: the whole DTLS record. */
  seal(type: number, content: Uint8Array): Uint8Array {
    if (content.length > MAX_PLAINTEXT) throw tlsError('ERR_TLS_INTERNAL', 'record content too large');
    if (this.seq >= Math.min(this.suite.maxRecordsPerKey, MAX_DTLS_SEQ)) throw tlsError('ERR_TLS_SEQUENCE_EXHAUSTED', 'write key exhausted');
    const seq = this.seq++;
    const es = epochSeq(this.epoch, seq);
    const body = aeadSeal(this.suite.aead, this.key, this.nonce(es), aad(this.epoch, seq, type, DTLS12_VERSION, content.length), content, this.suite.tagLength);
    const e = this.suite.explicitNonceLength;
    const length = e + body.length;
    const out = new Uint8Array(DTLS_RECORD_HEADER_LENGTH + length);
    writeDtlsRecordHeader(out, 0, type, DTLS12_VERSION, this.epoch, seq, length);
    if (e) out.set(es, DTLS_RECORD_HEADER_LENGTH);
    out.set(body, DTLS_RECORD_HEADER_LENGTH + e);
    return out;
  }

  /**
   * Opens one record of this epoch. undefined = replayed, too short, too long or not authentic: the
   * caller drops it silently. The replay window moves only after the tag verified.
   */
  open(r: DtlsRecord, maxPlaintext = MAX_PLAINTEXT): Uint8Array | undefined {
    if (r.epoch !== this.epoch || !this.window.check(r.seq)) return undefined;
    const e = this.suite.explicitNonceLength;
    if (r.fragment.length < e + this.suite.tagLength) return undefined;
    if (r.fragment.length - e - this.suite.tagLength > Math.min(maxPlaintext, MAX_PLAINTEXT)) return undefined;
    const es = epochSeq(r.epoch, r.seq);
    // The explicit nonce is whatever the peer sent (RFC 5288 §3); the AAD uses the header's epoch ‖ seq.
    const nonce = e ? this.nonce(r.fragment.subarray(0, e)) : this.nonce(es);
    const sealed = r.fragment.subarray(e);
    const plainLength = sealed.length - this.suite.tagLength;
    const content = aeadOpen(this.suite.aead, this.key, nonce, aad(r.epoch, r.seq, r.type, r.version, plainLength), sealed, this.suite.tagLength);
    if (!content) return undefined;
    this.window.accept(r.seq);
    return content;
  }

  wipe(): void {
    wipe(this.key, this.iv);
  }
}
