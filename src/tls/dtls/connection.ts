/**
 * The DTLS 1.2 server (RFC 6347, RFC 7925 profile), sans I/O: TLS 1.2's handshake (tls12/handshake12.ts,
 * reused as is) with DTLS record and handshake framing.
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
import { SetlsError, concat, wipe } from '../../bytes/index.js';
import {
  AlertDescription,
  ContentType,
  type TlsOutput,
  type TlsServerConfig,
  type TlsServerConnection,
  type TlsSessionInfo,
  type TlsState,
} from '../api.js';
import { HandshakeType, MAX_PLAINTEXT, ProtocolVersion } from '../constants.js';
import { alertForError, tlsError } from '../errors.js';
import { checkedExporter12 } from '../keyschedule/prf12.js';
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
import { Output12 } from '../tls12/connection12.js';
import { Handshake12, type Action12 } from '../tls12/handshake12.js';
import type { Suite12 } from '../tls12/suites12.js';
import { AlertLevel, encodeAlert, parseAlert } from '../wire/alert.js';
import { parseClientHello, type ClientHello } from '../wire/clientHello.js';
import type { HandshakeMessage } from '../wire/handshake.js';
import { DtlsRecordKey } from './record.js';
import { sealApplicationData } from '../record/protection12.js';

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

export class DtlsServerConnection implements TlsServerConnection {
  private st: TlsState = 'handshaking';
  private readonly hs: Handshake12;
  private readonly reassembler = new DtlsHandshakeReassembler(0);
  private started = false;
  private writeMessageSeq = 0;
  private readEpoch = 0;
  private writeEpoch = 0;
  private epoch0WriteSeq = 0;
  private readKey: DtlsRecordKey | undefined;
  private writeKey: DtlsRecordKey | undefined;
  private pendingCcs = false;
  private early: DtlsRecord[] = [];
  private suite: Suite12 | undefined;
  private negotiatedInfo: TlsSessionInfo | undefined;
  private maxSend: number;
  private maxReceive = MAX_PLAINTEXT;
  private readonly maxFragment: number;
  private sentCloseNotify = false;
  private master: Uint8Array | undefined;
  private clientRandom: Uint8Array = new Uint8Array(0);
  private serverRandom: Uint8Array = new Uint8Array(0);

  constructor(config: TlsServerConfig, opts: DtlsServerOptions = {}) {
    // DTLS 1.2 only: no TLS 1.3 downgrade sentinel in ServerHello.random.
    this.hs = new Handshake12({ ...config, versions: [ProtocolVersion.tls12] }, (m) => this.frame(m));
    this.maxFragment = Math.max(64, Math.min(opts.maxHandshakeFragment ?? 16384, 16384));
    this.maxSend = Math.max(1, Math.min(opts.maxRecordPlaintext ?? MAX_PLAINTEXT, MAX_PLAINTEXT));
  }

  get state(): TlsState {
    return this.st;
  }

  get info(): TlsSessionInfo | undefined {
    return this.negotiatedInfo;
  }

  /** message_seq of the next handshake message the engine expects from the client. */
  get nextReceiveSeq(): number {
    return this.reassembler.next;
  }

  /** Feeds one datagram (or any concatenation of whole DTLS records). */
  receive(data: Uint8Array): TlsOutput {
    const out = new Output12();
    if (!this.live()) return out.result();
    try {
      for (const r of parseDtlsRecords(data)) {
        if (!this.live()) break;
        this.handleRecord(r, out);
      }
    } catch (e) {
      this.fail(e, out);
    }
    return out.result();
  }

  encrypt(contentType: number, plaintext: Uint8Array): Uint8Array {
    if (this.st !== 'connected' || !this.writeKey || this.sentCloseNotify) {
      throw new SetlsError('ERR_TLS_STATE', `cannot encrypt in state ${this.st}`);
    }
    if (contentType === ContentType.alert) {
      const alert = parseAlert(plaintext);
      const record = this.writeKey.seal(ContentType.alert, plaintext);
      if (alert.description === AlertDescription.closeNotify) this.sentCloseNotify = true;
      else if (alert.level === AlertLevel.fatal) this.terminal('failed');
      return record;
    }
    if (contentType !== ContentType.applicationData) {
      throw new SetlsError('ERR_TLS_ARGUMENT', `encrypt() takes application_data or alert, not ${contentType}`);
    }
    return sealApplicationData(this.writeKey, plaintext, this.maxSend);
  }

  exportKeyingMaterial(label: string, context: Uint8Array | undefined, length: number): Uint8Array {
    const s = { master: this.master, hash: this.suite?.hash, failed: this.st === 'failed', state: this.st };
    return checkedExporter12(s, this.clientRandom, this.serverRandom, label, context, length);
  }

  dispose(): void {
    this.wipeSecrets();
    if (this.st !== 'failed') this.st = 'closed';
  }

  // ---------------------------------------------------------------- framing of our messages

  /** TLS 4-byte header → DTLS 12-byte header with our next message_seq; ServerHello gets version FE FD. */
  private frame(m: Uint8Array): Uint8Array {
    const type = m[0]!;
    const body = m.slice(4);
    if (type === HandshakeType.serverHello) {
      body[0] = DTLS12_VERSION >>> 8;
      body[1] = DTLS12_VERSION & 0xff;
    }
    return encodeDtlsHandshake(type, this.writeMessageSeq++, body.length, 0, body);
  }

  // ---------------------------------------------------------------- records in

  private live(): boolean {
    return this.st === 'handshaking' || this.st === 'connected';
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
        this.onAlert(content, out);
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

  private onAlert(content: Uint8Array, out: Output12): void {
    if (content.length !== 2) return;
    const alert = parseAlert(content);
    if (alert.description === AlertDescription.closeNotify) {
      out.peerClosed = true;
      if (!this.sentCloseNotify) {
        this.sentCloseNotify = true;
        out.records.push(this.protect(ContentType.alert, encodeAlert(AlertLevel.warning, AlertDescription.closeNotify)));
      }
      this.terminal('closed');
      return;
    }
    if (alert.level !== AlertLevel.fatal) return;
    out.alert = { description: alert.description, sentByUs: false };
    this.terminal('failed');
  }

  // ---------------------------------------------------------------- actions out

  private apply(actions: readonly Action12[], out: Output12): void {
    for (const a of actions) {
      switch (a.kind) {
        case 'negotiated':
          this.negotiatedInfo = a.info;
          this.suite = a.suite;
          this.maxSend = Math.min(this.maxSend, a.maxSend);
          this.maxReceive = a.maxReceive;
          break;
        case 'send':
          for (const frag of fragmentDtlsHandshake(a.message, this.maxFragment)) out.records.push(this.protect(ContentType.handshake, frag));
          break;
        case 'changeWriteKey': {
          out.records.push(this.protect(ContentType.changeCipherSpec, Uint8Array.of(1)));
          const k = a.key.exportKeys();
          a.key.wipe();
          this.writeKey?.wipe();
          this.writeEpoch++;
          this.writeKey = new DtlsRecordKey(this.suite!, k.key, k.iv, this.writeEpoch);
          break;
        }
        case 'warningAlert':
          out.records.push(this.protect(ContentType.alert, encodeAlert(AlertLevel.warning, a.description)));
          break;
        case 'complete':
          wipe(this.master);
          this.master = a.master;
          this.clientRandom = a.clientRandom;
          this.serverRandom = a.serverRandom;
          this.negotiatedInfo = a.info;
          this.st = 'connected';
          out.handshakeComplete = true;
          break;
      }
    }
  }

  private protect(type: number, content: Uint8Array): Uint8Array {
    if (this.writeKey) return this.writeKey.seal(type, content);
    return encodeDtlsRecord(type, 0, this.epoch0WriteSeq++, content);
  }

  private fail(err: unknown, out: Output12): void {
    const description = alertForError(err);
    try {
      out.records.push(this.protect(ContentType.alert, encodeAlert(AlertLevel.fatal, description)));
    } catch {
      // the write key is exhausted: nothing more can be sent
    }
    out.alert = { description, sentByUs: true };
    this.terminal('failed');
  }

  private terminal(s: 'closed' | 'failed'): void {
    this.st = s;
    this.early = [];
    this.reassembler.clear();
    if (s === 'failed') this.wipeSecrets();
  }

  private wipeSecrets(): void {
    this.hs.wipe();
    this.readKey?.wipe();
    this.writeKey?.wipe();
    this.readKey = this.writeKey = undefined;
    wipe(this.master);
    this.master = undefined;
  }
}

/** A fresh DTLS 1.2 server connection for one association. */
export function createDtlsServer(config: TlsServerConfig, opts: DtlsServerOptions = {}): DtlsServerConnection {
  return new DtlsServerConnection(config, opts);
}
