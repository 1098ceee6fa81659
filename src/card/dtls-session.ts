/**
 * One DTLS 1.2 session of the card (docs/apdu-protocol.md §8), selected by RESET-STATE P2 = 01:
 * the same EAP-TLS shuttle as session.ts (Identifier echo, GMT time bytes, EAP-TLS fragmentation
 * both ways, "card needs more", SW 9001 / 7001, EAP-Success / EAP-Failure), with DTLS records inside:
 *
 *   - handshake: each EAP-Response carries exactly one DTLS record (an epoch-0 handshake record with
 *     one whole message, a ChangeCipherSpec, or an epoch-1 record as the client sent it); more than
 *     one record → 6A80; bytes that are not a DTLS record, or a record the engine drops (wrong epoch,
 *     failed tag, a message already processed) → the empty EAP-Request with 9000, nothing changed;
 *   - record layer: ENCRYPT returns one DTLS record; DECRYPT takes one whole DTLS record and answers
 *     §4's Flags ‖ Alert ‖ PlainLen ‖ Plaintext ‖ OutRecords, with Flags `04` when the record was
 *     dropped (epoch, replay window or AEAD check failed; a retransmitted handshake record).
 *
 * The engine is the DTLS server of tls/dtls (TLS 1.2's state machine; replay window moved only after
 * the AEAD check). EXPORT-SESSION is not offered for DTLS (6985).
 * Secrets: the engine (traffic keys, master secret; dispose() wipes them), held plaintext and
 * reassembly buffers. imports bytes/, apdu/, eap/, tls/ (api, dtls framing) and card/ siblings.
 */
import { SetlsError, concat, readU32, wipe } from '../bytes/index.js';
import { SW } from '../apdu/index.js';
import { EapCode, EapTlsFlag, EapTlsReassembler, eapFailure, eapSuccess, eapTlsAck, encodeEapTls, fragmentTls, isEapTlsAck, type EapTlsFragment, type EapTlsPacket } from '../eap/index.js';
import { ContentType, type TlsServerConfig, type TlsServerConnection, type TlsSessionInfo } from '../tls/api.js';
import { createDtlsServer } from '../tls/dtls/index.js';
import { DTLS_RECORD_HEADER_LENGTH, parseDtlsRecords } from '../tls/record/dtls-framing.js';
import { EAP_TLS_EXPORTER_CONTEXT, EAP_TLS_EXPORTER_LABEL, Limits } from './constants.js';
import { cardErr } from './errors.js';
import { DecryptFlag, parseResponse, type EapAnswer, type SessionDeps, type SessionPhase } from './session.js';

/** DECRYPT flag `04`: the record was dropped (§8). */
export const DTLS_DECRYPT_DROPPED = 0x04;

/** The three DTLS suites of the RFC 7925 profile the card serves (policy `35` orders them). */
export const DTLS_SUITES: readonly number[] = [0xc0ae, 0xc02b, 0xc0a8];

/** Largest plaintext of one DTLS record (a CoAP message must fit one datagram; the host keeps ≤ 1152). */
const MAX_DTLS_PLAINTEXT = 16384;

export class DtlsEapSession {
  private phaseValue: SessionPhase = 'authenticating';
  private engine: TlsServerConnection | undefined;
  private lastId: number | undefined;
  private first = true;
  private readonly reasm = new EapTlsReassembler(Limits.maxEapMessage);
  private outFrags: EapTlsFragment[] = [];
  private outBuffer: Uint8Array | undefined;
  private failurePending = false;
  private successPending = false;
  private sentClose = false;
  private heldPlain: Uint8Array[] = [];

  /** `deps.factory` must make a DTLS server (tls/dtls); the card passes its DTLS factory. */
  constructor(private readonly deps: SessionDeps) {}

  readonly mode = 'dtls' as const;

  get phase(): SessionPhase {
    return this.phaseValue;
  }

  get info(): TlsSessionInfo | undefined {
    if (this.phaseValue !== 'authenticated' && this.phaseValue !== 'closed') return undefined;
    const i = this.engine?.info;
    return i ? { ...i, version: 0xfefd } : undefined;
  }

