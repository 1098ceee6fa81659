/**
 * EapSession: the host end of the EAP-TLS shuttle (docs/apdu-protocol.md §3, §4). The host speaks
 * EAP-Responses, the card EAP-Requests; the host never looks inside TLS records beyond their
 * header (it only tells ChangeCipherSpec records apart, to batch them).
 *
 * - handshake(records): sends the client's records to the card, at most one non-CCS record per EAP
 *   message (CCS records batched in front), with EAP-TLS fragmentation + card ACKs for messages
 *   longer than `maxFragment`, host ACKs for the card's fragments, Identifier echo, GMT time on the
 *   first Response of a session, and the SW 7001 failure path.
 * - encrypt(type, plaintext) / decrypt(record): PROCESS-EAP-ENCRYPT / -DECRYPT after EAP-Success.
 *
 * Every operation is serialised: the EAP Identifier sequence and the card's chains need it.
 * imports apdu/, bytes/, eap/, protocol/ and host/.
 */
import { randomInt } from 'node:crypto';
import { SW, type ResponseApdu } from '../apdu/index.js';
import { concat, SetlsError, u32 } from '../bytes/index.js';
import {
  EapCode,
  EapTlsReassembler,
  EAP_TYPE_TLS,
  eapTlsAck,
  encodeEapTls,
  fragmentTls,
  isEapTlsAck,
  parseEap,
  parseEapTls,
  type EapTlsPacket,
} from '../eap/index.js';
import { DecryptFlag, EapP1, EapP2, SetlsSw, parseAlertTlv, parseSessionInfo, type SessionInfo } from '../protocol/index.js';
import type { CardClient } from './card-client.js';
import { cardError } from './errors.js';
import { Mutex } from './mutex.js';

export const CONTENT_TYPE_CCS = 20;
export const CONTENT_TYPE_ALERT = 21;
export const CONTENT_TYPE_APPLICATION_DATA = 23;
/** Largest TLS plaintext per record (RFC 8446 §5.1). */
export const MAX_PLAINTEXT = 16384;

export interface HandshakeStep {
  /** Records the card produced for the client (ServerHello flight, or the alert), concatenated. */
  readonly toClient: Uint8Array;
  /** EAP-Success: the handshake completed. */
  readonly done: boolean;
  /** The handshake failed (7001 / EAP-Failure); `toClient` holds the alert to deliver if any. */
  readonly failed: boolean;
  /** The card waits for more records from the client. */
  readonly needMore: boolean;
  /** Records not consumed because the handshake completed (or failed) before them: pass them to decrypt(). */
  readonly remaining: Uint8Array[];
  /** What the handshake negotiated, when `done` and the card sent it with its EAP-Success (`sessionInfo` option). */
  readonly info?: SessionInfo;
  /**
   * When `failed`: the description of the fatal alert the card sent (in `toClient`), as the card
   * reported it in the alert TLV `2C` of its `7001` answer (`sessionInfo` option).
   */
  readonly alert?: number;
}

export interface DecryptResult {
  readonly plaintext: Uint8Array;
  /** Records the card wants sent to the client (its close_notify, a fatal alert), concatenated. */
  readonly outRecords: Uint8Array;
  /** The client sent close_notify. */
  readonly peerClosed: boolean;
  /** The connection failed; `alert` is the alert sent or received. */
  readonly failed: boolean;
  /** The alert description, as the card reported it; undefined when the card did not say (never guessed). */
  readonly alert: number | undefined;
}

export interface EapSessionOptions {
  /** Largest TLS data per host EAP-TLS fragment during the handshake. Default 32768. */
  readonly maxFragment?: number;
  /** Identifier of the first Response. Default: random. */
  readonly initialId?: number;
  /** Bound on a reassembled card message. Default 1 MiB. */
  readonly maxMessage?: number;
  /**
   * The first Response carries PROCESS-EAP START: the card wipes its TLS session before reading it,
   * so no RESET-STATE exchange is needed before a handshake. Default false.
   */
  readonly fresh?: boolean;
  /** Handshake Responses carry PROCESS-EAP INFO: the EAP-Success brings the session info (`HandshakeStep.info`). Default false. */
  readonly sessionInfo?: boolean;
  /**
   * DECRYPTs carry PROCESS-EAP END: the card wipes its TLS session after the answer that ends it
   * (the client's close_notify, a failure), so no RESET-STATE exchange is needed after the session
   * (`cardWiped`). A card that refuses the flag (6A86) gets the DECRYPT again without it. Default false.
   */
  readonly endOnClose?: boolean;
  /**
   * Handshake Responses carry PROCESS-EAP FOLD: the card's answer with its last records (TLS 1.3
   * tickets, TLS 1.2 CCS + Finished) also brings the EAP-Success, so the ACK exchange after them is
   * not needed. A card that refuses the flag (6A86) gets the Response again without it, and the
   * session ACKs as before. Default false.
   */
  readonly foldSuccess?: boolean;
}

