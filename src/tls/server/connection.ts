/**
 * The TLS 1.3 server connection: record layer + handshake state machine, sans I/O.
 *
 * RFC 8446 §A.2 server state machine (states in this engine: ExpectClientHello covers START,
 * RECVD_CH and NEGOTIATED (PSK selection: server/psk.ts; flight: server/flight.ts); 0-RTT is never
 * accepted, so WAIT_EOED does not exist and WAIT_FLIGHT2 is ExpectCertificate (client auth) or
 * ExpectFinished; WAIT_CV is ExpectCertificateVerify; CONNECTED is ExpectTraffic):
 *
 *                              START <-----+
 *               Recv ClientHello |         | Send HelloRetryRequest   (ExpectSecondClientHello:
 *                                v         |  stateless cookie, at most once; server/cookie.ts)
 *                             RECVD_CH ----+
 *                                | Select parameters: suite, then PSK (ticket: psk_dhe_ke only;
 *                                | external findPsk: psk_dhe_ke or psk_ke; binder checked) or
 *                                | certificate; group (none for psk_ke)
 *                                v
 *                             NEGOTIATED
 *                                | Send ServerHello [+ pre_shared_key]
 *                                | K_send = handshake
 *                                | Send EncryptedExtensions
 *                                | [Send CertificateRequest]          (certificate path, clientAuth ≠ 'none')
 * Can send                       | [Send Certificate + CertificateVerify]  (certificate path only)
 * app data                       | Send Finished
 * after   -->                    | K_send = application
 * here                           |
 *   K_recv = handshake           |  (0-RTT offered: its records are skipped, never decrypted)
 * [Skip decrypt errors]          |
 *                                v
 *                          WAIT_FLIGHT2
 *                                |
 *                       +--------+--------+
 *               No auth |                 | Client auth (CertificateRequest sent)
 *         (or PSK)      |                 |
 *                       |                 v
 *                       |             WAIT_CERT (ExpectCertificate)
 *                       |        Recv |       | Recv Certificate: chain verified (x509/)
 *                       |       empty |       v  against identity.trustAnchors at entropy.now()
 *                       | Certificate |    WAIT_CV (ExpectCertificateVerify)
 *                       | ('optional';|       | Recv CertificateVerify
 *                       |  'required' |       |  ("TLS 1.3, client CertificateVerify")
 *                       |  → certificate_required)
 *                       |             v       |
 *                       +-> WAIT_FINISHED <---+
 *                                | Recv Finished
 *                                | K_recv = application
 *                                | [Send NewSessionTicket × ticketCount (config.ticketKeys)]
 *                                v
 *                            CONNECTED   Recv KeyUpdate: K_recv = next generation
 *                                        [update_requested: Send KeyUpdate, K_send = next generation]
 *                                        Own KeyUpdate after config.keyUpdateAfterRecords records,
 *                                        or on requestKeyUpdate()
 *                                        exportSession(): keys handed over, → closed
 *
 * Every error raised while processing input becomes one fatal alert (errors.ts), after which the
 * connection stays 'failed'.
 * SECRETS: the RecordKeys (readKey/writeKey), the server application traffic secret (writeSecret,
 * ratcheted on KeyUpdate), exporterSecret, the HRR cookie key and the current state's secrets.
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
import { HandshakeType, MAX_PLAINTEXT, OUR_RECORD_SIZE_LIMIT, ProtocolVersion } from '../constants.js';
import { DEFAULT_KEY_UPDATE_AFTER_RECORDS, type SuiteParams } from '../crypto.js';
import { alertForError, tlsError } from '../errors.js';
import { exportKeyingMaterial, nextTrafficSecret, trafficKeys } from '../keyschedule/schedule.js';
import { RECORD_HEADER_LENGTH, parseRecordHeader } from '../record/framing.js';
import { MAX_INNER_PLAINTEXT, RecordKey, plaintextRecord } from '../record/protection.js';
import { AlertLevel, encodeAlert, parseAlert } from '../wire/alert.js';
import { HandshakeReassembler, type HandshakeMessage } from '../wire/handshake.js';
import { parseClientHello, type ClientHello } from '../wire/clientHello.js';
import { Tls12Connection } from '../tls12/connection12.js';
import { CallOutput } from '../output.js';
import type { ExportedSession } from '../api.js';
import { buildKeyUpdate } from '../wire/keyUpdate.js';
import { CookieSealer } from './cookie.js';
import type { Effect, ServerState, Transition } from './effects.js';
import { ExpectClientHello, type InternalOptions } from './expectClientHello.js';
import { ExpectTraffic } from './expectTraffic.js';
import { checkTicketConfig } from './issueTickets.js';
import { selectVersion } from './negotiate.js';
import { CLOSED, FAILED } from './terminal.js';

/** Bytes of undecryptable records skipped after a rejected 0-RTT offer (RFC 8446 §4.2.10). */
const MAX_SKIPPED_EARLY_DATA = 65536;

