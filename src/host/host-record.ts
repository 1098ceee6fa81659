/**
 * TLS-Tandem host record layer: after EXPORT-SESSION (docs/apdu-protocol.md §2.3) the host protects
 * and opens the records of one session itself, with the traffic keys the card handed over, so the
 * card is free for the next client. `HostSession` implements the same `SeSession` interface as the
 * card's EAP shuttle, so `RecordLayer` / `SeTlsSocket` work unchanged in both modes.
 *
 * - TLS 1.3 (RFC 8446 §5.2–5.3): nonce = IV xor seq; inner content type; KeyUpdate (§4.6.3): a
 *   client KeyUpdate moves the read key to the next generation (`"traffic upd"`); update_requested
 *   makes the host put its own KeyUpdate (update_not_requested) in front of its next record and
 *   move its write key. The host also rotates its write key after `keyUpdateAfterRecords` records.
 * - TLS 1.2 (RFC 5246 §6.2.3.3): RecordKey12 from tls/record (explicit nonce = sequence number for
 *   GCM/CCM, IV xor seq for ChaCha20), starting at the exported sequence numbers; the suite's key,
 *   IV and tag lengths come from the engine's own table (tls/record/aead-suites12.ts). Renegotiation is
 *   refused with a no_renegotiation warning (RFC 5746).
 *
 * The host never holds the private key, the master secret or handshake secrets: only this session's
 * traffic keys (and, for TLS 1.3, the application traffic secrets, for KeyUpdate). `dispose()` wipes
 * them; it runs when the session ends.
 * imports bytes/, tls/record and tls/crypto.ts (primitives) and host/.
 */
import { SetlsError, concat, wipe } from '../bytes/index.js';
import { AEAD_SUITES12 } from '../tls/record/aead-suites12.js';
import { MAX_CIPHERTEXT_FRAGMENT, MAX_CIPHERTEXT_FRAGMENT_12 } from '../tls/record/framing.js';
import { RecordKey12 } from '../tls/record/protection12.js';
import { nonceFor, nonceInto } from '../tls/record/protection.js';
import { NativeSealer, sealRecordIntoSlab, type SealSlab } from '../tls/record/native-seal.js';
import { aeadOpen, aeadSeal, aeadSealPieces, hkdfExpandLabel, SUITES, type AeadName, type HashName } from '../tls/crypto.js';
import { wipeExportedSession, type ExportedSessionBlob } from './card-codec.js';
import { CONTENT_TYPE_ALERT, CONTENT_TYPE_APPLICATION_DATA, MAX_PLAINTEXT, type DecryptResult, type HandshakeStep } from './eap-session.js';
import type { SeSession, SeSessionPhase } from './session-driver.js';

const CONTENT_TYPE_HANDSHAKE = 22;
const HS_KEY_UPDATE = 24;
const HS_CLIENT_HELLO = 1;
const ALERT = {
  closeNotify: 0,
  unexpectedMessage: 10,
  badRecordMac: 20,
  recordOverflow: 22,
  decodeError: 50,
  internalError: 80,
  noRenegotiation: 100,
} as const;

function hostErr(code: string, message: string): SetlsError {
  return new SetlsError(code, message);
}

/** The TLSInnerPlaintext content-type byte sealv() appends, by type (read only: never handed out). */
const INNER_TYPE: Readonly<Record<number, Uint8Array>> = { 21: Uint8Array.of(21), 22: Uint8Array.of(22), 23: Uint8Array.of(23) };

function seqNumber(b: bigint, what: string): number {
  if (b < 0n || b > BigInt(Number.MAX_SAFE_INTEGER)) throw hostErr('ERR_HOST_EXPORT_BLOB', `${what} sequence number out of range`);
  return Number(b);
}


/** One direction of a TLS 1.3 session on the host: traffic secret, key, IV, sequence number. */
class Direction13 {
  private key: Uint8Array;
  private iv: Uint8Array;
  constructor(
    private readonly hash: HashName,
    private readonly aead: AeadName,
    private readonly keyLength: number,
    private readonly tagLength: number,
    private secret: Uint8Array,
    key: Uint8Array,
    iv: Uint8Array,
    public seq: number,
  ) {
    this.key = key;
    this.iv = iv;
  }

