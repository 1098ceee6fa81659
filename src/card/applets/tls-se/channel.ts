/**
 * card/applets/tls-se/channel: the TLS-SE applet's state machine on one logical channel
 * (draft-urien-tls-se; ../shared/reference/urien-drafts.md §7; applet.ts puts it on the card OS): a TLS 1.3 server
 * inside the card, driven by two APDUs instead of EAP-TLS. It behaves like Urien's Java Card applet
 * (purien/TLS-SE `src/tls_se.java`, commit a2ad601; "Java:" below quotes it) wherever a host can
 * tell the difference:
 *
 *   RECV  00 D8 P1 P2 Lc <fragment ≤ 255 (hosts use 240)>
 *         P1: 00 handshake, 01 decrypt, 02 encrypt, FF echo; P2: bit0 first fragment, bit1 last
 *         (03 = a single fragment); `00 D8 00 00 00` with no data = RESET of the TLS state machine.
 *   SEND  00 C0 00 00 Le     (GET RESPONSE) reads more of the card's output.
 *
 * Input: ONE receive buffer of 512 bytes (Java: `RXSIZE = 512`; process() case INS_SEND:
 * `if ((short)(VS[RXPTR] + len) > RXSIZE) ISOException.throwIt(SW_ERROR_WRITE)` → 6D02). On the last
 * fragment the buffer must hold exactly ONE TLS record, header included (Java: `len =
 * Util.makeShort(RX[3],RX[4]); if ((short)(len+5) != VS[RXPTR]) ISOException.throwIt(SW_ERROR_WRITE)`
 * → 6D02), except for encrypt once the session is open (`plaintext ‖ content type`) and echo. So a
 * client's ChangeCipherSpec and Finished take two RECVs (Java tls() S_CCS: a CCS record answers 9000,
 * a 0x17 record goes straight on to S_CFINISHED → 9001).
 *
 * Output: one byte stream per RECV, in blocks of at most 240 bytes (Java: `MAXRXSIZE = 240`). The
 * RECV itself answers with the first block as DATA when its unit fits (Java send(): `if (VS[RXPTR]
 * <= MAXRXSIZE) … apdu.setOutgoingAndSend(…); ISOException.throwIt(sw)`), or with a bare `9FF0` when
 * it does not (`ISOException.throwIt(Util.makeShort(SW1M, MAXRXSIZE))`). `9Fxx` always means "xx more
 * bytes of this output: SEND with Le = xx" (Java recv(): `if (len != VS[TXLEN]) 6C…` — Le must be
 * exactly xx, else `6Cxx` and nothing is lost); after the last block comes the final status word. A
 * SEND with nothing pending answers 9000 (Java recv(): `ISOException.throwIt(ISO7816.SW_NO_ERROR)`).
 * Units: handshake — one TLS record each, ServerHello, EncryptedExtensions, (Certificate,
 * CertificateVerify,) Finished, no CCS (Java tls(): S_READY sends ServerHello with `9F1C`, S_EXTENSION
 * EncryptedExtensions with `9F3A`, S_SFINISHED Finished with 9000); decrypt — `plaintext ‖ content
 * type` (Java tls_read()); encrypt — the record (Java tls_write()).
 *
 * Final status words: 9000 ok / the card needs more records; 9001 session opened (Java `SW_TLS_OPEN`);
 * 9002 session closed; 6D16 TLS error (Java `SW_TLS_ERROR`); 6D02 input does not fit / not one record.
 *
 * setls extensions (a host written for the real applet never meets them except where noted):
 *   - certificate mode (the card's identities, by SNI) next to external PSK; the Certificate record
 *     may exceed 240 bytes (it is sent in 9Fxx blocks like any long output);
 *   - 6D16 carries the alert record(s) for the client as data (Java: a bare 6D16);
 *   - decrypt of a record that is not application data returns `records ‖ content type`: records the
 *     card sends in reply (its KeyUpdate after the client's update_requested; its close_notify after
 *     the client's, final SW 9002, `… ‖ 01 00 15`) and the type 16 (handshake, consumed by the card) or
 *     the alert `lvl desc 15`. Records the engine makes while delivering application data (its own
 *     KeyUpdate request) wait and go out in front of the next output that carries records.
 *
 * The engine is src/tls via the card services (`host.newEngine()`, applet.ts), configured by
 * config.ts (one record per handshake message, no middlebox CCS).
 *
 * Secrets: the engine (dispose() wipes it), the receive buffer (plaintext on encrypt), the output
 * (plaintext on decrypt): all wiped on reset and once read.
 * imports bytes/, apdu/, protocol/, tls/ (api types) and card/.
 */