export class TlsServer implements TlsServerConnection {
  private st: ServerState;
  private inbox: Uint8Array = new Uint8Array(0);
  private readonly handshake = new HandshakeReassembler();
  private readKey: RecordKey | undefined;
  private writeKey: RecordKey | undefined;
  private suite: SuiteParams | undefined;
  private exporterSecret: Uint8Array | undefined;
  private negotiatedInfo: TlsSessionInfo | undefined;
  /** Largest content we put in one protected record (client's record_size_limit − 1, ≤ 2^14). */
  private maxSendContent = MAX_PLAINTEXT;
  private pendingHandshake: Uint8Array[] = [];
  private sentCloseNotify = false;
  private earlyDataSkipBudget = 0;
  private disposed = false;
  private readonly cookies: CookieSealer;
  /** Server application traffic secret of the current write generation (KeyUpdate ratchets it). */
  private writeSecret: Uint8Array | undefined;
  /** Records per key after which we rotate ours / ask the client to rotate its (see api.ts). */
  private readonly keyUpdateAfterRecords: number;
  /** Largest TLSInnerPlaintext we accept (the record_size_limit we announced). */
  private maxInnerPlaintext = MAX_INNER_PLAINTEXT;
  /** The client sent KeyUpdate(update_requested) in this receive() call: answer once at its end. */
  private keyUpdateReplyDue = false;
  /** We asked the client to update its key and its KeyUpdate has not come yet. */
  private clientUpdateRequested = false;
  /** Version dispatch: once a ClientHello selects TLS 1.2, every call goes to this connection. */
  private tls12: Tls12Connection | undefined;
  private tls12Handover: { msg: HandshakeMessage; ch: ClientHello } | undefined;
  private readonly config: TlsServerConfig;

  constructor(config: TlsServerConfig, options: InternalOptions = {}) {
    this.config = config;
    const versions = config.versions ?? [ProtocolVersion.tls13, ProtocolVersion.tls12];
    if (!versions.some((v) => v === ProtocolVersion.tls13 || v === ProtocolVersion.tls12)) {
      throw new SetlsError('ERR_TLS_ARGUMENT', 'versions enables neither TLS 1.3 nor TLS 1.2');
    }
    const after = config.keyUpdateAfterRecords ?? DEFAULT_KEY_UPDATE_AFTER_RECORDS;
    if (!Number.isSafeInteger(after) || after < 1) throw new SetlsError('ERR_TLS_ARGUMENT', `keyUpdateAfterRecords ${after}`);
    const rsl = config.recordSizeLimit ?? OUR_RECORD_SIZE_LIMIT;
    if (!Number.isInteger(rsl) || rsl < 64 || rsl > OUR_RECORD_SIZE_LIMIT) throw new SetlsError('ERR_TLS_ARGUMENT', `recordSizeLimit ${rsl}`);
    this.keyUpdateAfterRecords = after;
    checkTicketConfig(config); // ERR_TLS_ARGUMENT on bad ticket settings
    this.cookies = new CookieSealer(config.entropy, config.cookieKey); // ERR_TLS_ARGUMENT on a bad key
    this.st = new ExpectClientHello(config, options, this.cookies);
  }

  get state(): TlsState {
    return this.tls12 ? this.tls12.state : this.st.publicState;
  }

  get info(): TlsSessionInfo | undefined {
    return this.tls12 ? this.tls12.info : this.negotiatedInfo;
  }

