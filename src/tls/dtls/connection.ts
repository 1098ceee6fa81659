/**
 * The DTLS 1.2 server (RFC 6347, RFC 7925 profile), sans I/O: TLS 1.2's handshake (tls12/handshake12.ts,
 * reused as is) and connection core (tls12/core12.ts: state, encrypt, exporter, alerts, handshake
 * actions, wiping — shared with TLS 1.2) with DTLS record and handshake framing, which is this file.
 *
 * Division of labour (draft-urien-uta-tls-dtls-security-module §5, §7; docs/apdu-protocol.md §8):
 * the host answers the first ClientHello with a stateless HelloVerifyRequest, reassembles fragments,
 * fragments our flights to the path MTU and retransmits them. This engine:
 *   - takes records carrying handshake messages (it reassembles fragments too, so it also works
 *     without a host; duplicates by message_seq are ignored), numbers its own messages from the
 *     ClientHello's message_seq (so after a HelloVerifyRequest, ServerHello has message_seq 1);
 *   - hashes the DTLS handshake headers (offset 0, fragment_length = length) into the transcript;
 *     the first ClientHello and the HelloVerifyRequest never reach it, so they are not hashed;
 *   - epoch 0 is plaintext; after the client's ChangeCipherSpec it reads epoch 1, after ours it writes
 *     epoch 1 starting at sequence 0;
 *   - AEAD per record/record.ts: nonce_explicit = epoch ‖ seq, the replay window (64) moves only after
 *     the tag verified; a record that fails (bad tag, replay, wrong epoch, garbage) is dropped silently
 *     (RFC 6347 §4.1.2.7) — never an alert;
 *   - a ChangeCipherSpec or epoch-1 records that arrive before the handshake messages they follow
 *     (reordering) wait, bounded, instead of failing the handshake.
 * Handshake errors (bad Finished, no common suite, …) still end in one fatal alert, as in TLS.
 *
 * SECRETS: read/write keys, the master secret (exporter), the handshake's secrets (Handshake12).
 * imports bytes/ and tls/ siblings only.
 */
import { concat } from '../../bytes/index.js';
import { ContentType, type TlsServerConfig, type TlsServerConnection } from '../api.js';
import { HandshakeType, MAX_PLAINTEXT, ProtocolVersion } from '../constants.js';
import { tlsError } from '../errors.js';
import {
  DTLS12_VERSION,
  DtlsHandshakeReassembler,
  encodeDtlsHandshake,
  encodeDtlsRecord,
  fragmentDtlsHandshake,
  parseDtlsHandshakeFragments,
  parseDtlsRecords,
  splitDtlsClientHello,
  type DtlsRecord,
} from '../record/dtls-framing.js';
import type { RecordKey12 } from '../record/protection12.js';
import { Connection12Core, type Output12 } from '../tls12/core12.js';
import { AlertLevel } from '../wire/alert.js';
import { parseClientHello, type ClientHello } from '../wire/clientHello.js';
import type { HandshakeMessage } from '../wire/handshake.js';
import { DtlsRecordKey } from './record.js';

/** DTLS-only options, on top of TlsServerConfig. */
export interface DtlsServerOptions {
  /**
   * Largest handshake fragment (header included) this engine puts in one record. Default 16384: the
   * host fragments to the path MTU; set it (e.g. 1200 − 25) when no host fragments.
   */
  readonly maxHandshakeFragment?: number;
  /** Largest application plaintext per record (a CoAP message must fit one record and one datagram). Default 16384. */
  readonly maxRecordPlaintext?: number;
}

/** Records of the next epoch kept while the ChangeCipherSpec is missing (reordering). */
const MAX_EARLY_RECORDS = 8;
/** The ClientHello may carry message_seq 0 (no HelloVerifyRequest) or a small number after HVRs. */
const MAX_FIRST_MESSAGE_SEQ = 4;

