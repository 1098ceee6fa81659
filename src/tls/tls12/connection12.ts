/**
 * The TLS 1.2 record layer and connection (RFC 5246 §6), sans I/O. connection.ts hands over to it
 * once a ClientHello selected TLS 1.2 (version dispatch); from then on every receive()/encrypt()
 * call lands here. The handshake itself is handshake12.ts.
 *
 * Records: plaintext until the client's ChangeCipherSpec (read) / ours (write), then AEAD
 * (record/protection12.ts). ChangeCipherSpec is accepted only where the handshake expects it and never
 * in the middle of a fragmented handshake message. No KeyUpdate exists in TLS 1.2: a write key past
 * its record limit fails the connection.
 *
 * Every error raised while processing input becomes one fatal alert (errors.ts alertForError), after
 * which the connection stays 'failed'.
 * SECRETS: readKey, writeKey, the master secret (exporter), the handshake's secrets.
 * imports bytes/ and tls/ siblings only.
 */
import { SetlsError, concat, wipe } from '../../bytes/index.js';
import {
  AlertDescription,
  ContentType,
  type ExportedSession,
  type TlsOutput,
  type TlsServerConfig,
  type TlsSessionInfo,
  type TlsState,
} from '../api.js';
import { MAX_PLAINTEXT, ProtocolVersion } from '../constants.js';
import { alertForError, tlsError } from '../errors.js';
import { checkedExporter12 } from '../keyschedule/prf12.js';
import { RECORD_HEADER_LENGTH, parseRecordHeader } from '../record/framing.js';
import { sealApplicationData, type RecordKey12 } from '../record/protection12.js';
import { plaintextRecord } from '../record/protection.js';
import { AlertLevel, encodeAlert, parseAlert } from '../wire/alert.js';
import type { ClientHello } from '../wire/clientHello.js';
import { HandshakeReassembler, type HandshakeMessage } from '../wire/handshake.js';
import { Handshake12, type Action12 } from './handshake12.js';
import type { Suite12 } from './suites12.js';

/** RFC 5705 §4 / RFC 5246: labels the exporter must refuse (they name the key schedule's own PRF uses). */

/** Per-call accumulator of what we return (same shape as connection.ts's). */
export class Output12 {
  readonly records: Uint8Array[] = [];
  readonly plaintext: Uint8Array[] = [];
  handshakeComplete = false;
  peerClosed = false;
  alert: { description: number; sentByUs: boolean } | undefined;

  result(): TlsOutput {
    return {
      records: concat(...this.records),
      plaintext: this.plaintext,
      handshakeComplete: this.handshakeComplete,
      peerClosed: this.peerClosed,
      ...(this.alert ? { alert: this.alert } : {}),
    };
  }
}

export class Tls12Connection {
  private st: TlsState = 'handshaking';
  private inbox: Uint8Array = new Uint8Array(0);
  private readonly reassembler = new HandshakeReassembler();
  private readonly hs: Handshake12;
  private readKey: RecordKey12 | undefined;
  private writeKey: RecordKey12 | undefined;
  private suite: Suite12 | undefined;
  private negotiatedInfo: TlsSessionInfo | undefined;
  private maxSend = MAX_PLAINTEXT;
  private maxReceive = MAX_PLAINTEXT;
  private pending: Uint8Array[] = [];
  private sentCloseNotify = false;
  private master: Uint8Array | undefined;
  private clientRandom: Uint8Array = new Uint8Array(0);
  private serverRandom: Uint8Array = new Uint8Array(0);

  constructor(config: TlsServerConfig) {
    this.hs = new Handshake12(config);
  }

  get state(): TlsState {
    return this.st;
  }

  get info(): TlsSessionInfo | undefined {
    return this.negotiatedInfo;
  }

  /** The ClientHello that selected TLS 1.2 (already parsed), then any bytes that followed it. */
  start(msg: HandshakeMessage, ch: ClientHello, rest: Uint8Array, out: Output12): void {
    try {
      this.apply(this.hs.start(msg, ch), out);
      this.feed(rest, out);
    } catch (e) {
      this.fail(e, out);
    }
  }

  receive(data: Uint8Array): TlsOutput {
    const out = new Output12();
    if (this.st === 'failed' || this.st === 'closed') return out.result();
    try {
      this.feed(data, out);
    } catch (e) {
      this.fail(e, out);
    }
    return out.result();
  }

  encrypt(contentType: number, plaintext: Uint8Array): Uint8Array {
    if (this.st !== 'connected' || !this.writeKey || this.sentCloseNotify) {
      throw new SetlsError('ERR_TLS_STATE', `cannot encrypt in state ${this.st}`);
    }
    if (contentType !== ContentType.applicationData && contentType !== ContentType.alert) {
      throw new SetlsError('ERR_TLS_ARGUMENT', `encrypt() takes application_data or alert, not ${contentType}`);
    }
    if (contentType === ContentType.alert) {
      const alert = parseAlert(plaintext);
      const record = this.writeKey.seal(ContentType.alert, plaintext);
      if (alert.description === AlertDescription.closeNotify) this.sentCloseNotify = true;
      else if (alert.level === AlertLevel.fatal) this.terminal('failed');
      return record;
    }
    return sealApplicationData(this.writeKey, plaintext, this.maxSend);
  }

  exportKeyingMaterial(label: string, context: Uint8Array | undefined, length: number): Uint8Array {
    const s = { master: this.master, hash: this.suite?.hash, failed: this.st === 'failed', state: this.st };
    return checkedExporter12(s, this.clientRandom, this.serverRandom, label, context, length);
  }

  requestKeyUpdate(): Uint8Array {
    throw new SetlsError('ERR_TLS_STATE', 'TLS 1.2 has no KeyUpdate');
  }

