/**
 * card/applets/setls/eap-session: one TLS session of the setls applet, driven by EAP-TLS packets (docs/apdu-protocol.md §3–§4): Identifier
 * rules, GMT time bytes, EAP-TLS fragmentation both ways, the handshake flight exchange, failure
 * (alert + 7001, then EAP-Failure after the host's ACK), and the record layer (ENCRYPT/DECRYPT).
 * The TLS engine is injected (`TlsFactory`), so this file depends only on src/tls/api.ts.
 *
 * Secrets: the engine (traffic keys; `dispose()` wipes them), held plaintext and reassembly
 * buffers (wiped on dispose). imports bytes/, apdu/, eap/, protocol/, tls/ (api, record framing) and card/.
 */
import { SetlsError, concat, readU32, wipe } from '../../../bytes/index.js';
import { SW } from '../../../apdu/index.js';
import {
  EapCode,
  EapTlsFlag,
  EapTlsReassembler,
  EAP_TYPE_TLS,
  eapFailure,
  eapSuccess,
  eapTlsAck,
  encodeEapTls,
  fragmentTls,
  isEapTlsAck,
  parseEapTls,
  type EapTlsFragment,
  type EapTlsPacket,
} from '../../../eap/index.js';
import { ContentType, type TlsEntropy, type TlsIdentity, type TlsServerConfig, type TlsServerConnection, type TlsSessionInfo } from '../../../tls/api.js';
import { MAX_FRAMED_FRAGMENT, RECORD_HEADER_LENGTH, parseRecordHeader } from '../../../tls/record/framing.js';
import { DecryptFlag, SetlsSw, encodeExportBlob, wipeExportedSession } from '../../../protocol/index.js';
import { EAP_TLS_EXPORTER_CONTEXT, EAP_TLS_EXPORTER_LABEL, Limits } from '../../constants.js';
import { CardError, cardErr } from '../../errors.js';
import type { TlsFactory } from '../../services/tls-service.js';

export type SessionPhase = 'authenticating' | 'authenticated' | 'failed' | 'closed';

export interface EapAnswer {
  readonly data: Uint8Array;
  readonly sw: number;
  /** FOLD: `data` is the EAP-Request with the last records, then the EAP-Success (the handshake is done). */
  readonly folded?: boolean;
}

export interface SessionDeps {
  readonly factory: TlsFactory;
  readonly entropy: TlsEntropy;
  selectIdentity(serverName: string | undefined): TlsIdentity | undefined;
  /** Called with the host's GMT time (Unix seconds) of the first Response; throws 6A80 on a rollback. */
  acceptTime(seconds: number): void;
}


export class EapTlsSession {
  protected phaseValue: SessionPhase = 'authenticating';
  protected engine: TlsServerConnection | undefined;
  /** Identifier of the card's last EAP packet; undefined until the first Response. */
  protected lastId: number | undefined;
  protected first = true;
  protected readonly reasm = new EapTlsReassembler(Limits.maxEapMessage);
  protected outFrags: EapTlsFragment[] = [];
  protected outBuffer: Uint8Array | undefined;
  protected failurePending = false;
  /** The handshake completed with records to deliver (SW 9001): the next Response must be the ACK. */
  protected successPending = false;
  protected sentClose = false;
  /** Plaintext that arrived with the handshake's last flight; delivered by the next DECRYPT. */
  protected heldPlain: Uint8Array[] = [];
  /** The fatal alert the card sent to end a failed handshake (reported with the 7001 answer). */
  protected alertSentValue: number | undefined;

  /** 'TLS' or 'DTLS', for messages. */
  protected readonly kind: string = 'TLS';

  constructor(protected readonly deps: SessionDeps) {}

  get phase(): SessionPhase {
    return this.phaseValue;
  }

  /** Description of the fatal alert this session sent when its handshake failed (SW 7001), else undefined. */
  get alertSent(): number | undefined {
    return this.alertSentValue;
  }

  get info(): TlsSessionInfo | undefined {
    return this.phaseValue === 'authenticated' || this.phaseValue === 'closed' ? this.engine?.info : undefined;
  }