  receive(data: Uint8Array): TlsOutput {
    if (this.tls12) return this.tls12.receive(data);
    const out = new CallOutput();
    if (this.st === FAILED || this.st === CLOSED) return out.result();
    try {
      this.inbox = this.inbox.length ? concat(this.inbox, data) : data.slice();
      let o = 0;
      while (this.inbox.length - o >= RECORD_HEADER_LENGTH && this.isLive() && !this.tls12Handover) {
        const type = this.inbox[o]!;
        if (type < ContentType.changeCipherSpec || type > ContentType.applicationData) {
          throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', `unknown record content type ${type}`);
        }
        const h = parseRecordHeader(this.inbox, o); // ERR_TLS_BAD_RECORD / ERR_TLS_RECORD_OVERFLOW
        const end = o + RECORD_HEADER_LENGTH + h.length;
        if (end > this.inbox.length) break;
        const record = this.inbox.subarray(o, end);
        o = end;
        this.handleRecord(record, out);
      }
      if (this.tls12Handover) return this.handOverToTls12(this.tls12Handover, this.inbox.slice(o), out);
      this.inbox = this.isLive() ? this.inbox.slice(o) : new Uint8Array(0);
      this.keyUpdateAfterReceive(out);
    } catch (e) {
      this.fail(e, out);
    }
    return out.result();
  }

  encrypt(contentType: number, plaintext: Uint8Array): Uint8Array {
    if (this.tls12) return this.tls12.encrypt(contentType, plaintext);
    if (this.st.publicState !== 'connected' || !this.writeKey || this.sentCloseNotify) {
      throw new SetlsError('ERR_TLS_STATE', `cannot encrypt in state ${this.state}`);
    }
    if (contentType !== ContentType.applicationData && contentType !== ContentType.alert) {
      throw new SetlsError('ERR_TLS_ARGUMENT', `encrypt() takes application_data or alert, not ${contentType}`);
    }
    if (contentType === ContentType.alert) {
      const alert = parseAlert(plaintext); // throws ERR_TLS_DECODE on a malformed alert
      const record = this.protect(ContentType.alert, plaintext);
      if (alert.description === AlertDescription.closeNotify) this.sentCloseNotify = true;
      else if (alert.description !== AlertDescription.userCanceled || alert.level === AlertLevel.fatal) this.enterTerminal(FAILED);
      return record;
    }
    const records: Uint8Array[] = [];
    let o = 0;
    do {
      const n = Math.min(this.maxSendContent, plaintext.length - o);
      records.push(this.protect(ContentType.applicationData, plaintext.subarray(o, o + n)));
      o += n;
    } while (o < plaintext.length);
    return concat(...records);
  }

  exportKeyingMaterial(label: string, context: Uint8Array | undefined, length: number): Uint8Array {
    if (this.tls12) return this.tls12.exportKeyingMaterial(label, context, length);
    if (!this.exporterSecret || !this.suite || this.disposed || this.st === FAILED) {
      throw new SetlsError('ERR_TLS_STATE', `no exporter in state ${this.state}`);
    }
    if (!Number.isInteger(length) || length < 0 || length > 255 * this.suite.hashLength || label.length > 249) {
      throw new SetlsError('ERR_TLS_ARGUMENT', 'bad exporter label or length');
    }
    return exportKeyingMaterial(this.suite, this.exporterSecret, label, context ?? new Uint8Array(0), length);
  }

  requestKeyUpdate(updateRequested: boolean): Uint8Array {
    if (this.tls12) return this.tls12.requestKeyUpdate();
    if (this.st.publicState !== 'connected' || !this.writeKey || !this.writeSecret || this.sentCloseNotify) {
      throw new SetlsError('ERR_TLS_STATE', `cannot send KeyUpdate in state ${this.state}`);
    }
    return this.sendKeyUpdate(updateRequested);
  }

  dispose(): void {
    this.tls12?.dispose();
    this.disposed = true;
    this.wipeSecrets();
    if (this.st !== FAILED) this.st = CLOSED;
  }

  /** TLS 1.2 session export (TLS-Tandem); the TLS 1.3 branch belongs to the TLS 1.3 export work. */
  exportSession(): ExportedSession {
    if (this.tls12) return this.tls12.exportSession();
    return this.exportSession13();
  }

  /**
   * TLS 1.3 session export: the current application traffic secrets (so the host can KeyUpdate), their
   * keys and IVs (HKDF-Expand-Label "key" / "iv") and the next sequence numbers; then every secret is
   * wiped and the connection is 'closed'. Only when connected (ERR_TLS_STATE otherwise).
   */
  private exportSession13(): ExportedSession {
    const st = this.st;
    const info = this.negotiatedInfo;
    if (!(st instanceof ExpectTraffic) || !this.readKey || !this.writeKey || !this.writeSecret || !info || this.sentCloseNotify) {
      throw new SetlsError('ERR_TLS_STATE', `no session export in state ${this.state}`);
    }
    const suite = this.requireSuite();
    const clientTrafficSecret = st.clientTrafficSecret();
    const serverTrafficSecret = this.writeSecret.slice();
    const client = trafficKeys(suite, clientTrafficSecret);
    const server = trafficKeys(suite, serverTrafficSecret);
    const exported: ExportedSession = {
      version: info.version,
      cipherSuite: info.cipherSuite,
      clientTrafficSecret,
      serverTrafficSecret,
      clientKey: client.key,
      clientIv: client.iv,
      serverKey: server.key,
      serverIv: server.iv,
      readSequence: BigInt(this.readKey.sequence),
      writeSequence: BigInt(this.writeKey.sequence),
    };
    this.dispose();
    return exported;
  }

