/**
 * AEAD record protection for TLS 1.2 (RFC 5246 §6.2.3.3).
 *
 *   struct {
 *       opaque nonce_explicit[SecurityParameters.record_iv_length];
 *       aead-ciphered struct { opaque content[TLSCompressed.length]; };
 *   } GenericAEADCipher;
 *
 *   additional_data = seq_num + TLSCompressed.type + TLSCompressed.version + TLSCompressed.length
 *
 * AES-GCM (RFC 5288 §3) / AES-CCM(_8) (RFC 6655 §3): nonce = salt[4] (key block) ‖ nonce_explicit[8];
 * we send the sequence number as nonce_explicit (never repeats under one key). ChaCha20-Poly1305
 * (RFC 7905 §2): no explicit nonce; nonce = IV[12] xor the left-padded 64-bit sequence number.
 * No inner content type, no padding (unlike TLS 1.3).
 * SECRETS: RecordKey12.key and .iv; wipe() zeroes them.
 * imports bytes/ and tls/ siblings only.
 */
import { ByteWriter, concat, wipe } from '../../bytes/index.js';
import { ContentType } from '../api.js';
import { MAX_PLAINTEXT } from '../constants.js';
import { aeadOpen, aeadSeal, aeadSealPieces } from '../crypto.js';
import { tlsError } from '../errors.js';
import type { AeadSuite12 } from './aead-suites12.js';
import { NativeSealer, sealRecordIntoSlab, type SealSlab } from './native-seal.js';

/** TLS 1.2 has no inner content type: sealPieces() ends the plaintext with nothing. */
const NO_INNER_TYPE = new Uint8Array(0);

function seq64(seq: number): Uint8Array {
  const b = new Uint8Array(8);
  const hi = Math.floor(seq / 0x100000000);
  const lo = seq >>> 0;
  b[0] = hi >>> 24;
  b[1] = hi >>> 16;
  b[2] = hi >>> 8;
  b[3] = hi;
  b[4] = lo >>> 24;
  b[5] = lo >>> 16;
  b[6] = lo >>> 8;
  b[7] = lo;
  return b;
}

function aad(seq: number, type: number, length: number): Uint8Array {
  return new ByteWriter(13).bytes(seq64(seq)).u8(type).u16(0x0303).u16(length).finish();
}

/**
 * The 12-byte AEAD nonce of a TLS 1.2 / DTLS 1.2 record from the 8-byte explicit part (the sequence
 * number, or DTLS epoch ‖ sequence): GCM/CCM (RFC 5288, RFC 6655) salt(4) ‖ explicit(8); ChaCha20
 * (RFC 7905, no explicit nonce) iv(12) XOR (0000 ‖ explicit).
 */
export function aeadNonce12(suite: AeadSuite12, iv: Uint8Array, explicit: Uint8Array): Uint8Array {
  if (suite.explicitNonceLength === 0) {
    const n = iv.slice();
    for (let i = 0; i < 8; i++) n[4 + i]! ^= explicit[i]!;
    return n;
  }
  const n = new Uint8Array(12);
  n.set(iv);
  n.set(explicit, 4);
  return n;
}

/** One direction's TLS 1.2 AEAD state: key, implicit IV and sequence number. */
export class RecordKey12 {
  private seq: number;
  /** The key's native sealing context, made at the first record sealed into a slab (native-seal.ts). */
  private sealer: NativeSealer | undefined | null = null;

  constructor(
    private readonly suite: AeadSuite12,
    private readonly key: Uint8Array,
    private readonly iv: Uint8Array,
    initialSequence = 0,
  ) {
    this.seq = initialSequence;
  }

  get sequence(): number {
    return this.seq;
  }

  /** Copies of key and IV (session export only). SECRET. */
  exportKeys(): { key: Uint8Array<ArrayBuffer>; iv: Uint8Array<ArrayBuffer> } {
    return { key: new Uint8Array(this.key), iv: new Uint8Array(this.iv) };
  }

  private nonce(explicit: Uint8Array): Uint8Array {
    return aeadNonce12(this.suite, this.iv, explicit);
  }

  /** Protects one record: returns header ‖ [nonce_explicit] ‖ ciphertext ‖ tag. */
  seal(type: number, content: Uint8Array): Uint8Array {
    if (content.length > MAX_PLAINTEXT) throw tlsError('ERR_TLS_INTERNAL', 'record content too large');
    if (this.seq >= this.suite.maxRecordsPerKey) throw tlsError('ERR_TLS_SEQUENCE_EXHAUSTED', 'write key exhausted');
    const explicit = seq64(this.seq);
    const body = aeadSeal(this.suite.aead, this.key, this.nonce(explicit), aad(this.seq, type, content.length), content, this.suite.tagLength);
    this.seq++;
    const e = this.suite.explicitNonceLength;
    const length = e + body.length;
    const out = new Uint8Array(5 + length);
    out.set([type, 3, 3, length >>> 8, length & 0xff]);
    if (e) out.set(explicit, 5);
    out.set(body, 5 + e);
    return out;
  }