  /**
   * PROCESS-EAP (P2 `00`) and PROCESS-EAP-ENCRYPT (P2 `80|CT`): one EAP-Response in, one EAP packet
   * out — or, with `fold` (P1 FOLD) on the answer that ends a handshake with records, the EAP-Request
   * carrying them followed by the EAP-Success its ACK would have brought.
   */
  processEap(p2: number, data: Uint8Array, fold = false): EapAnswer {
    const pkt = parseResponse(data);
    const encrypt = p2 !== 0;
    if (encrypt) {
      if (this.phaseValue !== 'authenticated' || this.sentClose) throw cardErr.conditions('ENCRYPT needs an open session after the handshake');
    } else if (this.phaseValue === 'failed') {
      if (!this.failurePending) throw cardErr.conditions(`the ${this.kind} session failed; RESET-STATE first`);
    } else if (this.phaseValue === 'closed') {
      throw cardErr.conditions(`the ${this.kind} session is closed; RESET-STATE first`);
    }
    if (this.lastId !== undefined && pkt.id !== this.lastId) {
      throw cardErr.eapDiscarded(`EAP Identifier ${pkt.id} does not echo the card's last Identifier ${this.lastId}`);
    }
    if (this.first) {
      if (pkt.trailing.length !== 0 && pkt.trailing.length !== 4) throw cardErr.data('GMT time beyond the EAP Length must be 4 bytes');
      if (pkt.trailing.length === 4) this.deps.acceptTime(readU32(pkt.trailing, 0));
    } else if (pkt.trailing.length !== 0) {
      throw cardErr.data('bytes beyond the EAP Length are only allowed (GMT time) in the first Response');
    }
    if ((pkt.flags & EapTlsFlag.start) !== 0) throw cardErr.data('the S flag is for the server only');
    const id = (pkt.id + 1) & 0xff;
    let answer: EapAnswer;
    if (encrypt) answer = this.encrypt(p2, pkt, id);
    else if (this.phaseValue === 'failed') answer = this.failureAck(pkt, id);
    else if (this.phaseValue === 'authenticated') answer = this.decrypt(pkt, id);
    else answer = this.handshake(pkt, id);
    if (fold && answer.sw === SetlsSw.handshakeDone) answer = this.foldSuccess(answer, id);
    this.lastId = answer.folded ? (id + 1) & 0xff : id;
    this.first = false;
    return answer;
  }

  /**
   * FOLD: the last fragment of the card's last records (SW 9001) and the EAP-Success that the host's
   * ACK of it would get (Identifier + 1), in one answer; the session is authenticated now.
   */
  private foldSuccess(answer: EapAnswer, id: number): EapAnswer {
    this.successPending = false;
    this.phaseValue = 'authenticated';
    return { data: concat(answer.data, eapSuccess((id + 1) & 0xff)), sw: SW.ok, folded: true };
  }

  private failureAck(pkt: EapTlsPacket, id: number): EapAnswer {
    if (!isEapTlsAck(pkt)) throw cardErr.eapDiscarded('the card sent a failure alert and waits for the ACK');
    this.failurePending = false;
    return { data: eapFailure(id), sw: SW.ok };
  }