type Phase = 'handshake' | 'failing' | 'connected' | 'failed' | 'closed';

function protocolError(message: string): SetlsError {
  return new SetlsError('ERR_HOST_EAP_PROTOCOL', message);
}

/** Groups records into EAP messages: any CCS records, then at most one other record. */
export function groupRecords(records: readonly Uint8Array[]): Uint8Array[][] {
  const groups: Uint8Array[][] = [];
  let cur: Uint8Array[] = [];
  for (const r of records) {
    cur.push(r);
    if (r[0] !== CONTENT_TYPE_CCS) {
      groups.push(cur);
      cur = [];
    }
  }
  if (cur.length) groups.push(cur);
  return groups;
}

export class EapSession {
  private id: number;
  private first = true;
  private phaseValue: Phase = 'handshake';
  private readonly maxFragment: number;
  private readonly reassembler: EapTlsReassembler;
  private readonly lock = new Mutex();
  /** START still to be sent (on the first PROCESS-EAP of the session only). */
  private startPending: boolean;
  private readonly infoFlag: number;
  /** Session info the card appended to its EAP-Success. */
  private info: SessionInfo | undefined;
  /** The alert the card reported sending with its 7001 answer. */
  private alertSent: number | undefined;
  /** P1 END on DECRYPTs (0: not asked, or the card refused it). */
  private endFlag: number;
  /** P1 FOLD on handshake Responses (0: not asked, or the card refused it). */
  private foldFlag: number;
  private wiped = false;

  constructor(
    private readonly card: CardClient,
    opts: EapSessionOptions = {},
  ) {
    this.maxFragment = opts.maxFragment ?? 32768;
    if (!Number.isInteger(this.maxFragment) || this.maxFragment < 16 || this.maxFragment > 65000) {
      throw new RangeError('maxFragment must be an integer in 16..65000');
    }
    const id = opts.initialId ?? randomInt(256);
    if (!Number.isInteger(id) || id < 0 || id > 255) throw new RangeError('initialId must be a byte');
    this.id = id;
    this.reassembler = new EapTlsReassembler(opts.maxMessage ?? 1 << 20);
    this.startPending = opts.fresh === true;
    this.infoFlag = opts.sessionInfo === true ? EapP1.info : 0;
    this.endFlag = opts.endOnClose === true ? EapP1.end : 0;
    this.foldFlag = opts.foldSuccess === true ? EapP1.fold : 0;
  }

  /** The card wiped this session itself (END on the DECRYPT that ended it): no RESET-STATE is owed. */
  get cardWiped(): boolean {
    return this.wiped;
  }

  get phase(): Phase {
    return this.phaseValue;
  }

  /** The Identifier the next Response will carry. */
  get identifier(): number {
    return this.id;
  }