  /** sealv()'s per-record nonce, computed in place (wiped after each record). */
  private readonly nonce = new Uint8Array(12);
  /** The write key's native sealing context, made at the first record sealed into a slab (tls/record/native-seal.ts). */
  private sealer: NativeSealer | undefined | null = null;

  /** RFC 8446 §7.2: application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length). */
  update(): void {
    const hashLen = this.hash === 'sha256' ? 32 : 48;
    const next = hkdfExpandLabel(this.hash, this.secret, 'traffic upd', new Uint8Array(0), hashLen);
    wipe(this.secret, this.key, this.iv);
    this.sealer?.free();
    this.sealer = null;
    this.secret = next;
    this.key = hkdfExpandLabel(this.hash, next, 'key', new Uint8Array(0), this.keyLength);
    this.iv = hkdfExpandLabel(this.hash, next, 'iv', new Uint8Array(0), 12);
    this.seq = 0;
  }

  /**
   * The record of `pieces` (concatenated, ≤ 2^14 bytes) as chunks to write in order: header,
   * ciphertext (one chunk per piece), then the encrypted content type with the tag. Streams the
   * pieces through one AEAD context (AES-GCM and ChaCha20-Poly1305 take several update() calls), so
   * the plaintext is never copied into a TLSInnerPlaintext buffer and the record never concatenated;
   * AES-CCM (one update() only) goes through seal().
   *
   * With a `slab` and the native sealer (tls/record/native-seal.ts), the whole record (header,
   * ciphertext, tag) is written into the slab instead, and `out` gets a view of it (the previous
   * chunk is extended when it ends where this record starts): no buffer is allocated per record.
   */
  sealv(type: number, pieces: readonly Uint8Array[], bytes: number, out: Uint8Array[], slab?: SealSlab): void {
    if (this.aead === 'aes-128-ccm') {
      out.push(this.seal(type, pieces.length === 1 ? pieces[0]! : concat(...pieces)));
      return;
    }
    let total = 0;
    for (const p of pieces) total += p.length;
    if (total !== bytes) throw hostErr('ERR_HOST_INTERNAL', `pieces hold ${total} bytes, not the ${bytes} announced`);
    const len = bytes + 1 + this.tagLength;
    if (slab && NativeSealer.fits(pieces, len, 5, slab)) {
      if (this.sealer === null) this.sealer = NativeSealer.create(this.aead, this.key, this.tagLength);
      if (this.sealer) {
        this.sealIntoSlab(type, pieces, bytes, len, out, slab, this.sealer);
        return;
      }
    }
    // a small pooled Buffer: the socket takes it as is (no Uint8Array → Buffer view per chunk)
    const hdr = Buffer.allocUnsafe(5);
    hdr[0] = 23;
    hdr[1] = 3;
    hdr[2] = 3;
    hdr[3] = len >> 8;
    hdr[4] = len & 0xff;
    const nonce = nonceInto(this.iv, this.seq++, this.nonce);
    const first = out.length;
    out.push(hdr);
    try {
      aeadSealPieces(this.aead, this.key, nonce, hdr, pieces, INNER_TYPE[type] ?? Uint8Array.of(type), this.tagLength, out);
    } catch (e) {
      out.length = first;
      throw e;
    } finally {
      wipe(nonce);
    }
  }

  private sealIntoSlab(type: number, pieces: readonly Uint8Array[], bytes: number, len: number, out: Uint8Array[], slab: SealSlab, sealer: NativeSealer): void {
    const nonce = nonceInto(this.iv, this.seq, this.nonce);
    try {
      sealRecordIntoSlab(sealer, slab, out, Uint8Array.of(23, 3, 3, len >> 8, len & 0xff), null, nonce, pieces, bytes, INNER_TYPE[type] ?? Uint8Array.of(type));
    } finally {
      wipe(nonce);
    }
    this.seq++;
  }

