/**
 * card/applets/setls/dtls-session: one DTLS 1.2 session of the setls applet (docs/apdu-protocol.md §8), selected by RESET-STATE P2 = 01:
 * the same EAP-TLS shuttle as eap-session.ts (Identifier echo, GMT time bytes, EAP-TLS fragmentation
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
 * It extends the TLS session (eap-session.ts) and overrides only what DTLS changes: the record check of
 * the handshake, DECRYPT (dropped records), the reported version and EXPORT-SESSION.
 * The engine is the DTLS server of tls/dtls (TLS 1.2's state machine; replay window moved only after
 * the AEAD check). EXPORT-SESSION is not offered for DTLS (6985).
 * Secrets: the engine (traffic keys, master secret; dispose() wipes them), held plaintext and
 * reassembly buffers. imports bytes/, apdu/, eap/, protocol/, tls/ (api, dtls framing) and card/.
 */
import { concat, wipe } from '../../../bytes/index.js';
import { EapCode, eapTlsAck, type EapTlsPacket } from '../../../eap/index.js';
import type { TlsServerConfig, TlsServerConnection, TlsSessionInfo } from '../../../tls/api.js';
import { createDtlsServer } from '../../../tls/dtls/index.js';
import { DTLS_RECORD_HEADER_LENGTH, parseDtlsRecords } from '../../../tls/record/dtls-framing.js';
import { SW } from '../../../apdu/index.js';
import { cardErr } from '../../errors.js';
import { DecryptFlag } from '../../../protocol/index.js';
import { EapTlsSession, decryptAnswer, wholeMessage, type EapAnswer, type SessionDeps } from './eap-session.js';

/** The three DTLS suites of the RFC 7925 profile the card serves (policy `35` orders them). */
export const DTLS_SUITES: readonly number[] = [0xc0ae, 0xc02b, 0xc0a8];

export class DtlsEapSession extends EapTlsSession {
  protected override readonly kind: string = 'DTLS';
  readonly mode = 'dtls' as const;

  /** `deps.factory` must make a DTLS server (tls/dtls); the card passes its DTLS factory. */
  constructor(deps: SessionDeps) {
    super(deps);
  }

  override get info(): TlsSessionInfo | undefined {
    if (this.phaseValue !== 'authenticated' && this.phaseValue !== 'closed') return undefined;
    const i = this.engine?.info;
    return i ? { ...i, version: 0xfefd } : undefined;
  }

  /**
   * Exactly one DTLS record per EAP message (6A80 for more); bytes that are not a whole DTLS record
   * are dropped: the empty EAP-Request, nothing changed.
   */
  protected override screenHandshakeMessage(msg: Uint8Array, id: number): EapAnswer | undefined {
    const records = parseDtlsRecords(msg);
    if (records.length > 1) throw cardErr.data('more than one DTLS record in one EAP message');
    const rec = records[0];
    if (!rec || rec.raw.length !== msg.length) return { data: eapTlsAck(EapCode.request, id), sw: SW.ok };
    return undefined;
  }

  /** One whole DTLS record in; Flags `04` when the engine dropped it (epoch, replay window, AEAD). */
  protected override decrypt(pkt: EapTlsPacket, id: number): EapAnswer {
    const msg = wholeMessage(pkt);
    const records = parseDtlsRecords(msg);
    if (records.length > 1 || (records.length === 1 && records[0]!.raw.length !== msg.length)) throw cardErr.data('DECRYPT takes exactly one whole DTLS record');
    let flags = 0;
    let plain: Uint8Array = new Uint8Array(0);
    let outRecords: Uint8Array = new Uint8Array(0);
    let alert = 0;
    if (records.length === 0 || msg.length < DTLS_RECORD_HEADER_LENGTH) {
      flags = DecryptFlag.dtlsDropped; // garbage: dropped
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
      if (flags === 0 && plain.length === 0 && outRecords.length === 0) flags = DecryptFlag.dtlsDropped;
    }
    if (flags & DecryptFlag.failed) this.engine!.dispose();
    return decryptAnswer(id, flags, alert, plain, outRecords);
  }

  override exportSession(): Uint8Array {
    throw cardErr.conditions('EXPORT-SESSION is not offered for DTLS sessions');
  }
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