  /**
   * Sends one Response and returns the parsed card answer. 9000 and 7001 carry an EAP packet; any
   * other SW is a CardError. Updates the Identifier to echo the card's Request.
   */
  private async exchange(packet: Uint8Array, p2: number = EapP2.handshakeOrDecrypt): Promise<{ sw: number; code: number; tls?: EapTlsPacket; folded?: boolean }> {
    // Flags only during the handshake (PROCESS-EAP proper); START on the session's first Response only.
    let p1 = p2 !== 0 ? 0 : this.phaseValue === 'handshake' ? (this.startPending ? EapP1.start : 0) | this.infoFlag | this.foldFlag : this.phaseValue === 'connected' ? this.endFlag : 0;
    let r: ResponseApdu = await this.card.processEap(packet, p2, p1);
    if (r.sw === SW.wrongP1P2 && (p1 & (EapP1.end | EapP1.fold)) !== 0) {
      // a card without END (on a DECRYPT) or FOLD (on a handshake Response) — P1 is checked before
      // the data is read: the same Response without the flag sent, and that flag no more (RESET-STATE
      // after the session, an ACK after the card's last records); the other one is still asked for
      if (p1 & EapP1.end) this.endFlag = 0;
      if (p1 & EapP1.fold) this.foldFlag = 0;
      p1 &= ~(EapP1.end | EapP1.fold);
      r = await this.card.processEap(packet, p2, p1);
    }
    this.startPending = false;
    if (r.sw !== SW.ok && r.sw !== SetlsSw.authFailure && r.sw !== SetlsSw.handshakeDone) throw cardError(p2 ? 'PROCESS-EAP-ENCRYPT' : 'PROCESS-EAP', r.sw);
    let code: number;
    let tls: EapTlsPacket | undefined;
    let folded = false;
    try {
      const eap = parseEap(r.data);
      code = eap.code;
      if (code === EapCode.request) {
        if (eap.type !== EAP_TYPE_TLS) throw protocolError(`the card sent an EAP-Request of type ${eap.type}`);
        tls = parseEapTls(r.data);
      } else if (code !== EapCode.success && code !== EapCode.failure) {
        throw protocolError(`the card sent EAP code ${code}`);
      }
      let id = eap.id;
      let trailing = eap.trailing;
      if (trailing.length > 0 && code === EapCode.request && r.sw === SW.ok && trailing[0] === EapCode.success) {
        // FOLD: the EAP-Request with the card's last records, then the EAP-Success (Identifier + 1)
        if (!(p1 & EapP1.fold)) throw protocolError('the card sent an EAP-Success after its Request unasked');
        const success = parseEap(trailing);
        if (success.code !== EapCode.success || success.id !== ((eap.id + 1) & 0xff)) throw protocolError('malformed EAP-Success after the card\'s last records');
        folded = true;
        id = success.id;
        trailing = success.trailing;
      }
      if (trailing.length > 0) {
        if (!(p1 & EapP1.info)) throw protocolError('the card sent bytes beyond the EAP Length unasked');
        if (code === EapCode.success || folded) this.info = parseSessionInfo(trailing);
        else if (r.sw === SetlsSw.authFailure) this.alertSent = parseAlertTlv(trailing).description;
        else throw protocolError('the card sent bytes beyond the EAP Length of a Request that is not a failure (7001)');
      }
      this.id = id;
    } catch (e) {
      if (e instanceof SetlsError && e.code === 'ERR_HOST_EAP_PROTOCOL') throw e;
      throw new SetlsError('ERR_HOST_EAP_PROTOCOL', `malformed EAP answer from the card: ${(e as Error).message}`, { cause: e });
    }
    return { sw: r.sw, code, ...(tls ? { tls } : {}), ...(folded ? { folded } : {}) };
  }

  /**
   * Sends a TLS message as one or more EAP-TLS fragments (waiting for the card's ACK after each
   * fragment with M), then reads the card's whole answer (ACKing its fragments).
   */
  private async sendMessage(
    data: Uint8Array,
    p2: number,
    opts: { fragment: boolean; trailing?: Uint8Array | undefined },
  ): Promise<{ sw: number; code: number; data?: Uint8Array; folded?: boolean }> {
    // ENCRYPT/DECRYPT messages (≤ 16 645 bytes) always travel in one EAP packet (§4).
    const frags = fragmentTls(data, opts.fragment ? this.maxFragment : 65000);
    const trailing = opts.trailing;
    let ans: { sw: number; code: number; tls?: EapTlsPacket; folded?: boolean } | undefined;
    for (let i = 0; i < frags.length; i++) {
      const f = frags[i]!;
      const pkt = encodeEapTls({
        code: EapCode.response,
        id: this.id,
        flags: f.flags,
        ...(f.tlsLength !== undefined ? { tlsLength: f.tlsLength } : {}),
        data: f.data,
        ...(i === 0 && trailing ? { trailing } : {}),
      });
      ans = await this.exchange(pkt, p2);
      if (i < frags.length - 1) {
        if (ans.sw === SW.ok && ans.tls && isEapTlsAck(ans.tls)) continue;
        break; // the card answered before the last fragment (a failure): interpret it below
      }
    }
    return this.readAnswer(ans!);
  }