  seal(type: number, content: Uint8Array): Uint8Array {
    const inner = new Uint8Array(content.length + 1);
    inner.set(content);
    inner[content.length] = type;
    const len = inner.length + this.tagLength;
    const hdr = Uint8Array.of(23, 3, 3, len >> 8, len & 0xff);
    const body = aeadSeal(this.aead, this.key, nonceFor(this.iv, this.seq++), hdr, inner, this.tagLength);
    wipe(inner);
    return concat(hdr, body);
  }

  /** undefined = authentication failed. */
  open(record: Uint8Array): { type: number; content: Uint8Array } | undefined {
    const body = record.subarray(5);
    if (body.length > MAX_PLAINTEXT + 256) throw hostErr('ERR_TLS_RECORD_OVERFLOW', 'ciphertext too long');
    const inner = aeadOpen(this.aead, this.key, nonceFor(this.iv, this.seq), record.subarray(0, 5), body, this.tagLength);
    if (!inner) return undefined;
    this.seq++;
    if (inner.length > MAX_PLAINTEXT + 1) throw hostErr('ERR_TLS_RECORD_OVERFLOW', 'TLSInnerPlaintext too long');
    let i = inner.length - 1;
    while (i >= 0 && inner[i] === 0) i--;
    if (i < 0) throw hostErr('ERR_TLS_UNEXPECTED_MESSAGE', 'TLSInnerPlaintext without content type');
    return { type: inner[i]!, content: inner.subarray(0, i) };
  }

  wipe(): void {
    this.sealer?.free();
    this.sealer = undefined;
    wipe(this.secret, this.key, this.iv);
  }
}

/** One direction of a TLS 1.2 session: the engine's RecordKey12. */
class Direction12 {
  constructor(private readonly k: RecordKey12) {}
  seal(type: number, content: Uint8Array): Uint8Array {
    return this.k.seal(type, content);
  }
  sealv(type: number, pieces: readonly Uint8Array[], bytes: number, out: Uint8Array[], slab?: SealSlab): void {
    this.k.sealPieces(type, pieces, bytes, out, slab);
  }
  open(record: Uint8Array): { type: number; content: Uint8Array } | undefined {
    return this.k.open(record);
  }
  get seq(): number {
    return this.k.sequence;
  }
  wipe(): void {
    this.k.wipe();
  }
}

export interface HostSessionOptions {
  /** TLS 1.3: the host sends its own KeyUpdate once its write key has protected this many records. Default 2^23. */
  readonly keyUpdateAfterRecords?: number;
}

/** A TLS session whose record layer runs on the host with exported keys (TLS-Tandem). */
export class HostSession implements SeSession {
  readonly version: number;
  readonly cipherSuite: number;
  private phaseValue: SeSessionPhase = 'connected';
  private readonly read: Direction13 | Direction12;
  private readonly write: Direction13 | Direction12;
  private readonly keyUpdateAfter: number;
  private readonly maxWriteRecords: number;
  /** TLS 1.3: the client asked for a KeyUpdate; ours goes in front of the next record we send. */
  private keyUpdatePending = false;
  private handshakeBuf: Uint8Array = new Uint8Array(0);