export class DtlsServerConnection extends Connection12Core<DtlsRecordKey> implements TlsServerConnection {
  private readonly reassembler = new DtlsHandshakeReassembler(0);
  private started = false;
  private writeMessageSeq = 0;
  private readEpoch = 0;
  private writeEpoch = 0;
  private epoch0WriteSeq = 0;
  private pendingCcs = false;
  private early: DtlsRecord[] = [];
  private readonly maxFragment: number;

  constructor(config: TlsServerConfig, opts: DtlsServerOptions = {}) {
    // DTLS 1.2 only: no TLS 1.3 downgrade sentinel in ServerHello.random.
    super({ ...config, versions: [ProtocolVersion.tls12] }, Math.max(1, Math.min(opts.maxRecordPlaintext ?? MAX_PLAINTEXT, MAX_PLAINTEXT)));
    this.maxFragment = Math.max(64, Math.min(opts.maxHandshakeFragment ?? 16384, 16384));
  }

  /** message_seq of the next handshake message the engine expects from the client. */
  get nextReceiveSeq(): number {
    return this.reassembler.next;
  }

  // ---------------------------------------------------------------- framing of our messages

  /** TLS 4-byte header → DTLS 12-byte header with our next message_seq; ServerHello gets version FE FD. */
  protected override frameMessage(m: Uint8Array): Uint8Array {
    const type = m[0]!;
    const body = m.slice(4);
    if (type === HandshakeType.serverHello) {
      body[0] = DTLS12_VERSION >>> 8;
      body[1] = DTLS12_VERSION & 0xff;
    }
    return encodeDtlsHandshake(type, this.writeMessageSeq++, body.length, 0, body);
  }

  // ---------------------------------------------------------------- records in

  /** One datagram (or any concatenation of whole DTLS records). */
  protected override feed(data: Uint8Array, out: Output12): void {
    for (const r of parseDtlsRecords(data)) {
      if (!this.live()) break;
      this.handleRecord(r, out);
    }
  }

  private handleRecord(r: DtlsRecord, out: Output12): void {
    if (r.epoch === this.readEpoch + 1 && this.readKey === undefined) {
      // the next epoch before its ChangeCipherSpec (reordered): keep a few
      if (this.early.length < MAX_EARLY_RECORDS) this.early.push({ ...r, fragment: r.fragment.slice(), raw: r.raw.slice() });
      return;
    }
    if (r.epoch !== this.readEpoch) return; // an old epoch (retransmissions) or garbage: dropped
    let content: Uint8Array;
    if (this.readKey) {
      if (r.version !== DTLS12_VERSION) return;
      const opened = this.readKey.open(r, this.maxReceive);
      if (!opened) return; // bad tag, replay, overflow: dropped silently
      content = opened;
    } else {
      if (r.type === ContentType.applicationData || r.fragment.length > MAX_PLAINTEXT) return;
      content = r.fragment;
    }
    switch (r.type) {
      case ContentType.handshake:
        this.onHandshakeRecord(content, out);
        return;
      case ContentType.changeCipherSpec:
        if (content.length !== 1 || content[0] !== 1) return;
        this.onChangeCipherSpec(out);
        return;
      case ContentType.alert:
        if (content.length !== 2) return;
        this.handleAlert(content, out);
        return;
      default:
        if (!this.hs.acceptsApplicationData || this.readEpoch === 0) return;
        out.plaintext.push(content.slice());
    }
  }