import { concat, wipe } from '../../../bytes/index.js';
import { SW } from '../../../apdu/index.js';
import type { TlsOutput, TlsServerConnection } from '../../../tls/api.js';
import { TLS_SE_BLOCK, TLS_SE_DEFAULT_PSK_IDENTITY, TLS_SE_MAX_ENCRYPT_INPUT, TLS_SE_RX_SIZE, TlsSeIns, TlsSeMode, TlsSeP2, TlsSePinRef, TlsSeSetKey, TlsSeSw } from '../../../protocol/index.js';
import { CardError, cardErr } from '../../errors.js';
import type { AppletCommand, Reply } from '../../os/applet.js';

const CONTENT_HANDSHAKE = 0x16;
const CONTENT_ALERT = 0x15;
const CONTENT_APPLICATION_DATA = 0x17;

/** What the card gives the applet: its TLS engine, PIN checks and key storage. */
export interface TlsSeHost {
  /** A fresh TLS 1.3 server connection for one session. */
  newEngine(): TlsServerConnection;
  /** Whether the user / operator PIN is verified (the card's PINs are shared with the setls applet). */
  isVerified(which: 'user' | 'operator'): boolean;
  /** VERIFY with the draft's raw ASCII PIN; returns the status word (9000, 63Cx, 6983, 6A80). */
  verifyPin(which: 'user' | 'operator', ascii: Uint8Array): number;
  /** Installs the external PSK (operator). */
  setPsk(identity: Uint8Array, key: Uint8Array): void;
  /** A handshake completed (the security domain's audit log); `engine` is the session's. */
  sessionOpened?(engine: TlsServerConnection): void;
  /** The session ends (RESET, a new SELECT, card reset). */
  sessionEnded?(): void;
}

type Phase = 'idle' | 'handshake' | 'open' | 'closed' | 'failed';

const EMPTY = new Uint8Array(0);

/** Splits concatenated TLS records on their headers (the engine always emits whole records). */
export function splitRecords(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let o = 0;
  while (o + 5 <= b.length) {
    const len = (b[o + 3]! << 8) | b[o + 4]!;
    const end = Math.min(b.length, o + 5 + len);
    out.push(b.slice(o, end));
    o = end;
  }
  if (o < b.length) out.push(b.slice(o));
  return out;
}

function writeError(message: string): CardError {
  return new CardError('ERR_CARD_TLS_SE_INPUT', `TLS-SE RECV: ${message}`, TlsSeSw.writeError);
}

export class TlsSeChannel {
  private phase: Phase = 'idle';
  private engine: TlsServerConnection | undefined;
  /** The receive buffer (Java RX) and how much of it holds input (Java VS[RXPTR]). */
  private readonly rx = new Uint8Array(TLS_SE_RX_SIZE);
  private rxLen = 0;
  /** Output units (records, or one decrypt result) not yet read, the read offset in the first. */
  private units: Uint8Array[] = [];
  private unitOff = 0;
  /** The length of the next block, announced as `9Fxx` (0: nothing announced). */
  private announced = 0;
  private finalSw: number = SW.ok;
  /** Plaintext the engine delivered during the handshake, given out with the next decrypt. */
  private heldPlain: Uint8Array[] = [];
  /** Records made while delivering application data: they go out first with the next records. */
  private queued: Uint8Array[] = [];

  constructor(private readonly host: TlsSeHost) {}

  private get failed(): boolean {
    return this.phase === 'failed';
  }

  /** The session phase (diagnostics, tests). */
  get state(): Phase {
    return this.phase;
  }

  /** Card reset, power-off or a new SELECT: the TLS session and all buffers are wiped. */
  reset(): void {
    if (this.phase !== 'idle') this.host.sessionEnded?.();
    this.engine?.dispose();
    this.engine = undefined;
    this.phase = 'idle';
    this.dropRx();
    this.dropOutput();
    wipe(...this.heldPlain, ...this.queued);
    this.heldPlain = [];
    this.queued = [];
  }