  /** Collects the card's answer, ACKing fragments with M; returns its code and whole TLS data. */
  private async readAnswer(first: { sw: number; code: number; tls?: EapTlsPacket; folded?: boolean }): Promise<{ sw: number; code: number; data?: Uint8Array; folded?: boolean }> {
    let ans = first;
    this.reassembler.reset();
    for (;;) {
      if (ans.code !== EapCode.request || !ans.tls) return { sw: ans.sw, code: ans.code };
      if (isEapTlsAck(ans.tls) && !this.reassembler.inProgress) return { sw: ans.sw, code: ans.code, data: new Uint8Array(0), ...(ans.folded ? { folded: true } : {}) };
      let whole: Uint8Array | undefined;
      try {
        whole = this.reassembler.push(ans.tls);
      } catch (e) {
        throw new SetlsError('ERR_HOST_EAP_PROTOCOL', `bad fragment from the card: ${(e as Error).message}`, { cause: e });
      }
      if (whole !== undefined) return { sw: ans.sw, code: ans.code, data: whole, ...(ans.folded ? { folded: true } : {}) };
      if (ans.folded) throw protocolError('the card ended the handshake on a fragment that is not its last');
      if (ans.sw !== SW.ok) throw protocolError(`the card sent a fragment with SW ${ans.sw.toString(16)}`);
      ans = await this.exchange(eapTlsAck(EapCode.response, this.id));
    }
  }

  /**
   * One handshake step: the client's records (whole TLS records, in order) in; the card's records
   * for the client out. `gmtTime` (Unix seconds) is appended to the first Response of the session.
   */
  handshake(records: readonly Uint8Array[], gmtTime?: number): Promise<HandshakeStep> {
    return this.lock.run(async () => {
      if (!Array.isArray(records) || records.some((r) => !(r instanceof Uint8Array) || r.length < 5)) {
        throw new TypeError('handshake() takes an array of whole TLS records');
      }
      if (this.phaseValue !== 'handshake') throw new SetlsError('ERR_HOST_STATE', `handshake() in phase ${this.phaseValue}`);
      if (gmtTime !== undefined && (!Number.isInteger(gmtTime) || gmtTime < 0 || gmtTime > 0xffffffff)) {
        throw new RangeError('gmtTime must be Unix seconds in 0..2^32-1');
      }
      const out: Uint8Array[] = [];
      const remaining: Uint8Array[] = [];
      let done = false;
      let failed = false;
      for (const group of groupRecords(records)) {
        if (done || failed) {
          remaining.push(...group);
          continue;
        }
        const trailing = this.first && gmtTime !== undefined ? u32(gmtTime) : undefined;
        this.first = false;
        const ans = await this.sendMessage(concat(...group), EapP2.handshakeOrDecrypt, { fragment: true, trailing });
        if (ans.sw === SetlsSw.authFailure) {
          if (ans.data?.length) out.push(ans.data);
          failed = true;
          this.phaseValue = 'failing';
        } else if (ans.folded) {
          // FOLD: the server's last records and the EAP-Success in one answer
          if (ans.data?.length) out.push(ans.data);
          done = true;
          this.phaseValue = 'connected';
        } else if (ans.sw === SetlsSw.handshakeDone) {
          // The server's last records (TLS 1.2 CCS + Finished, TLS 1.3 tickets): ACK, then EAP-Success.
          if (ans.data?.length) out.push(ans.data);
          const fin = await this.exchange(eapTlsAck(EapCode.response, this.id));
          if (fin.code !== EapCode.success) throw protocolError(`expected EAP-Success after SW 9001, got EAP code ${fin.code}`);
          done = true;
          this.phaseValue = 'connected';
        } else if (ans.code === EapCode.success) {
          done = true;
          this.phaseValue = 'connected';
        } else if (ans.code === EapCode.failure) {
          failed = true;
          this.phaseValue = 'failed';
        } else if (ans.data?.length) {
          out.push(ans.data);
        }
      }
      return {
        toClient: concat(...out),
        done,
        failed,
        needMore: !done && !failed,
        remaining,
        ...(done && this.info ? { info: this.info } : {}),
        ...(failed && this.alertSent !== undefined ? { alert: this.alertSent } : {}),
      };
    });
  }

  /**
   * After a failed step (SW 7001) and delivery of the alert to the client: ACKs the card's last
   * Request; the card answers EAP-Failure. Harmless when there is nothing to acknowledge.
   */
  acknowledgeFailure(): Promise<void> {
    return this.lock.run(async () => {
      if (this.phaseValue !== 'failing') return;
      this.phaseValue = 'failed';
      const ans = await this.exchange(eapTlsAck(EapCode.response, this.id));
      if (ans.code !== EapCode.failure) throw protocolError(`expected EAP-Failure after the failure ACK, got code ${ans.code}`);
    });
  }