  private handshake(pkt: EapTlsPacket, id: number): EapAnswer {
    if (this.outFrags.length > 0) {
      if (!isEapTlsAck(pkt)) throw cardErr.data('the card is sending a fragmented message: an ACK is expected');
      return this.nextFragment(id);
    }
    if (this.successPending) {
      if (!isEapTlsAck(pkt)) throw cardErr.eapDiscarded('the card delivered its last records and waits for the ACK');
      this.successPending = false;
      this.phaseValue = 'authenticated';
      return { data: eapSuccess(id), sw: SW.ok };
    }
    let msg: Uint8Array | undefined;
    try {
      msg = this.reasm.push(pkt);
    } catch (e) {
      this.reasm.reset();
      throw cardErr.data(`broken EAP-TLS fragment sequence: ${(e as Error).message}`, e);
    }
    if (msg === undefined) return { data: eapTlsAck(EapCode.request, id), sw: SW.ok };
    const early = this.screenHandshakeMessage(msg, id);
    if (early) return early;
    const engine = this.ensureEngine();
    const out = engine.receive(msg);
    if (out.alert) {
      this.phaseValue = 'failed';
      this.heldPlain.forEach((p) => wipe(p));
      out.plaintext.forEach((p) => wipe(p));
      engine.dispose();
      if (out.records.length === 0) {
        // The client's alert: nothing to deliver, the session just ends.
        return { data: eapFailure(id), sw: SW.ok };
      }
      this.failurePending = true;
      this.alertSentValue = out.alert.description;
      return { data: encodeEapTls({ code: EapCode.request, id, flags: EapTlsFlag.length, data: out.records }), sw: SetlsSw.authFailure };
    }
    if (out.handshakeComplete) {
      this.heldPlain.push(...out.plaintext);
      if (out.records.length === 0) {
        this.phaseValue = 'authenticated';
        return { data: eapSuccess(id), sw: SW.ok };
      }
      // TLS 1.2 CCS + Finished, TLS 1.3 tickets: the client needs them before it sends anything, so
      // they go out now with SW 9001; the host's ACK then gets EAP-Success.
      this.successPending = true;
      this.outBuffer = out.records;
      this.outFrags = fragmentTls(out.records, Limits.maxFragment);
      return this.nextFragment(id);
    }
    if (out.plaintext.length) {
      out.plaintext.forEach((p) => wipe(p));
      throw new SetlsError('ERR_CARD_INTERNAL', 'application data during the handshake');
    }
    if (out.records.length === 0) return { data: eapTlsAck(EapCode.request, id), sw: SW.ok }; // card needs more
    this.outBuffer = out.records;
    this.outFrags = fragmentTls(out.records, Limits.maxFragment);
    return this.nextFragment(id);
  }

  /**
   * Checks a reassembled handshake message before the engine sees it: TLS takes whole records with
   * at most one that is not a CCS (6A80 otherwise). An answer returned here ends the step.
   */
  protected screenHandshakeMessage(msg: Uint8Array, _id: number): EapAnswer | undefined {
    checkHandshakeRecords(msg);
    return undefined;
  }

  /** The next fragment of the card's output; the last one of a completed handshake carries SW 9001. */
  protected nextFragment(id: number): EapAnswer {
    const f = this.outFrags.shift()!;
    const data = encodeEapTls(f.tlsLength !== undefined ? { code: EapCode.request, id, flags: f.flags, tlsLength: f.tlsLength, data: f.data } : { code: EapCode.request, id, flags: f.flags, data: f.data });
    if (this.outFrags.length === 0) {
      this.outBuffer = undefined;
      if (this.successPending) return { data, sw: SetlsSw.handshakeDone };
    }
    return { data, sw: SW.ok };
  }

  protected encrypt(p2: number, pkt: EapTlsPacket, id: number): EapAnswer {
    const pt = wholeMessage(pkt);
    if (pt.length > Limits.maxPlaintext) throw cardErr.length(`ENCRYPT plaintext of ${pt.length} bytes exceeds ${Limits.maxPlaintext}`);
    const type = p2 & 0x7f;
    if (type === ContentType.alert && !(pt.length === 2 && pt[0] === 0x01 && pt[1] === 0x00)) {
      throw cardErr.data('ENCRYPT of an alert accepts only close_notify (01 00)');
    }
    let rec: Uint8Array;
    try {
      rec = this.engine!.encrypt(type, pt);
    } catch (e) {
      if (e instanceof SetlsError && e.code === 'ERR_TLS_STATE') throw cardErr.conditions(`ENCRYPT refused by the ${this.kind} engine: ${e.message}`);
      throw e;
    } finally {
      wipe(pt);
    }
    if (type === ContentType.alert) this.sentClose = true;
    return { data: encodeEapTls({ code: EapCode.request, id, flags: EapTlsFlag.length, data: rec }), sw: SW.ok };
  }