  /** One APDU for the applet (SELECT is handled by the card OS). Throws CardError for error SWs. */
  process(cmd: AppletCommand): Reply {
    const cls = cmd.cls;
    if (!cls || cls.kind !== 'iso' || cls.sm || cls.chaining) throw new CardError('ERR_CARD_CLA', `TLS-SE: CLA 0x${cmd.cla.toString(16)} not supported`, SW.claNotSupported);
    switch (cmd.ins) {
      case TlsSeIns.send:
        return this.send(cmd);
      case TlsSeIns.recv:
        this.dropOutput();
        return this.recv(cmd);
      case TlsSeIns.verifyPin: {
        this.dropOutput();
        if (cmd.p1 !== 0 || (cmd.p2 !== TlsSePinRef.user && cmd.p2 !== TlsSePinRef.admin)) throw cardErr.p1p2('TLS-SE VERIFY: P1 00, P2 00 (user) or 01 (admin)');
        const which = cmd.p2 === TlsSePinRef.admin ? 'operator' : 'user';
        if (cmd.data.length === 0) return { data: EMPTY, sw: this.host.isVerified(which) ? SW.ok : SW.securityNotSatisfied };
        return { data: EMPTY, sw: this.host.verifyPin(which, cmd.data) };
      }
      case TlsSeIns.setKey:
        this.dropOutput();
        return this.setKey(cmd);
      default:
        this.dropOutput();
        throw new CardError('ERR_CARD_INS', `TLS-SE: INS 0x${cmd.ins.toString(16)} not supported`, SW.insNotSupported);
    }
  }

  /** `00 85 00 0A 23 01 00 20 <32-byte PSK> [identity]` (operator PIN). */
  private setKey(cmd: AppletCommand): Reply {
    if (cmd.p1 !== 0x00 || cmd.p2 !== TlsSeSetKey.p2) throw cardErr.p1p2('SET-KEY: P1 00 P2 0A');
    if (!this.host.isVerified('operator')) throw cardErr.security('SET-KEY needs the admin (operator) PIN');
    const d = cmd.data;
    if (d.length < 3 || d[0] !== TlsSeSetKey.keyTag) throw cardErr.data('SET-KEY data: 01 len(2) key [identity]');
    const len = (d[1]! << 8) | d[2]!;
    if (len < 16 || len > 64 || d.length < 3 + len) throw cardErr.length('SET-KEY: key of 16–64 bytes');
    const key = d.slice(3, 3 + len);
    const id = d.length > 3 + len ? d.slice(3 + len) : new TextEncoder().encode(TLS_SE_DEFAULT_PSK_IDENTITY);
    if (id.length < 1 || id.length > 64) throw cardErr.data('SET-KEY: identity of 1–64 bytes');
    this.host.setPsk(id, key);
    wipe(key);
    return { data: EMPTY, sw: SW.ok };
  }