  /**
   * seal() of `pieces` concatenated (`bytes` in all, ≤ 2^14) without copying them together: appends
   * the record to `out` as chunks to write in order — header ‖ nonce_explicit, one ciphertext chunk
   * per non-empty piece, the tag — the same bytes as seal(). The pieces are read, not kept. AES-GCM
   * and ChaCha20-Poly1305 stream through one AEAD context; AES-CCM (one update() only) goes
   * through seal(). On an error nothing is appended and the sequence number has not moved.
   * With a `slab` and the native sealer, the record is written into the slab and `out` gets a view
   * of it (native-seal.ts pushSlabView): no buffer allocated per record.
   */
  sealPieces(type: number, pieces: readonly Uint8Array[], bytes: number, out: Uint8Array[], slab?: SealSlab): void {
    if (this.suite.aead === 'aes-128-ccm') {
      out.push(this.seal(type, pieces.length === 1 ? pieces[0]! : concat(...pieces)));
      return;
    }
    let total = 0;
    for (const p of pieces) total += p.length;
    if (total !== bytes || bytes > MAX_PLAINTEXT) throw tlsError('ERR_TLS_INTERNAL', `record content of ${bytes} bytes (pieces hold ${total})`);
    if (this.seq >= this.suite.maxRecordsPerKey) throw tlsError('ERR_TLS_SEQUENCE_EXHAUSTED', 'write key exhausted');
    const e = this.suite.explicitNonceLength;
    const explicit = seq64(this.seq);
    const length = e + bytes + this.suite.tagLength;
    const head = new Uint8Array(5 + e);
    head.set([type, 3, 3, length >>> 8, length & 0xff]);
    if (e) head.set(explicit, 5);
    const nonce = this.nonce(explicit);
    if (slab && NativeSealer.fits(pieces, length, 5, slab)) {
      if (this.sealer === null) this.sealer = NativeSealer.create(this.suite.aead, this.key, this.suite.tagLength);
      if (this.sealer) {
        try {
          sealRecordIntoSlab(this.sealer, slab, out, head, aad(this.seq, type, bytes), nonce, pieces, bytes, NO_INNER_TYPE);
        } finally {
          wipe(nonce);
        }
        this.seq++;
        return;
      }
    }
    const first = out.length;
    out.push(head);
    try {
      aeadSealPieces(this.suite.aead, this.key, nonce, aad(this.seq, type, bytes), pieces, NO_INNER_TYPE, this.suite.tagLength, out);
    } catch (err) {
      out.length = first;
      throw err;
    } finally {
      wipe(nonce);
    }
    this.seq++;
  }

  /**
   * Opens one record (header included). undefined = authentication failed (→ bad_record_mac).
   * `maxPlaintext` is the limit we announced (record_size_limit − 1 or 2^14): longer is record_overflow.
   */
  open(record: Uint8Array, maxPlaintext = MAX_PLAINTEXT): { type: number; content: Uint8Array } | undefined {
    const type = record[0]!;
    const e = this.suite.explicitNonceLength;
    const body = record.subarray(5);
    if (body.length > MAX_PLAINTEXT + 2048) throw tlsError('ERR_TLS_RECORD_OVERFLOW', 'ciphertext too long');
    if (body.length < e + this.suite.tagLength) return undefined;
    if (this.seq >= Number.MAX_SAFE_INTEGER) throw tlsError('ERR_TLS_SEQUENCE_EXHAUSTED', 'read sequence exhausted');
    const explicit = e ? body.subarray(0, e) : seq64(this.seq);
    const sealed = body.subarray(e);
    const plainLength = sealed.length - this.suite.tagLength;
    const content = aeadOpen(this.suite.aead, this.key, this.nonce(explicit), aad(this.seq, type, plainLength), sealed, this.suite.tagLength);
    if (!content) return undefined;
    this.seq++;
    if (content.length > Math.min(maxPlaintext, MAX_PLAINTEXT)) throw tlsError('ERR_TLS_RECORD_OVERFLOW', 'plaintext too long');
    return { type, content };
  }

  wipe(): void {
    this.sealer?.free();
    this.sealer = undefined;
    wipe(this.key, this.iv);
  }
}

/**
 * Application data as records of at most `maxSend` plaintext bytes (at least one record, even for
 * empty data), sealed in order by `key` (TLS 1.2 or DTLS 1.2), concatenated.
 */
export function sealApplicationData(key: { seal(type: number, content: Uint8Array): Uint8Array }, plaintext: Uint8Array, maxSend: number): Uint8Array {
  const records: Uint8Array[] = [];
  let o = 0;
  do {
    const n = Math.min(maxSend, plaintext.length - o);
    records.push(key.seal(ContentType.applicationData, plaintext.subarray(o, o + n)));
    o += n;
  } while (o < plaintext.length);
  return concat(...records);
}