  protected decrypt(pkt: EapTlsPacket, id: number): EapAnswer {
    const rec = wholeMessage(pkt);
    if (rec.length < RECORD_HEADER_LENGTH) throw cardErr.data('DECRYPT needs one TLS record');
    let len: number | undefined;
    try {
      len = parseRecordHeader(rec, 0, MAX_FRAMED_FRAGMENT).length;
    } catch {
      // A header no record may have (the host's framing hands it on alone, docs/apdu-protocol.md §4):
      // the engine answers with the fatal alert it deserves under its current keys.
      len = undefined;
    }
    if (len !== undefined && rec.length !== RECORD_HEADER_LENGTH + len) throw cardErr.data('DECRYPT takes exactly one whole TLS record');
    const out = this.engine!.receive(rec);
    const plain = concat(...this.heldPlain, ...out.plaintext);
    this.heldPlain.forEach((p) => wipe(p));
    out.plaintext.forEach((p) => wipe(p));
    this.heldPlain = [];
    const records = out.records;
    let flags = 0;
    if (out.peerClosed) {
      flags |= DecryptFlag.peerClosed;
      this.phaseValue = 'closed';
    }
    if (out.alert) {
      flags |= DecryptFlag.failed;
      this.phaseValue = 'failed';
    }
    if (out.alert) this.engine!.dispose();
    return decryptAnswer(id, flags, out.alert?.description ?? 0, plain, records);
  }

  protected ensureEngine(): TlsServerConnection {
    if (!this.engine) {
      this.engine = this.deps.factory({
        entropy: this.deps.entropy,
        selectIdentity: (sni) => this.deps.selectIdentity(sni),
        alpnProtocols: ['http/1.1'],
      });
    }
    return this.engine;
  }

  /** RFC 9190 MSK ‖ EMSK (first `length` of the 128 bytes); 6985 before the handshake completed. */
  sessionKey(length: 64 | 128): Uint8Array {
    if (this.phaseValue !== 'authenticated' || !this.engine) throw cardErr.conditions(`no authenticated ${this.kind} session`);
    const all = this.engine.exportKeyingMaterial(EAP_TLS_EXPORTER_LABEL, EAP_TLS_EXPORTER_CONTEXT, 128);
    const out = all.slice(0, length);
    wipe(all);
    return out;
  }

  /**
   * EXPORT-SESSION (TLS-Tandem): the engine hands over the traffic keys and wipes itself; the session
   * is then closed (ENCRYPT/DECRYPT → 6985). 6985 unless authenticated, before the card's
   * close_notify, with no held plaintext (DECRYPT it first), and with an engine that can export.
   * The blob is secret: the caller wipes it.
   */
  exportSession(): Uint8Array {
    const engine = this.engine;
    if (this.phaseValue !== 'authenticated' || !engine || this.sentClose) throw cardErr.conditions('no open authenticated TLS session to export');
    if (this.heldPlain.length > 0) throw cardErr.conditions('application data from the client is waiting for DECRYPT');
    if (!engine.exportSession) throw cardErr.conditions('this TLS engine cannot export sessions');
    let ex;
    try {
      ex = engine.exportSession();
    } catch (e) {
      if (e instanceof SetlsError && e.code === 'ERR_TLS_STATE') throw cardErr.conditions(`EXPORT-SESSION refused by the TLS engine: ${e.message}`);
      throw e;
    }
    try {
      return encodeExportBlob(ex);
    } finally {
      wipeExportedSession(ex);
      engine.dispose();
      this.phaseValue = 'closed';
    }
  }

  /**
   * RFC 5705 / RFC 8446 §7.5 exporter of the authenticated session. `context` undefined = no context:
   * for TLS 1.3 the same as an empty one; for TLS 1.2 RFC 5705's no-context form (gnutls
   * --keymatexport). Label checks (reserved, allowed) are the caller's.
   */
  exporter(label: string, context: Uint8Array | undefined, length: number): Uint8Array {
    const engine = this.engine;
    if (this.phaseValue !== 'authenticated' || !engine) throw cardErr.conditions(`no authenticated ${this.kind} session`);
    try {
      return engine.exportKeyingMaterial(label, context, length);
    } catch (e) {
      if (e instanceof SetlsError && (e.code === 'ERR_TLS_STATE' || e.code === 'ERR_TLS_ARGUMENT')) throw cardErr.conditions(`EXPORTER refused by the ${this.kind} engine: ${e.message}`);
      throw e;
    }
  }