  private onHandshakeRecord(content: Uint8Array, out: Output12): void {
    const fragments = parseDtlsHandshakeFragments(content);
    if (!fragments) return; // malformed: dropped
    for (const f of fragments) {
      if (!this.started) {
        if (f.msgType !== HandshakeType.clientHello || f.messageSeq > MAX_FIRST_MESSAGE_SEQ) continue;
        if (this.reassembler.next !== f.messageSeq) this.reassembler.reset(f.messageSeq);
      }
      this.reassembler.push(f);
    }
    for (let m = this.reassembler.take(); m && this.live(); m = this.reassembler.take()) {
      const msg: HandshakeMessage = { type: m.msgType, body: m.body, raw: m.raw };
      if (!this.started) this.onClientHello(msg, m.messageSeq, out);
      else if (this.hs.phase === 'Traffic' && msg.type === HandshakeType.finished) continue; // a retransmitted Finished
      else this.apply(this.hs.onHandshake(msg), out);
      if (this.pendingCcs && this.hs.phase === 'ChangeCipherSpec') {
        this.pendingCcs = false;
        this.onChangeCipherSpec(out);
      }
    }
  }

  private onClientHello(msg: HandshakeMessage, messageSeq: number, out: Output12): void {
    const parts = splitDtlsClientHello(msg.body);
    if (!parts) throw tlsError('ERR_TLS_DECODE', 'DTLS ClientHello too short');
    // DTLS versions count down: FE FD (1.2) is "higher" than FE FF (1.0).
    if (parts.clientVersion > DTLS12_VERSION) throw tlsError('ERR_TLS_PROTOCOL_VERSION', `DTLS client_version 0x${parts.clientVersion.toString(16)}`);
    const tlsBody = concat(Uint8Array.of(0x03, 0x03), parts.random, Uint8Array.of(parts.sessionId.length), parts.sessionId, parts.rest);
    const ch: ClientHello = parseClientHello(tlsBody);
    this.started = true;
    this.writeMessageSeq = messageSeq; // RFC 6347 §4.2.2: ServerHello follows the HelloVerifyRequest's numbering
    this.apply(this.hs.start(msg, ch), out);
  }

  private onChangeCipherSpec(out: Output12): void {
    const phase = this.hs.phase;
    if (phase === 'ChangeCipherSpec') {
      const key = this.hs.onChangeCipherSpec();
      const k = key.exportKeys();
      key.wipe();
      this.readKey?.wipe();
      this.readKey = new DtlsRecordKey(this.suite!, k.key, k.iv, this.readEpoch + 1);
      this.readEpoch++;
      const early = this.early;
      this.early = [];
      for (const r of early) if (this.live()) this.handleRecord(r, out);
      return;
    }
    if (phase === 'Certificate' || phase === 'ClientKeyExchange' || phase === 'CertificateVerify') {
      this.pendingCcs = true; // arrived before the messages it follows
    }
    // otherwise: a retransmitted CCS, or one before our flight: ignored
  }

  /** RFC 6347 §4.1.2.7 leniency: only fatal alerts end the association (warnings are ignored). */
  protected override ignoresAlert(level: number): boolean {
    return level !== AlertLevel.fatal;
  }

  // ---------------------------------------------------------------- records out

  /** Each message at once, fragmented to maxHandshakeFragment (nothing is queued: flush is a no-op). */
  protected override sendHandshake(message: Uint8Array, out: Output12): void {
    for (const frag of fragmentDtlsHandshake(message, this.maxFragment)) out.records.push(this.protect(ContentType.handshake, frag));
  }

  /** Our ChangeCipherSpec starts the next write epoch at sequence 0. */
  protected override adoptWriteKey(key: RecordKey12): DtlsRecordKey {
    const k = key.exportKeys();
    key.wipe();
    this.writeEpoch++;
    return new DtlsRecordKey(this.suite!, k.key, k.iv, this.writeEpoch);
  }

  protected override protect(type: number, content: Uint8Array): Uint8Array {
    if (this.writeKey) return this.writeKey.seal(type, content);
    return encodeDtlsRecord(type, 0, this.epoch0WriteSeq++, content);
  }

  protected override dropInput(): void {
    this.early = [];
    this.reassembler.clear();
  }
}

/** A fresh DTLS 1.2 server connection for one association. */
export function createDtlsServer(config: TlsServerConfig, opts: DtlsServerOptions = {}): DtlsServerConnection {
  return new DtlsServerConnection(config, opts);
}
