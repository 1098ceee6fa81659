/**
 * The TLS 1.2 connection core, shared by TLS (connection12.ts) and DTLS 1.2 (dtls/connection.ts):
 * state, the public calls that do not depend on framing (encrypt, exporter, dispose), the alert
 * paths, the handshake actions (handshake12.ts) and the wiping of secrets.
 *
 * A subclass supplies the framing: how received bytes become records (feed), how a record is
 * protected for the wire (protect), how our handshake messages are framed, queued and sent
 * (frameMessage, sendHandshake, flush), what a new write key becomes (TLS: the key as is; DTLS: a
 * key of the next epoch), which alerts are ignored, and what input state a terminal state drops.
 *
 * Every error raised while processing input becomes one fatal alert (errors.ts alertForError), after
 * which the connection stays 'failed'.
 * SECRETS: readKey, writeKey, the master secret (exporter), the handshake's secrets (Handshake12).
 * imports bytes/ and tls/ siblings only.
 */
import { SetlsError, concat, wipe } from '../../bytes/index.js';
import { AlertDescription, ContentType, type TlsOutput, type TlsServerConfig, type TlsSessionInfo, type TlsState } from '../api.js';
import { MAX_PLAINTEXT } from '../constants.js';
import { alertForError } from '../errors.js';
import { checkedExporter12 } from '../keyschedule/prf12.js';
import { sealApplicationData, type RecordKey12 } from '../record/protection12.js';
import { AlertLevel, encodeAlert, parseAlert } from '../wire/alert.js';
import { Handshake12, type Action12 } from './handshake12.js';
import type { Suite12 } from './suites12.js';
import { CallOutput as Output12 } from '../output.js';

/** The per-call output (tls/output.ts), under the name the TLS 1.2 code uses. */
export { Output12 };

/** What the core needs of a record key: TLS's RecordKey12 or DTLS's DtlsRecordKey. */
export interface SealingKey12 {
  seal(type: number, content: Uint8Array): Uint8Array;
  wipe(): void;
}

export abstract class Connection12Core<K extends SealingKey12> {
  protected st: TlsState = 'handshaking';
  protected readonly hs: Handshake12;
  protected readKey: K | undefined;
  protected writeKey: K | undefined;
  protected suite: Suite12 | undefined;
  protected negotiatedInfo: TlsSessionInfo | undefined;
  protected maxSend: number;
  protected maxReceive = MAX_PLAINTEXT;
  protected sentCloseNotify = false;
  private master: Uint8Array | undefined;
  private clientRandom: Uint8Array = new Uint8Array(0);
  private serverRandom: Uint8Array = new Uint8Array(0);

  /** `maxSend`: our own bound on application plaintext per record (the peer's may lower it). */
  protected constructor(config: TlsServerConfig, maxSend = MAX_PLAINTEXT) {
    this.hs = new Handshake12(config, (m) => this.frameMessage(m));
    this.maxSend = maxSend;
  }

  // ---------------------------------------------------------------- framing (subclass)

  /** Parses received bytes into records and handles them; throws to fail the connection. */
  protected abstract feed(data: Uint8Array, out: Output12): void;
  /** One record of `type` around `content`: plaintext before our ChangeCipherSpec, then sealed. */
  protected abstract protect(type: number, content: Uint8Array): Uint8Array;
  /** Sends (or queues until flush) one handshake message built by Handshake12. */
  protected abstract sendHandshake(message: Uint8Array, out: Output12): void;
  /** The write key the handshake just derived, as this framing uses it (takes ownership of `key`). */
  protected abstract adoptWriteKey(key: RecordKey12): K;
  /** A non-close_notify alert from the peer that does not end the connection. */
  protected abstract ignoresAlert(level: number, description: number): boolean;
  /** Drops buffered input when the connection closes or fails. */
  protected abstract dropInput(): void;

  /** Rewrites a handshake message built by Handshake12 before it is hashed and sent (TLS: as is). */
  protected frameMessage(message: Uint8Array): Uint8Array {
    return message;
  }

  /** Sends handshake messages queued by sendHandshake (TLS coalesces them; DTLS queues nothing). */
  protected flush(_out: Output12): void {}

  // ---------------------------------------------------------------- public

  get state(): TlsState {
    return this.st;
  }

  get info(): TlsSessionInfo | undefined {
    return this.negotiatedInfo;
  }

  receive(data: Uint8Array): TlsOutput {
    const out = new Output12();
    if (!this.live()) return out.result();
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

  dispose(): void {
    this.wipeSecrets();
    if (this.st !== 'failed') this.st = 'closed';
  }

  // ---------------------------------------------------------------- shared internals

  protected live(): boolean {
    return this.st === 'handshaking' || this.st === 'connected';
  }

  /** An alert record's content from the peer: close_notify is answered, fatal ones end the connection. */
  protected handleAlert(content: Uint8Array, out: Output12): void {
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
    if (this.ignoresAlert(alert.level, alert.description)) return;
    out.alert = { description: alert.description, sentByUs: false };
    this.terminal('failed');
  }

  protected apply(actions: readonly Action12[], out: Output12): void {
    for (const a of actions) {
      switch (a.kind) {
        case 'negotiated':
          this.negotiatedInfo = a.info;
          this.suite = a.suite;
          this.maxSend = Math.min(this.maxSend, a.maxSend);
          this.maxReceive = a.maxReceive;
          break;
        case 'send':
          this.sendHandshake(a.message, out);
          break;
        case 'changeWriteKey': {
          this.flush(out);
          out.records.push(this.protect(ContentType.changeCipherSpec, Uint8Array.of(1)));
          const key = this.adoptWriteKey(a.key);
          this.writeKey?.wipe();
          this.writeKey = key;
          break;
        }
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

  /** One fatal alert for `err` (when the write key can still seal), then 'failed'. */
  protected fail(err: unknown, out: Output12): void {
    const description = alertForError(err);
    try {
      out.records.push(this.protect(ContentType.alert, encodeAlert(AlertLevel.fatal, description)));
    } catch {
      // the write key is exhausted: nothing more can be sent
    }
    out.alert = { description, sentByUs: true };
    this.terminal('failed');
  }

  protected terminal(s: 'closed' | 'failed'): void {
    this.st = s;
    this.dropInput();
    if (s === 'failed') this.wipeSecrets();
  }

  protected wipeSecrets(): void {
    this.hs.wipe();
    this.readKey?.wipe();
    this.writeKey?.wipe();
    this.readKey = this.writeKey = undefined;
    wipe(this.master);
    this.master = undefined;
  }
}