  /** Takes ownership of `blob` (its arrays are wiped by dispose()). */
  constructor(blob: ExportedSessionBlob, opts: HostSessionOptions = {}) {
    this.version = blob.version;
    this.cipherSuite = blob.cipherSuite;
    this.keyUpdateAfter = opts.keyUpdateAfterRecords ?? 2 ** 23;
    try {
      const readSeq = seqNumber(blob.readSequence, 'read');
      const writeSeq = seqNumber(blob.writeSequence, 'write');
      if (blob.version === 0x0304) {
        const s = SUITES.get(blob.cipherSuite);
        if (!s) throw hostErr('ERR_HOST_EXPORT_BLOB', `unknown TLS 1.3 suite 0x${blob.cipherSuite.toString(16)}`);
        const check = (k: Uint8Array, iv: Uint8Array, sec: Uint8Array, who: string): void => {
          if (k.length !== s.keyLength || iv.length !== 12 || sec.length !== s.hashLength) throw hostErr('ERR_HOST_EXPORT_BLOB', `bad ${who} key/IV/secret lengths for the suite`);
        };
        check(blob.clientKey, blob.clientIv, blob.clientTrafficSecret, 'client');
        check(blob.serverKey, blob.serverIv, blob.serverTrafficSecret, 'server');
        this.read = new Direction13(s.hash, s.aead, s.keyLength, s.tagLength, blob.clientTrafficSecret, blob.clientKey, blob.clientIv, readSeq);
        this.write = new Direction13(s.hash, s.aead, s.keyLength, s.tagLength, blob.serverTrafficSecret, blob.serverKey, blob.serverIv, writeSeq);
        this.maxWriteRecords = s.maxRecordsPerKey;
      } else if (blob.version === 0x0303) {
        const s = AEAD_SUITES12.get(blob.cipherSuite);
        if (!s) throw hostErr('ERR_HOST_EXPORT_BLOB', `unknown TLS 1.2 suite 0x${blob.cipherSuite.toString(16)}`);
        const check = (k: Uint8Array, iv: Uint8Array, who: string): void => {
          if (k.length !== s.keyLength || iv.length !== s.fixedIvLength) throw hostErr('ERR_HOST_EXPORT_BLOB', `bad ${who} key/IV lengths for the suite`);
        };
        check(blob.clientKey, blob.clientIv, 'client');
        check(blob.serverKey, blob.serverIv, 'server');
        this.read = new Direction12(new RecordKey12(s, blob.clientKey, blob.clientIv, readSeq));
        this.write = new Direction12(new RecordKey12(s, blob.serverKey, blob.serverIv, writeSeq));
        this.maxWriteRecords = s.maxRecordsPerKey;
      } else {
        throw hostErr('ERR_HOST_EXPORT_BLOB', `unsupported exported version 0x${blob.version.toString(16)}`);
      }
    } catch (e) {
      wipeExportedSession(blob);
      throw e;
    }
  }

  get phase(): SeSessionPhase {
    return this.phaseValue;
  }

  /** Next sequence numbers (tests, diagnostics). */
  get sequences(): { read: number; write: number } {
    return { read: this.read.seq, write: this.write.seq };
  }

  handshake(): Promise<HandshakeStep> {
    return Promise.reject(hostErr('ERR_HOST_STATE', 'an exported session has no handshake'));
  }

  acknowledgeFailure(): Promise<void> {
    return Promise.resolve();
  }

  /** Our KeyUpdate (TLS 1.3) when one is due; then the write key must still have room for a record. */
  private beforeSeal(parts: Uint8Array[]): void {
    if (this.write instanceof Direction13 && (this.keyUpdatePending || this.write.seq >= Math.min(this.keyUpdateAfter, this.maxWriteRecords - 1))) {
      parts.push(this.write.seal(CONTENT_TYPE_HANDSHAKE, Uint8Array.of(HS_KEY_UPDATE, 0, 0, 1, 0)));
      this.write.update();
      this.keyUpdatePending = false;
    }
    if (this.write.seq >= this.maxWriteRecords) throw hostErr('ERR_TLS_SEQUENCE_EXHAUSTED', 'write key exhausted');
  }

  /** Our KeyUpdate (TLS 1.3) when one is due, then the record. */
  private sealOut(type: number, content: Uint8Array): Uint8Array {
    const parts: Uint8Array[] = [];
    this.beforeSeal(parts);
    parts.push(this.write.seal(type, content));
    return parts.length === 1 ? parts[0]! : concat(...parts);
  }