  /**
   * PROCESS-EAP-ENCRYPT: one plaintext (≤ 16384 bytes) of content type 23 (application data) or
   * 21 (alert: only close_notify `01 00`) in, one TLS record out.
   */
  encrypt(type: number, plaintext: Uint8Array): Promise<Uint8Array> {
    return this.lock.run(async () => {
      if (type !== CONTENT_TYPE_APPLICATION_DATA && type !== CONTENT_TYPE_ALERT) throw new RangeError('content type must be 23 or 21');
      if (!(plaintext instanceof Uint8Array) || plaintext.length > MAX_PLAINTEXT) throw new RangeError(`plaintext must be a Uint8Array of at most ${MAX_PLAINTEXT} bytes`);
      if (type === CONTENT_TYPE_ALERT && (plaintext.length !== 2 || plaintext[0] !== 1 || plaintext[1] !== 0)) {
        throw new RangeError('the only alert the host may encrypt is close_notify (01 00)');
      }
      if (this.phaseValue !== 'connected') throw new SetlsError('ERR_HOST_STATE', `encrypt() in phase ${this.phaseValue}`);
      const ans = await this.sendMessage(plaintext, EapP2.encrypt | type, { fragment: false });
      if (ans.sw !== SW.ok || ans.code !== EapCode.request || !ans.data || ans.data.length < 5) {
        throw protocolError(`PROCESS-EAP-ENCRYPT: unexpected answer (SW ${ans.sw.toString(16)}, code ${ans.code})`);
      }
      if (type === CONTENT_TYPE_ALERT) this.phaseValue = 'closed';
      return ans.data;
    });
  }

  /** EXPORTER: keying material of this session, computed in the card (serialised with the record layer). */
  exportKeyingMaterial(label: string, context: Uint8Array | undefined, length: number): Promise<Uint8Array> {
    return this.lock.run(async () => {
      if (this.phaseValue !== 'connected') throw new SetlsError('ERR_HOST_STATE', `exportKeyingMaterial() in phase ${this.phaseValue}`);
      return this.card.exporter(label, context, length);
    });
  }

  /** PROCESS-EAP-DECRYPT: one TLS record from the client in; plaintext and records for the client out. */
  decrypt(record: Uint8Array): Promise<DecryptResult> {
    return this.lock.run(async () => {
      if (!(record instanceof Uint8Array) || record.length < 5) throw new TypeError('decrypt() takes one whole TLS record');
      if (this.phaseValue !== 'connected') throw new SetlsError('ERR_HOST_STATE', `decrypt() in phase ${this.phaseValue}`);
      const ans = await this.sendMessage(record, EapP2.handshakeOrDecrypt, { fragment: false });
      if (ans.sw === SetlsSw.authFailure) {
        // not in the contract for DECRYPT, but handled like a handshake failure: data = the alert record
        // (the card wiped nothing on a 7001 answer: RESET-STATE stays owed)
        this.phaseValue = 'failed';
        return { plaintext: new Uint8Array(0), outRecords: ans.data ?? new Uint8Array(0), peerClosed: false, failed: true, alert: undefined };
      }
      if (ans.code !== EapCode.request || !ans.data) throw protocolError(`PROCESS-EAP-DECRYPT: unexpected EAP code ${ans.code}`);
      const d = ans.data;
      if (d.length < 4) throw protocolError(`PROCESS-EAP-DECRYPT answer of ${d.length} bytes`);
      const flags = d[0]!;
      const alert = d[1]!;
      const plainLen = (d[2]! << 8) | d[3]!;
      if (4 + plainLen > d.length) throw protocolError(`PlainLen ${plainLen} exceeds the ${d.length - 4} bytes returned`);
      const res: DecryptResult = {
        plaintext: d.slice(4, 4 + plainLen),
        outRecords: d.slice(4 + plainLen),
        peerClosed: (flags & DecryptFlag.peerClosed) !== 0,
        failed: (flags & DecryptFlag.failed) !== 0,
        alert,
      };
      if (res.failed) this.phaseValue = 'failed';
      else if (res.peerClosed) this.phaseValue = 'closed';
      // END was on this DECRYPT (endFlag is cleared when the card refused it) and the answer ended the session
      if (this.endFlag !== 0 && (res.failed || res.peerClosed)) this.wiped = true;
      return res;
    });
  }
}