  exportSession(): ExportedSession {
    if (this.st !== 'connected' || !this.readKey || !this.writeKey || !this.suite || this.sentCloseNotify) {
      throw new SetlsError('ERR_TLS_STATE', `cannot export the session in state ${this.st}`);
    }
    const r = this.readKey.exportKeys();
    const w = this.writeKey.exportKeys();
    const session: ExportedSession = {
      version: ProtocolVersion.tls12,
      cipherSuite: this.suite.id,
      clientTrafficSecret: new Uint8Array(0),
      serverTrafficSecret: new Uint8Array(0),
      clientKey: r.key,
      clientIv: r.iv,
      serverKey: w.key,
      serverIv: w.iv,
      readSequence: BigInt(this.readKey.sequence),
      writeSequence: BigInt(this.writeKey.sequence),
    };
    this.terminal('closed');
    this.wipeSecrets(); // TLS-Tandem: the host owns the keys now; nothing stays on the card
    return session;
  }

  dispose(): void {
    this.wipeSecrets();
    if (this.st !== 'failed') this.st = 'closed';
  }

  // ---------------------------------------------------------------- internals

  private live(): boolean {
    return this.st === 'handshaking' || this.st === 'connected';
  }

  private feed(data: Uint8Array, out: Output12): void {
    this.inbox = this.inbox.length ? concat(this.inbox, data) : data.slice();
    let o = 0;
    while (this.inbox.length - o >= RECORD_HEADER_LENGTH && this.live()) {
      const type = this.inbox[o]!;
      if (type < ContentType.changeCipherSpec || type > ContentType.applicationData) {
        throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', `unknown record content type ${type}`);
      }
      const h = parseRecordHeader(this.inbox, o);
      const end = o + RECORD_HEADER_LENGTH + h.length;
      if (end > this.inbox.length) break;
      const record = this.inbox.subarray(o, end);
      o = end;
      this.handleRecord(record, out);
    }
    this.inbox = this.live() ? this.inbox.slice(o) : new Uint8Array(0);
  }

  private handleRecord(record: Uint8Array, out: Output12): void {
    const type = record[0]!;
    let content = record.subarray(RECORD_HEADER_LENGTH);
    if (this.readKey) {
      const opened = this.readKey.open(record, this.maxReceive);
      if (!opened) throw tlsError('ERR_TLS_BAD_RECORD_MAC', 'record authentication failed');
      content = opened.content;
    } else {
      if (type === ContentType.applicationData) throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'application data before keys');
      if (content.length > this.maxReceive) throw tlsError('ERR_TLS_RECORD_OVERFLOW', 'plaintext record too long');
    }
    if (type !== ContentType.handshake && this.reassembler.pending) {
      throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'record interleaved with a fragmented handshake message');
    }
    switch (type) {
      case ContentType.changeCipherSpec: {
        if (content.length !== 1 || content[0] !== 1) throw tlsError('ERR_TLS_DECODE', 'malformed change_cipher_spec');
        const key = this.hs.onChangeCipherSpec(); // unexpected_message unless expected now
        this.readKey?.wipe();
        this.readKey = key;
        return;
      }
      case ContentType.handshake: {
        if (content.length === 0) throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'empty handshake record');
        this.reassembler.push(content);
        for (let msg = this.reassembler.next(); msg && this.live(); msg = this.reassembler.next()) {
          this.apply(this.hs.onHandshake(msg), out);
        }
        return;
      }
      case ContentType.alert:
        this.handleAlert(content, out);
        return;
      default:
        if (!this.hs.acceptsApplicationData) throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'application data before Finished');
        out.plaintext.push(content.slice());
    }
  }

  private handleAlert(content: Uint8Array, out: Output12): void {
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
    if (alert.level === AlertLevel.warning && alert.description === AlertDescription.userCanceled) return;
    out.alert = { description: alert.description, sentByUs: false };
    this.terminal('failed');
  }

  private apply(actions: readonly Action12[], out: Output12): void {
    for (const a of actions) {
      switch (a.kind) {
        case 'negotiated':
          this.negotiatedInfo = a.info;
          this.suite = a.suite;
          this.maxSend = a.maxSend;
          this.maxReceive = a.maxReceive;
          break;
        case 'send':
          this.pending.push(a.message);
          break;
        case 'changeWriteKey':
          this.flush(out);
          out.records.push(this.protect(ContentType.changeCipherSpec, Uint8Array.of(1)));
          this.writeKey?.wipe();
          this.writeKey = a.key;
          break;
        case 'warningAlert':
          this.flush(out);
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
    this.flush(out);
  }

  /** Sends queued handshake messages, coalesced and split to the record limit. */
  private flush(out: Output12): void {
    if (this.pending.length === 0) return;
    const data = concat(...this.pending);
    this.pending = [];
    for (let o = 0; o < data.length; o += this.maxSend) {
      out.records.push(this.protect(ContentType.handshake, data.subarray(o, o + this.maxSend)));
    }
  }

  private protect(type: number, content: Uint8Array): Uint8Array {
    return this.writeKey ? this.writeKey.seal(type, content) : plaintextRecord(type, content);
  }

  private fail(err: unknown, out: Output12): void {
    const description = alertForError(err);
    this.pending = [];
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
    this.inbox = new Uint8Array(0);
    if (s === 'failed') this.wipeSecrets();
  }

  private wipeSecrets(): void {
    this.hs.wipe();
    this.readKey?.wipe();
    this.writeKey?.wipe();
    this.readKey = this.writeKey = undefined;
    wipe(this.master);
    this.master = undefined;
    this.pending = [];
  }
}