  // ---------------------------------------------------------------- internals

  /** Version dispatch: a ClientHello selected TLS 1.2; tls12/ takes over (this object only forwards). */
  private handOverToTls12(h: { msg: HandshakeMessage; ch: ClientHello }, rest: Uint8Array, out: CallOutput): TlsOutput {
    this.tls12Handover = undefined;
    this.inbox = new Uint8Array(0);
    this.st.wipe();
    this.cookies.wipe();
    const tls12 = new Tls12Connection(this.config);
    this.tls12 = tls12;
    const o12 = new CallOutput();
    tls12.start(h.msg, h.ch, rest, o12);
    const r = o12.result();
    return { ...r, records: concat(...out.records, r.records) };
  }

  private isLive(): boolean {
    return this.st !== FAILED && this.st !== CLOSED;
  }

  private handleRecord(record: Uint8Array, out: CallOutput): void {
    let type = record[0]!;
    let content = record.subarray(RECORD_HEADER_LENGTH);

    if (type === ContentType.changeCipherSpec) {
      // RFC 8446 §5: a plaintext CCS of exactly 0x01 between ClientHello and the client's Finished is dropped.
      if (!this.st.acceptsChangeCipherSpec || this.handshake.pending || content.length !== 1 || content[0] !== 1) {
        throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'unexpected change_cipher_spec');
      }
      return;
    }