  /**
   * Synchronous fast path of encrypt() for application data (SeTlsSocket's writes, through
   * RecordLayer.hostSession):
   * one record of `pieces` concatenated (`bytes` = their total, ≤ 16384), preceded by our KeyUpdate
   * when one is due, appended to `out` as chunks to write in order (header, ciphertext…, tag). The
   * pieces are read, not kept: the caller may reuse them once this returns. With a `slab`, records
   * are sealed into it where the native sealer serves the suite (`out` then holds views of the slab:
   * the caller must not reuse the slab before the socket has written them).
   */
  sealApplicationData(pieces: readonly Uint8Array[], bytes: number, out: Uint8Array[], slab?: SealSlab): void {
    if (bytes > MAX_PLAINTEXT) throw new RangeError(`plaintext must be at most ${MAX_PLAINTEXT} bytes`);
    if (this.phaseValue !== 'connected') throw hostErr('ERR_HOST_STATE', `encrypt() in phase ${this.phaseValue}`);
    this.beforeSeal(out);
    try {
      this.write.sealv(CONTENT_TYPE_APPLICATION_DATA, pieces, bytes, out, slab);
    } catch (e) {
      // The sequence number may have moved without a record going out: the session cannot go on.
      this.phaseValue = 'failed';
      this.dispose();
      throw e;
    }
  }