  private recv(cmd: AppletCommand): Reply {
    if (cmd.data.length === 0) {
      // `00 D8 00 00 00`: RESET of the TLS state machine (Java: `if (len == 0) { reset_tls(); … 9000 }`).
      if (cmd.p1 !== 0 || cmd.p2 !== 0) throw cardErr.length('RECV without data is only the RESET 00 D8 00 00 00');
      this.reset();
      return { data: EMPTY, sw: SW.ok };
    }
    if (!this.host.isVerified('user')) {
      this.dropRx();
      throw cardErr.security('TLS-SE: user PIN not verified');
    }
    const mode = cmd.p1;
    if ((mode > TlsSeMode.encrypt && mode !== TlsSeMode.echo) || (cmd.p2 & ~(TlsSeP2.first | TlsSeP2.last)) !== 0) {
      this.dropRx();
      throw cardErr.p1p2('RECV: P1 00/01/02/FF, P2 bits 0–1');
    }
    if (cmd.p2 & TlsSeP2.first) this.dropRx(); // Java: `if ((P2 & 1) == 1) VS[RXPTR] = 0`
    if (this.rxLen + cmd.data.length > TLS_SE_RX_SIZE) {
      this.dropRx();
      throw writeError(`input longer than the ${TLS_SE_RX_SIZE}-byte receive buffer`);
    }
    this.rx.set(cmd.data, this.rxLen);
    this.rxLen += cmd.data.length;
    if ((cmd.p2 & TlsSeP2.last) === 0) return { data: EMPTY, sw: SW.ok };
    const input = this.rx.slice(0, this.rxLen);
    this.dropRx();
    try {
      if (mode === TlsSeMode.echo) return this.output([input.slice()], SW.ok);
      // Java: unless `(VS[MODE] == 2) && (VS[STATE] == S_OPEN)`, the buffer must be one whole record.
      if (!(mode === TlsSeMode.encrypt && this.phase === 'open')) {
        if (input.length < 5) throw writeError(`${input.length} bytes are not a TLS record`);
        const len = (input[3]! << 8) | input[4]!;
        if (len + 5 !== input.length) throw writeError(`one RECV carries exactly one TLS record (header says ${len + 5} bytes, got ${input.length})`);
      }
      switch (mode) {
        case TlsSeMode.handshake:
          return this.handshake(input);
        case TlsSeMode.decrypt:
          return this.decrypt(input);
        default:
          return this.encrypt(input);
      }
    } finally {
      wipe(input);
    }
  }

  private handshake(record: Uint8Array): Reply {
    if (this.phase === 'idle') {
      this.engine = this.host.newEngine();
      this.phase = 'handshake';
    }
    if (this.phase !== 'handshake' || !this.engine) throw cardErr.conditions(`TLS-SE: handshake data in phase ${this.phase}`);
    const out = this.feed(record);
    const records = splitRecords(out.records);
    if (this.failed) return this.output(records, TlsSeSw.tlsError);
    this.heldPlain.push(...out.plaintext);
    if (out.peerClosed) {
      this.phase = 'closed';
      return this.output(records, TlsSeSw.sessionClosed);
    }
    if (out.handshakeComplete) {
      this.phase = 'open';
      this.host.sessionOpened?.(this.engine);
      return this.output(records, TlsSeSw.sessionOpen);
    }
    return this.output(records, SW.ok);
  }

  private decrypt(record: Uint8Array): Reply {
    if (this.phase !== 'open' || !this.engine) throw cardErr.conditions(`TLS-SE: decrypt in phase ${this.phase}`);
    const out = this.feed(record);
    const records = splitRecords(out.records);
    if (this.failed) return this.output([...this.takeQueued(), ...records], TlsSeSw.tlsError);
    const plain = [...this.heldPlain, ...out.plaintext];
    this.heldPlain = [];
    if (out.peerClosed) {
      // The client's close_notify: our close_notify record(s), then the alert ‖ 15.
      this.phase = 'closed';
      wipe(...plain);
      return this.output([concat(...this.takeQueued(), ...records, Uint8Array.of(0x01, 0x00, CONTENT_ALERT))], TlsSeSw.sessionClosed);
    }
    if (plain.length > 0) {
      // Application data: `plaintext ‖ 17` (Java tls_read()). Records made meanwhile wait their turn.
      this.queued.push(...records);
      const unit = concat(...plain, Uint8Array.of(CONTENT_APPLICATION_DATA));
      wipe(...plain);
      return this.output([unit], SW.ok);
    }
    // A handshake message the card consumed (KeyUpdate): the records it sends in reply ‖ 16.
    return this.output([concat(...this.takeQueued(), ...records, Uint8Array.of(CONTENT_HANDSHAKE))], SW.ok);
  }