  /** Wipes every secret of the session (engine keys, buffers). */
  dispose(): void {
    try {
      this.engine?.dispose();
    } finally {
      this.engine = undefined;
      this.reasm.reset();
      wipe(this.outBuffer);
      this.heldPlain.forEach((p) => wipe(p));
      this.heldPlain = [];
      this.outFrags = [];
      this.outBuffer = undefined;
      this.successPending = false;
      this.alertSentValue = undefined;
      this.phaseValue = 'closed';
    }
  }
}

/**
 * The DECRYPT answer (§4): an EAP-Request whose TLS data is Flags ‖ Alert ‖ PlainLen ‖ Plaintext ‖
 * OutRecords. Wipes `plain` (and the body) once encoded.
 */
export function decryptAnswer(id: number, flags: number, alert: number, plain: Uint8Array, outRecords: Uint8Array): EapAnswer {
  if (plain.length > 0xffff) throw new SetlsError('ERR_CARD_INTERNAL', 'DECRYPT plaintext exceeds 65535 bytes');
  const body = new Uint8Array(4 + plain.length + outRecords.length);
  body[0] = flags;
  body[1] = alert;
  body[2] = plain.length >> 8;
  body[3] = plain.length & 0xff;
  body.set(plain, 4);
  body.set(outRecords, 4 + plain.length);
  wipe(plain);
  const data = encodeEapTls({ code: EapCode.request, id, flags: EapTlsFlag.length, data: body });
  wipe(body);
  return { data, sw: SW.ok };
}

/**
 * Checks an EAP packet before anything else: 6A80 for bad framing (Length beyond the data or too
 * short, reserved flags), 7000 for a packet the card silently discards (not a Response, not EAP-TLS).
 */
export function parseResponse(b: Uint8Array): EapTlsPacket {
  if (b.length < 4) throw cardErr.data(`EAP packet of ${b.length} bytes`);
  const length = (b[2]! << 8) | b[3]!;
  if (length > b.length) throw cardErr.data(`EAP Length ${length} exceeds the ${b.length} bytes received`);
  if (length < 4) throw cardErr.data(`EAP Length ${length} is shorter than the header`);
  if (b[0] !== EapCode.response) throw cardErr.eapDiscarded(`EAP code ${b[0]} is not a Response`);
  if (length < 5) throw cardErr.data('EAP Response without a Type');
  if (b[4] !== EAP_TYPE_TLS) throw cardErr.eapDiscarded(`EAP type ${b[4]} is not EAP-TLS`);
  if (length < 6) throw cardErr.data('EAP-TLS Response without Flags');
  try {
    return parseEapTls(b);
  } catch (e) {
    throw cardErr.data(`malformed EAP-TLS packet: ${(e as Error).message}`, e);
  }
}

/** Record-layer packets are never fragmented: no M flag, and L (when present) is the data length. */
export function wholeMessage(pkt: EapTlsPacket): Uint8Array {
  if ((pkt.flags & EapTlsFlag.more) !== 0) throw cardErr.data('record-layer messages are not EAP-TLS fragmented');
  if (pkt.tlsLength !== undefined && pkt.tlsLength !== pkt.data.length) throw cardErr.data('TLS-Message-Length does not match the data');
  return pkt.data;
}

/**
 * §3 "Records per Response": whole records, any CCS records first, at most one other record.
 * A header that does not parse is left to the engine (which answers with a fatal alert); a last
 * record cut short is allowed (the card then asks for more).
 */
function checkHandshakeRecords(msg: Uint8Array): void {
  let o = 0;
  let others = 0;
  while (o + RECORD_HEADER_LENGTH <= msg.length) {
    let type: number;
    let len: number;
    try {
      ({ type, length: len } = parseRecordHeader(msg, o, MAX_FRAMED_FRAGMENT));
    } catch {
      return;
    }
    if (type === ContentType.changeCipherSpec) {
      if (others > 0) throw cardErr.data('a ChangeCipherSpec record after a handshake record');
    } else if (++others > 1) {
      throw cardErr.data('more than one non-CCS record in one EAP message');
    }
    o += RECORD_HEADER_LENGTH + len;
  }
}

