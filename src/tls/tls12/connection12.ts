/**
 * The TLS 1.2 record layer and connection (RFC 5246 §6), sans I/O. connection.ts hands over to it
 * once a ClientHello selected TLS 1.2 (version dispatch); from then on every receive()/encrypt()
 * call lands here. The handshake itself is handshake12.ts; what TLS and DTLS 1.2 share (state,
 * alerts, handshake actions, exporter, wiping) is core12.ts. This file holds the TLS framing.
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
import { SetlsError, concat } from '../../bytes/index.js';
import { AlertDescription, ContentType, type ExportedSession, type TlsServerConfig } from '../api.js';
import { ProtocolVersion } from '../constants.js';
import { tlsError } from '../errors.js';
import { MAX_CIPHERTEXT_FRAGMENT_12, RECORD_HEADER_LENGTH, parseRecordHeader } from '../record/framing.js';
import { type RecordKey12 } from '../record/protection12.js';
import { plaintextRecord } from '../record/protection.js';
import { AlertLevel } from '../wire/alert.js';
import type { ClientHello } from '../wire/clientHello.js';
import { HandshakeReassembler, type HandshakeMessage } from '../wire/handshake.js';
import { Connection12Core, Output12 } from './core12.js';

export { Output12 } from './core12.js';

export class Tls12Connection extends Connection12Core<RecordKey12> {
  private inbox: Uint8Array = new Uint8Array(0);
  private readonly reassembler = new HandshakeReassembler();
  private pending: Uint8Array[] = [];

  constructor(config: TlsServerConfig) {
    super(config);
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

  // ---------------------------------------------------------------- records in

  protected override feed(data: Uint8Array, out: Output12): void {
    this.inbox = this.inbox.length ? concat(this.inbox, data) : data.slice();
    let o = 0;
    while (this.inbox.length - o >= RECORD_HEADER_LENGTH && this.live()) {
      const type = this.inbox[o]!;
      if (type < ContentType.changeCipherSpec || type > ContentType.applicationData) {
        throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', `unknown record content type ${type}`);
      }
      const h = parseRecordHeader(this.inbox, o, MAX_CIPHERTEXT_FRAGMENT_12); // 2^14 + 2048 (RFC 5246 §6.2.3)
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
        // Anything but the single byte 01 (empty, 2 bytes, another value) is unexpected_message, as in
        // TLS 1.3 (RFC 8446 §5) and OpenSSL (docs/architecture.md, "TLS engine choices").
        if (content.length !== 1 || content[0] !== 1) throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'malformed change_cipher_spec');
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
        // RFC 5246 §6.2.1: no zero-length Alert fragments (unexpected_message, as RFC 8446 §5.4 says).
        if (content.length === 0) throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'empty alert record');
        this.handleAlert(content, out);
        return;
      default:
        if (!this.hs.acceptsApplicationData) throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'application data before Finished');
        out.plaintext.push(content.slice());
    }
  }

  /** Only a user_canceled warning leaves the connection up (every other alert ends it). */
  protected override ignoresAlert(level: number, description: number): boolean {
    return level === AlertLevel.warning && description === AlertDescription.userCanceled;
  }

  // ---------------------------------------------------------------- records out

  protected override sendHandshake(message: Uint8Array): void {
    this.pending.push(message);
  }

  /** Sends queued handshake messages, coalesced and split to the record limit. */
  protected override flush(out: Output12): void {
    if (this.pending.length === 0) return;
    const data = concat(...this.pending);
    this.pending = [];
    for (let o = 0; o < data.length; o += this.maxSend) {
      out.records.push(this.protect(ContentType.handshake, data.subarray(o, o + this.maxSend)));
    }
  }

  protected override adoptWriteKey(key: RecordKey12): RecordKey12 {
    return key;
  }

  protected override protect(type: number, content: Uint8Array): Uint8Array {
    return this.writeKey ? this.writeKey.seal(type, content) : plaintextRecord(type, content);
  }

  protected override dropInput(): void {
    this.inbox = new Uint8Array(0);
  }

  protected override wipeSecrets(): void {
    super.wipeSecrets();
    this.pending = [];
  }
}