  encrypt(type: number, plaintext: Uint8Array): Promise<Uint8Array> {
    try {
      if (type !== CONTENT_TYPE_APPLICATION_DATA && type !== CONTENT_TYPE_ALERT) throw new RangeError('content type must be 23 or 21');
      if (!(plaintext instanceof Uint8Array) || plaintext.length > MAX_PLAINTEXT) throw new RangeError(`plaintext must be a Uint8Array of at most ${MAX_PLAINTEXT} bytes`);
      if (type === CONTENT_TYPE_ALERT && (plaintext.length !== 2 || plaintext[0] !== 1 || plaintext[1] !== 0)) {
        throw new RangeError('the only alert the host may encrypt is close_notify (01 00)');
      }
      if (this.phaseValue !== 'connected') throw hostErr('ERR_HOST_STATE', `encrypt() in phase ${this.phaseValue}`);
      const out = this.sealOut(type, plaintext);
      if (type === CONTENT_TYPE_ALERT) this.phaseValue = 'closed';
      return Promise.resolve(out);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Ends the session with a fatal alert we send (when keys are still usable). */
  private fail(alert: number, send = true): DecryptResult {
    let out: Uint8Array = new Uint8Array(0);
    if (send && this.phaseValue === 'connected') {
      try {
        out = this.write.seal(CONTENT_TYPE_ALERT, Uint8Array.of(2, alert));
      } catch {
        out = new Uint8Array(0);
      }
    }
    this.phaseValue = 'failed';
    this.dispose();
    return { plaintext: new Uint8Array(0), outRecords: out, peerClosed: false, failed: true, alert };
  }

  decrypt(record: Uint8Array): Promise<DecryptResult> {
    try {
      return Promise.resolve(this.decryptSync(record));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private decryptSync(record: Uint8Array): DecryptResult {
    if (!(record instanceof Uint8Array) || record.length < 5) throw new TypeError('decrypt() takes one whole TLS record');
    if (this.phaseValue === 'failed' || this.phaseValue === 'handshake' || this.phaseValue === 'failing') {
      throw hostErr('ERR_HOST_STATE', `decrypt() in phase ${this.phaseValue}`);
    }
    const outer = record[0]!;
    const tls13 = this.read instanceof Direction13;
    if (tls13 ? outer !== 23 : outer !== 23 && outer !== 21 && outer !== 22) return this.fail(ALERT.unexpectedMessage);
    // The framing hands on a header no record may have alone (tls/record/framing.ts): judge it by its
    // header, as the card's engine does — a version that is not 3.x, then a length beyond 2^14 + 256
    // (TLS 1.3, RFC 8446 §5.2) / 2^14 + 2048 (TLS 1.2, RFC 5246 §6.2.3) → record_overflow.
    const declared = (record[3]! << 8) | record[4]!;
    if (record[1] !== 3) return this.fail(ALERT.decodeError);
    if (declared > (tls13 ? MAX_CIPHERTEXT_FRAGMENT : MAX_CIPHERTEXT_FRAGMENT_12)) return this.fail(ALERT.recordOverflow);
    if (record.length !== 5 + declared) return this.fail(ALERT.decodeError);
    let opened: { type: number; content: Uint8Array } | undefined;
    try {
      opened = this.read.open(record);
    } catch (e) {
      return this.fail((e as SetlsError).code === 'ERR_TLS_RECORD_OVERFLOW' ? ALERT.recordOverflow : ALERT.decodeError);
    }
    if (!opened) return this.fail(ALERT.badRecordMac);
    const { type, content } = opened;
    if (type === CONTENT_TYPE_APPLICATION_DATA) {
      if (this.handshakeBuf.length) return this.fail(ALERT.unexpectedMessage);
      return { plaintext: content.slice(), outRecords: new Uint8Array(0), peerClosed: false, failed: false, alert: 0 };
    }
    if (type === CONTENT_TYPE_ALERT) {
      // RFC 8446 §5.4 / RFC 5246 §6.2.1: a zero-length Alert is unexpected_message; other lengths ≠ 2 decode_error.
      if (content.length === 0) return this.fail(ALERT.unexpectedMessage);
      if (content.length !== 2) return this.fail(ALERT.decodeError);
      const [level, desc] = [content[0]!, content[1]!];
      if (desc === ALERT.closeNotify) {
        let out: Uint8Array = new Uint8Array(0);
        if (this.phaseValue === 'connected') out = this.sealOut(CONTENT_TYPE_ALERT, Uint8Array.of(1, 0));
        this.phaseValue = 'closed';
        return { plaintext: new Uint8Array(0), outRecords: out, peerClosed: true, failed: false, alert: 0 };
      }
      if (level === 1 && !tls13) return { plaintext: new Uint8Array(0), outRecords: new Uint8Array(0), peerClosed: false, failed: false, alert: 0 };
      // A fatal alert from the client (TLS 1.3: every alert but close_notify / user_canceled is fatal).
      if (tls13 && desc === 90) return { plaintext: new Uint8Array(0), outRecords: new Uint8Array(0), peerClosed: false, failed: false, alert: 0 };
      this.phaseValue = 'failed';
      this.dispose();
      return { plaintext: new Uint8Array(0), outRecords: new Uint8Array(0), peerClosed: false, failed: true, alert: desc };
    }
    if (type === CONTENT_TYPE_HANDSHAKE) return this.handshakeMessages(content, tls13);
    return this.fail(ALERT.unexpectedMessage);
  }

  /** Post-handshake handshake messages: TLS 1.3 KeyUpdate; TLS 1.2 ClientHello (renegotiation, refused). */
  private handshakeMessages(content: Uint8Array, tls13: boolean): DecryptResult {
    let buf = this.handshakeBuf.length ? concat(this.handshakeBuf, content) : content.slice();
    let o = 0;
    let out: Uint8Array = new Uint8Array(0);
    while (buf.length - o >= 4) {
      const t = buf[o]!;
      const n = (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!;
      if (n > 1 << 16) return this.fail(ALERT.decodeError);
      if (buf.length - o - 4 < n) break;
      const body = buf.subarray(o + 4, o + 4 + n);
      o += 4 + n;
      if (tls13 && t === HS_KEY_UPDATE) {
        if (n !== 1 || body[0]! > 1) return this.fail(ALERT.decodeError);
        // RFC 8446 §5.1: a KeyUpdate must end its record (the key changes after it).
        if (o !== buf.length) return this.fail(ALERT.unexpectedMessage);
        if (this.read instanceof Direction13) this.read.update();
        if (body[0] === 1) this.keyUpdatePending = true;
      } else if (!tls13 && t === HS_CLIENT_HELLO) {
        // RFC 5746: renegotiation refused with a warning.
        out = concat(out, this.write.seal(CONTENT_TYPE_ALERT, Uint8Array.of(1, ALERT.noRenegotiation)));
      } else {
        return this.fail(ALERT.unexpectedMessage);
      }
    }
    buf = buf.slice(o);
    this.handshakeBuf = buf;
    return { plaintext: new Uint8Array(0), outRecords: out, peerClosed: false, failed: false, alert: 0 };
  }

  /** Wipes the traffic keys (and TLS 1.3 secrets). Idempotent. */
  dispose(): void {
    this.read.wipe();
    this.write.wipe();
    wipe(this.handshakeBuf);
    if (this.phaseValue === 'connected') this.phaseValue = 'closed';
  }
}