  processEap(p2: number, data: Uint8Array): EapAnswer {
    const pkt = parseResponse(data);
    const encrypt = p2 !== 0;
    if (encrypt) {
      if (this.phaseValue !== 'authenticated' || this.sentClose) throw cardErr.conditions('ENCRYPT needs an open session after the handshake');
    } else if (this.phaseValue === 'failed') {
      if (!this.failurePending) throw cardErr.conditions('the DTLS session failed; RESET-STATE first');
    } else if (this.phaseValue === 'closed') {
      throw cardErr.conditions('the DTLS session is closed; RESET-STATE first');
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
    this.lastId = id;
    this.first = false;
    return answer;
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
    const records = parseDtlsRecords(msg);
    if (records.length > 1) throw cardErr.data('more than one DTLS record in one EAP message');
    const rec = records[0];
    // Not a (whole) DTLS record: dropped, the session is unchanged.
    if (!rec || rec.raw.length !== msg.length) return { data: eapTlsAck(EapCode.request, id), sw: SW.ok };
    const engine = this.ensureEngine();
    const out = engine.receive(msg);
    if (out.alert) {
      this.phaseValue = 'failed';
      this.heldPlain.forEach((p) => wipe(p));
      out.plaintext.forEach((p) => wipe(p));
      engine.dispose();
      if (out.records.length === 0) return { data: eapFailure(id), sw: SW.ok };
      this.failurePending = true;
      return { data: encodeEapTls({ code: EapCode.request, id, flags: EapTlsFlag.length, data: out.records }), sw: SW.authFailure };
    }
    if (out.handshakeComplete) {
      this.heldPlain.push(...out.plaintext);
      if (out.records.length === 0) {
        this.phaseValue = 'authenticated';
        return { data: eapSuccess(id), sw: SW.ok };
      }
      this.successPending = true;
      this.outBuffer = out.records;
      this.outFrags = fragmentTls(out.records, Limits.maxFragment);
      return this.nextFragment(id);
    }
    if (out.plaintext.length) {
      out.plaintext.forEach((p) => wipe(p));
      throw new SetlsError('ERR_CARD_INTERNAL', 'application data during the handshake');
    }
    if (out.records.length === 0) return { data: eapTlsAck(EapCode.request, id), sw: SW.ok };
    this.outBuffer = out.records;
    this.outFrags = fragmentTls(out.records, Limits.maxFragment);
    return this.nextFragment(id);
  }

  private nextFragment(id: number): EapAnswer {
    const f = this.outFrags.shift()!;
    const data = encodeEapTls({ code: EapCode.request, id, flags: f.flags, ...(f.tlsLength !== undefined ? { tlsLength: f.tlsLength } : {}), data: f.data });
    if (this.outFrags.length === 0) {
      this.outBuffer = undefined;
      if (this.successPending) return { data, sw: SW.handshakeDone };
    }
    return { data, sw: SW.ok };
  }

  private encrypt(p2: number, pkt: EapTlsPacket, id: number): EapAnswer {
    const pt = wholeMessage(pkt);
    if (pt.length > MAX_DTLS_PLAINTEXT) throw cardErr.length(`ENCRYPT plaintext of ${pt.length} bytes exceeds ${MAX_DTLS_PLAINTEXT}`);
    const type = p2 & 0x7f;
    if (type === ContentType.alert && !(pt.length === 2 && pt[0] === 0x01 && pt[1] === 0x00)) {
      throw cardErr.data('ENCRYPT of an alert accepts only close_notify (01 00)');
    }
    let rec: Uint8Array;
    try {
      rec = this.engine!.encrypt(type, pt);
    } catch (e) {
      if (e instanceof SetlsError && e.code === 'ERR_TLS_STATE') throw cardErr.conditions(`ENCRYPT refused by the DTLS engine: ${e.message}`);
      throw e;
    } finally {
      wipe(pt);
    }
    if (type === ContentType.alert) this.sentClose = true;
    return { data: encodeEapTls({ code: EapCode.request, id, flags: EapTlsFlag.length, data: rec }), sw: SW.ok };
  }

  private decrypt(pkt: EapTlsPacket, id: number): EapAnswer {
    const msg = wholeMessage(pkt);
    const records = parseDtlsRecords(msg);
    if (records.length > 1 || (records.length === 1 && records[0]!.raw.length !== msg.length)) throw cardErr.data('DECRYPT takes exactly one whole DTLS record');
    let flags = 0;
    let plain: Uint8Array = new Uint8Array(0);
    let outRecords: Uint8Array = new Uint8Array(0);
    let alert = 0;
    if (records.length === 0 || msg.length < DTLS_RECORD_HEADER_LENGTH) {
      flags = DTLS_DECRYPT_DROPPED; // garbage: dropped
    } else {
      const out = this.engine!.receive(msg);
      plain = concat(...this.heldPlain, ...out.plaintext);
      this.heldPlain.forEach((p) => wipe(p));
      out.plaintext.forEach((p) => wipe(p));
      this.heldPlain = [];
      outRecords = out.records;
      if (out.peerClosed) {
        flags |= DecryptFlag.peerClosed;
        this.phaseValue = 'closed';
      }
      if (out.alert) {
        flags |= DecryptFlag.failed;
        alert = out.alert.description;
        this.phaseValue = 'failed';
      }
      if (flags === 0 && plain.length === 0 && outRecords.length === 0) flags = DTLS_DECRYPT_DROPPED;
    }
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
    if (flags & DecryptFlag.failed) this.engine!.dispose();
    return { data, sw: SW.ok };
  }

  private ensureEngine(): TlsServerConnection {
    if (!this.engine) {
      this.engine = this.deps.factory({
        entropy: this.deps.entropy,
        selectIdentity: (sni) => this.deps.selectIdentity(sni),
      });
    }
    return this.engine;
  }

  sessionKey(length: 64 | 128): Uint8Array {
    if (this.phaseValue !== 'authenticated' || !this.engine) throw cardErr.conditions('no authenticated DTLS session');
    const all = this.engine.exportKeyingMaterial(EAP_TLS_EXPORTER_LABEL, EAP_TLS_EXPORTER_CONTEXT, 128);
    const out = all.slice(0, length);
    wipe(all);
    return out;
  }

  exportSession(): Uint8Array {
    throw cardErr.conditions('EXPORT-SESSION is not offered for DTLS sessions');
  }

  exporter(label: string, context: Uint8Array | undefined, length: number): Uint8Array {
    const engine = this.engine;
    if (this.phaseValue !== 'authenticated' || !engine) throw cardErr.conditions('no authenticated DTLS session');
    if (context === undefined) throw cardErr.conditions('DTLS 1.2 exporters need a context (the no-context form is not supported)');
    try {
      return engine.exportKeyingMaterial(label, context, length);
    } catch (e) {
      if (e instanceof SetlsError && (e.code === 'ERR_TLS_STATE' || e.code === 'ERR_TLS_ARGUMENT')) throw cardErr.conditions(`EXPORTER refused by the DTLS engine: ${e.message}`);
      throw e;
    }
  }

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
      this.phaseValue = 'closed';
    }
  }
}

function wholeMessage(pkt: EapTlsPacket): Uint8Array {
  if ((pkt.flags & EapTlsFlag.more) !== 0) throw cardErr.data('record-layer messages are not EAP-TLS fragmented');
  if (pkt.tlsLength !== undefined && pkt.tlsLength !== pkt.data.length) throw cardErr.data('TLS-Message-Length does not match the data');
  return pkt.data;
}

/**
 * The card's DTLS engine for one session: the card's engine configuration (policy, PSKs, identities)
 * with the TLS 1.2 suites narrowed to the DTLS ones the policy lists (in the policy's order), DTLS 1.2
 * only, no tickets and no session-ID cache (a DTLS session always makes a full handshake).
 */
export function createCardDtlsEngine(config: TlsServerConfig): TlsServerConnection {
  const listed = (config.cipherSuites12 ?? []).filter((s) => DTLS_SUITES.includes(s));
  const { ticketKeys: _t, ticketLifetimeSeconds: _l, sessionCache: _c, ...rest } = config;
  return createDtlsServer({ ...rest, cipherSuites12: listed.length > 0 ? listed : [0xc02b] });
}