  private encrypt(input: Uint8Array): Reply {
    if (this.phase !== 'open' || !this.engine) throw cardErr.conditions(`TLS-SE: encrypt in phase ${this.phase}`);
    if (input.length > TLS_SE_MAX_ENCRYPT_INPUT) {
      // Java: the tag would be written past RX[511] (ArrayIndexOutOfBounds → 6F00).
      throw new CardError('ERR_CARD_TLS_SE_INPUT', `TLS-SE encrypt: plaintext ‖ type of ${input.length} bytes; the record must fit the ${TLS_SE_RX_SIZE}-byte buffer (≤ ${TLS_SE_MAX_ENCRYPT_INPUT})`, SW.internalError);
    }
    const ct = input[input.length - 1]!;
    const pt = input.subarray(0, input.length - 1);
    if (ct === CONTENT_ALERT) {
      if (pt.length !== 2 || pt[0] !== 0x01 || pt[1] !== 0x00) throw cardErr.data('TLS-SE encrypt: the only alert is close_notify (01 00 15)');
      const rec = this.seal(CONTENT_ALERT, pt);
      this.phase = 'closed';
      return this.output([...this.takeQueued(), ...splitRecords(rec)], TlsSeSw.sessionClosed);
    }
    if (ct !== CONTENT_APPLICATION_DATA) throw cardErr.data('TLS-SE encrypt: content type must be 17 (application data) or 15 (close_notify)');
    const rec = this.seal(CONTENT_APPLICATION_DATA, pt);
    return this.output([...this.takeQueued(), ...splitRecords(rec)], SW.ok);
  }

  private seal(type: number, pt: Uint8Array): Uint8Array {
    try {
      return this.engine!.encrypt(type, pt);
    } catch (e) {
      throw new CardError('ERR_CARD_TLS', `TLS-SE encrypt: ${(e as Error).message}`, TlsSeSw.encryptError, { cause: e });
    }
  }

  private takeQueued(): Uint8Array[] {
    const q = this.queued;
    this.queued = [];
    return q;
  }

  private feed(input: Uint8Array): TlsOutput {
    let out: TlsOutput;
    try {
      out = this.engine!.receive(input);
    } catch (e) {
      this.phase = 'failed';
      throw new CardError('ERR_CARD_TLS', `TLS-SE: ${(e as Error).message}`, TlsSeSw.tlsError, { cause: e });
    }
    if (out.alert && out.alert.description !== 0) this.phase = 'failed';
    else if (this.engine!.state === 'failed') this.phase = 'failed';
    return out;
  }

  /**
   * Queues the output and answers the RECV: the first unit as data when it fits one block, else a
   * bare `9FF0`; then `9Fxx` for the next block or the final status word (Java send()).
   */
  private output(units: Uint8Array[], finalSw: number): Reply {
    this.units = units.filter((u) => u.length > 0);
    this.unitOff = 0;
    this.finalSw = finalSw;
    const first = this.units[0];
    if (!first) return this.finish(EMPTY);
    if (first.length > TLS_SE_BLOCK) {
      this.announced = TLS_SE_BLOCK;
      return { data: EMPTY, sw: TlsSeSw.more | TLS_SE_BLOCK };
    }
    return this.block(first.length);
  }

  /** Takes the next `n` bytes of the current unit; answers them with `9Fxx` (more) or the final SW. */
  private block(n: number): Reply {
    const cur = this.units[0]!;
    const data = cur.slice(this.unitOff, this.unitOff + n);
    this.unitOff += n;
    if (this.unitOff >= cur.length) {
      wipe(cur);
      this.units.shift();
      this.unitOff = 0;
    }
    const next = this.units[0];
    if (!next) return this.finish(data);
    this.announced = Math.min(next.length - this.unitOff, TLS_SE_BLOCK);
    return { data, sw: TlsSeSw.more | this.announced };
  }

  private finish(data: Uint8Array): Reply {
    const sw = this.finalSw;
    this.dropOutput();
    return { data, sw };
  }

  /** SEND = GET RESPONSE `00 C0 00 00 Le`: Le must be the announced xx (Java recv()). */
  private send(cmd: AppletCommand): Reply {
    if (cmd.p1 !== 0 || cmd.p2 !== 0) throw cardErr.p1p2('SEND takes P1 = P2 = 00');
    if (this.announced === 0) return { data: EMPTY, sw: SW.ok }; // Java: nothing to send → SW_NO_ERROR
    if (cmd.ne !== this.announced) return { data: EMPTY, sw: SW.wrongLe | this.announced };
    return this.block(this.announced);
  }

  private dropRx(): void {
    this.rx.fill(0, 0, this.rxLen);
    this.rxLen = 0;
  }

  private dropOutput(): void {
    wipe(...this.units);
    this.units = [];
    this.unitOff = 0;
    this.announced = 0;
    this.finalSw = SW.ok;
  }
}