    if (this.readKey) {
      if (type === ContentType.applicationData) {
        const opened = this.readKey.open(record, this.maxInnerPlaintext);
        if (!opened) {
          if (this.earlyDataSkipBudget > 0 && this.earlyDataSkipBudget >= content.length && !this.handshake.pending) {
            this.earlyDataSkipBudget -= content.length; // rejected 0-RTT data: skip it
            return;
          }
          throw tlsError('ERR_TLS_BAD_RECORD_MAC', 'record authentication failed');
        }
        this.earlyDataSkipBudget = 0;
        type = opened.type;
        content = opened.content;
        if (type !== ContentType.alert && type !== ContentType.handshake && type !== ContentType.applicationData) {
          throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', `protected record of inner type ${type}`);
        }
      } else if (!(type === ContentType.alert && this.st.publicState === 'handshaking')) {
        // Only a plaintext alert is tolerated during the handshake (a client that failed on ServerHello).
        throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', `plaintext record of type ${type} after keys are in use`);
      }
    } else {
      if (type === ContentType.applicationData) {
        // RFC 8446 §5.1: nothing may come between the fragments of a handshake message — not even an
        // empty application_data record (which the early-data budget below must not swallow).
        if (this.handshake.pending) throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'record interleaved with a fragmented handshake message');
        if (this.earlyDataSkipBudget > 0 && this.earlyDataSkipBudget >= content.length) {
          this.earlyDataSkipBudget -= content.length; // 0-RTT data after our HelloRetryRequest: skip it
          return;
        }
        throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'protected record before ClientHello');
      }
      if (content.length > MAX_PLAINTEXT) throw tlsError('ERR_TLS_RECORD_OVERFLOW', 'plaintext record too long');
    }

    if (type !== ContentType.handshake && this.handshake.pending) {
      throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'record interleaved with a fragmented handshake message');
    }
    switch (type) {
      case ContentType.handshake: {
        if (content.length === 0) throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'empty handshake record');
        this.handshake.push(content);
        for (let msg = this.handshake.next(); msg && this.isLive(); msg = this.handshake.next()) {
          if (msg.type === HandshakeType.clientHello && this.st instanceof ExpectClientHello) {
            const ch = parseClientHello(msg.body);
            if (selectVersion(ch, this.config.versions) === ProtocolVersion.tls12) {
              if (this.handshake.pending || this.handshake.next()) {
                throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'handshake data after a TLS 1.2 ClientHello');
              }
              this.tls12Handover = { msg, ch };
              return;
            }
          }
          const readKeyChanged = this.apply(this.st.handleHandshake(msg), out);
          if (readKeyChanged && this.handshake.pending) {
            throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'handshake data straddles a key change');
          }
        }
        return;
      }
      case ContentType.alert:
        // RFC 8446 §5.4: a zero-length Alert (TLSInnerPlaintext.content, padded or not) is unexpected_message.
        if (content.length === 0) throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'empty alert record');
        this.handleAlert(content, out);
        return;
      default:
        this.apply(this.st.handleApplicationData(content), out);
    }
  }

  private handleAlert(content: Uint8Array, out: CallOutput): void {
    const alert = parseAlert(content);
    if (alert.description === AlertDescription.closeNotify) {
      out.peerClosed = true;
      if (!this.sentCloseNotify) {
        this.sentCloseNotify = true;
        out.records.push(this.protect(ContentType.alert, encodeAlert(AlertLevel.warning, AlertDescription.closeNotify)));
      }
      this.enterTerminal(CLOSED);
      return;
    }
    // RFC 8446 §6: user_canceled is followed by close_notify; every other alert is fatal.
    if (alert.description === AlertDescription.userCanceled && alert.level === AlertLevel.warning) return;
    out.alert = { description: alert.description, sentByUs: false };
    this.enterTerminal(FAILED);
  }

  /** Applies a transition's effects in order; returns whether the read keys changed. */
  private apply(t: Transition, out: CallOutput): boolean {
    let readKeyChanged = false;
    for (const e of t.effects) {
      if (e.kind !== 'sendHandshake') this.flushHandshake(out);
      readKeyChanged = this.applyEffect(e, out) || readKeyChanged;
    }
    this.flushHandshake(out);
    if (this.st !== t.next) {
      this.st.wipe();
      this.st = t.next;
    }
    return readKeyChanged;
  }

  private applyEffect(e: Effect, out: CallOutput): boolean {
    switch (e.kind) {
      case 'negotiated':
        this.negotiatedInfo = e.info;
        this.suite = e.suite;
        if (e.peerRecordSizeLimit !== undefined) this.maxSendContent = Math.min(MAX_PLAINTEXT, e.peerRecordSizeLimit - 1);
        if (e.ourRecordSizeLimit !== undefined) this.maxInnerPlaintext = e.ourRecordSizeLimit;
        this.earlyDataSkipBudget = e.earlyDataOffered ? MAX_SKIPPED_EARLY_DATA : 0;
        return false;
      case 'skipEarlyData':
        this.earlyDataSkipBudget = MAX_SKIPPED_EARLY_DATA;
        return false;
      case 'keyUpdateRequested':
        this.keyUpdateReplyDue = true;
        return false;
      case 'sendHandshake':
        this.pendingHandshake.push(e.message);
        return false;
      case 'sendChangeCipherSpec':
        if (this.config.middleboxCompatibilityCcs === false) return false;
        out.records.push(plaintextRecord(ContentType.changeCipherSpec, Uint8Array.of(1)));
        return false;
      case 'installWriteKeys':
        this.writeKey?.wipe();
        this.writeKey = new RecordKey(this.requireSuite(), e.keys);
        wipe(this.writeSecret);
        this.writeSecret = e.trafficSecret;
        return false;
      case 'installReadKeys':
        this.readKey?.wipe();
        this.readKey = new RecordKey(this.requireSuite(), e.keys);
        this.clientUpdateRequested = false; // a fresh client key (handshake end or the client's KeyUpdate)
        return true;
      case 'exporterSecret':
        wipe(this.exporterSecret);
        this.exporterSecret = e.secret;
        return false;
      case 'deliver':
        out.plaintext.push(e.data.slice());
        return false;
      case 'peerAuthenticated':
        if (this.negotiatedInfo) this.negotiatedInfo = { ...this.negotiatedInfo, peer: e.peer };
        return false;
      case 'handshakeComplete':
        out.handshakeComplete = true;
        return false;
    }
  }

  private requireSuite(): SuiteParams {
    if (!this.suite) throw tlsError('ERR_TLS_INTERNAL', 'keys before negotiation');
    return this.suite;
  }

  /** Sends queued handshake messages, coalesced (or one message per record) and split to the record limit. */
  private flushHandshake(out: CallOutput): void {
    if (this.pendingHandshake.length === 0) return;
    const pieces = this.config.handshakeRecordPerMessage ? this.pendingHandshake : [concat(...this.pendingHandshake)];
    this.pendingHandshake = [];
    const max = this.writeKey ? this.maxSendContent : MAX_PLAINTEXT;
    for (const data of pieces) {
      for (let o = 0; o < data.length; o += max) {
        out.records.push(this.protect(ContentType.handshake, data.subarray(o, o + max)));
      }
    }
  }

  /**
   * Protects one record with the current write key (plaintext before keys exist). After the handshake,
   * once the write key has protected `keyUpdateAfterRecords` records, a KeyUpdate(update_not_requested)
   * goes first and the record is protected under the next key (the result is then two records).
   */
  private protect(type: number, content: Uint8Array): Uint8Array {
    if (!this.writeKey) return plaintextRecord(type, content);
    if (this.writeSecret && this.writeKey.sequence >= this.rotationThreshold()) {
      const keyUpdate = this.sendKeyUpdate(false);
      return concat(keyUpdate, this.writeKey.seal(type, content));
    }
    return this.writeKey.seal(type, content);
  }

  /** Records per key before rotating: the configured value, clamped below the suite's hard limit. */
  private rotationThreshold(): number {
    const hard = this.requireSuite().maxRecordsPerKey;
    return Math.max(1, Math.min(this.keyUpdateAfterRecords, hard - 1));
  }

  /**
   * RFC 8446 §4.6.3: sends KeyUpdate under the current write key, then ratchets
   *   application_traffic_secret_N+1 = HKDF-Expand-Label(application_traffic_secret_N, "traffic upd", "", Hash.length)
   * and installs its keys. Returns the KeyUpdate record.
   */
  private sendKeyUpdate(updateRequested: boolean): Uint8Array {
    const suite = this.requireSuite();
    if (!this.writeKey || !this.writeSecret) throw tlsError('ERR_TLS_INTERNAL', 'KeyUpdate without application keys');
    const record = this.writeKey.seal(ContentType.handshake, buildKeyUpdate(updateRequested));
    const next = nextTrafficSecret(suite, this.writeSecret);
    wipe(this.writeSecret);
    this.writeSecret = next;
    this.writeKey.wipe();
    this.writeKey = new RecordKey(suite, trafficKeys(suite, next));
    if (updateRequested) this.clientUpdateRequested = true;
    return record;
  }

  /**
   * End of a receive() call: one KeyUpdate answers any number of update_requested (RFC 8446 §4.6.3:
   * "respond with a single update"); otherwise, if the client's key has protected keyUpdateAfterRecords
   * records and we have not asked yet, ask it with KeyUpdate(update_requested).
   */
  private keyUpdateAfterReceive(out: CallOutput): void {
    const reply = this.keyUpdateReplyDue;
    this.keyUpdateReplyDue = false;
    if (this.st.publicState !== 'connected' || this.sentCloseNotify || !this.writeSecret) return;
    if (reply) {
      out.records.push(this.sendKeyUpdate(false));
    } else if (!this.clientUpdateRequested && this.readKey && this.readKey.sequence >= this.rotationThreshold()) {
      out.records.push(this.sendKeyUpdate(true));
    }
  }

  private fail(err: unknown, out: CallOutput): void {
    const description = alertForError(err);
    this.pendingHandshake = [];
    try {
      const alert = encodeAlert(AlertLevel.fatal, description);
      out.records.push(this.writeKey ? this.writeKey.seal(ContentType.alert, alert) : plaintextRecord(ContentType.alert, alert));
    } catch {
      // the write key is exhausted: nothing more can be sent
    }
    out.alert = { description, sentByUs: true };
    this.enterTerminal(FAILED);
  }

  private enterTerminal(s: ServerState): void {
    this.st.wipe();
    this.st = s;
    this.inbox = new Uint8Array(0);
    if (s === FAILED) this.wipeSecrets();
  }

  private wipeSecrets(): void {
    this.st.wipe();
    this.readKey?.wipe();
    this.writeKey?.wipe();
    this.readKey = undefined;
    this.writeKey = undefined;
    wipe(this.exporterSecret, this.writeSecret);
    this.exporterSecret = undefined;
    this.writeSecret = undefined;
    this.cookies.wipe();
    this.pendingHandshake = [];
  }
}

/** For tests: a server with internal options (e.g. a secret observer). Not exported from index.ts. */
export function createTlsServerWithOptions(config: TlsServerConfig, options: InternalOptions): TlsServerConnection {
  return new TlsServer(config, options);
}
