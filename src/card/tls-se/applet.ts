/**
 * The TLS-SE applet (draft-urien-tls-se; ../shared/reference/urien-drafts.md §7): a TLS 1.3 server
 * inside the card, driven by two APDUs instead of EAP-TLS:
 *
 *   RECV  00 D8 P1 P2 Lc <fragment ≤ 255 (the host uses 240)>
 *         P1: 00 handshake, 01 decrypt, 02 encrypt, FF echo; P2: bit0 first fragment, bit1 last
 *         (03 = a single fragment); `00 D8 00 00 00` with no data = RESET of the TLS state machine.
 *   SEND  00 C0 00 00 Le     (GET RESPONSE) reads the card's output, ≤ 240 bytes per APDU.
 *
 * Output is a list of ITEMS (handshake: one TLS record per item, as in Fig. 5; decrypt:
 * `plaintext ‖ content type`, then any records the card wants sent; encrypt: the record(s)). The
 * status word after each SEND says what follows: `61xx` more bytes of this item, `9Fxx` the next
 * item (xx = its length, 00 for ≥ 256), else the final status of the RECV:
 *   9000 ok / the card needs more records;  9001 session opened (handshake complete);
 *   9002 session closed (the client's close_notify; items: `01 00 15`, then our close_notify record;
 *        or after ENCRYPT of close_notify);
 *   6D16 TLS error: the session failed; the items (if any) are the alert record(s) for the client.
 * A RECV with output answers 61xx/9Fxx at once (no data); without output it answers the final SW.
 *
 * The engine is src/tls via the factory the card passes in (`host.newEngine()`), so certificate
 * mode (the card's identities, chosen by SNI) and external PSK (psk_dhe_ke, once the engine
 * supports `findPsk`) use the same TLS code as the setls applet.
 *
 * Secrets: the engine (dispose() wipes it), receive buffers (plaintext on encrypt), output items
 * (plaintext on decrypt): all wiped on reset. imports bytes/, apdu/, tls/ (api types), card/.
 */
import { concat, wipe } from '../../bytes/index.js';
import { SW, type CommandApdu } from '../../apdu/index.js';
import type { TlsOutput, TlsServerConnection } from '../../tls/api.js';
import { CardError, cardErr } from '../errors.js';

/** The applet AID, as in Urien's tls_se.java / send_apdu.txt. */
export const TLS_SE_AID = Uint8Array.of(0x01, 0x02, 0x03, 0x04, 0x05, 0x00);

export const TlsSeIns = { recv: 0xd8, send: 0xc0, verifyPin: 0x20, setKey: 0x85 } as const;
export const TlsSeMode = { handshake: 0x00, decrypt: 0x01, encrypt: 0x02, echo: 0xff } as const;
export const TlsSeSw = {
  ok: 0x9000,
  sessionOpen: 0x9001,
  sessionClosed: 0x9002,
  /** draft code: TLS error */
  tlsError: 0x6d16,
  /** draft code: encrypt error */
  encryptError: 0x6d15,
} as const;

/** Largest output block per SEND (MAXRXSIZE of the draft's applet). */
export const TLS_SE_BLOCK = 240;
/** Largest reassembled RECV input: one TLS record (2^14 + 256 + header) plus a CCS record. */
export const TLS_SE_MAX_INPUT = 16384 + 256 + 5 + 6;
/** The PSK identity used when SET-KEY gives none (openssl s_client's default -psk_identity). */
export const TLS_SE_DEFAULT_PSK_IDENTITY = 'Client_identity';

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
}

export interface Reply {
  readonly data: Uint8Array;
  readonly sw: number;
}

type Phase = 'idle' | 'handshake' | 'open' | 'closed' | 'failed';

const EMPTY = new Uint8Array(0);
const moreSw = (base: number, n: number): number => base | (n >= 256 ? 0 : n);

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

export class TlsSeApplet {
  private phase: Phase = 'idle';
  private engine: TlsServerConnection | undefined;
  private rx: Uint8Array[] = [];
  private rxTotal = 0;
  private items: Uint8Array[] = [];
  private itemOff = 0;
  private finalSw: number = SW.ok;
  private heldPlain: Uint8Array[] = [];

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
    this.engine?.dispose();
    this.engine = undefined;
    this.phase = 'idle';
    this.dropRx();
    this.dropOutput();
    wipe(...this.heldPlain);
    this.heldPlain = [];
  }

  /** One APDU for the applet (SELECT is handled by the card). Throws CardError for error SWs. */
  process(cmd: CommandApdu): Reply {
    if (cmd.cla !== 0x00) throw new CardError('ERR_CARD_CLA', `TLS-SE: CLA 0x${cmd.cla.toString(16)} not supported`, SW.claNotSupported);
    switch (cmd.ins) {
      case TlsSeIns.send:
        return this.send(cmd);
      case TlsSeIns.recv:
        this.dropOutput();
        return this.recv(cmd);
      case TlsSeIns.verifyPin: {
        this.dropOutput();
        if (cmd.p1 !== 0 || (cmd.p2 !== 0 && cmd.p2 !== 1)) throw cardErr.p1p2('TLS-SE VERIFY: P1 00, P2 00 (user) or 01 (admin)');
        const which = cmd.p2 === 1 ? 'operator' : 'user';
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
  private setKey(cmd: CommandApdu): Reply {
    if (cmd.p1 !== 0x00 || cmd.p2 !== 0x0a) throw cardErr.p1p2('SET-KEY: P1 00 P2 0A');
    if (!this.host.isVerified('operator')) throw cardErr.security('SET-KEY needs the admin (operator) PIN');
    const d = cmd.data;
    if (d.length < 3 || d[0] !== 0x01) throw cardErr.data('SET-KEY data: 01 len(2) key [identity]');
    const len = (d[1]! << 8) | d[2]!;
    if (len < 16 || len > 64 || d.length < 3 + len) throw cardErr.length('SET-KEY: key of 16–64 bytes');
    const key = d.slice(3, 3 + len);
    const id = d.length > 3 + len ? d.slice(3 + len) : new TextEncoder().encode(TLS_SE_DEFAULT_PSK_IDENTITY);
    if (id.length < 1 || id.length > 64) throw cardErr.data('SET-KEY: identity of 1–64 bytes');
    this.host.setPsk(id, key);
    wipe(key);
    return { data: EMPTY, sw: SW.ok };
  }

  private recv(cmd: CommandApdu): Reply {
    if (cmd.data.length === 0) {
      // `00 D8 00 00 00`: RESET of the TLS state machine.
      if (cmd.p1 !== 0 || cmd.p2 !== 0) throw cardErr.length('RECV without data is only the RESET 00 D8 00 00 00');
      this.reset();
      return { data: EMPTY, sw: SW.ok };
    }
    if (!this.host.isVerified('user')) {
      this.dropRx();
      throw cardErr.security('TLS-SE: user PIN not verified');
    }
    const mode = cmd.p1;
    if ((mode > 2 && mode !== TlsSeMode.echo) || (cmd.p2 & ~0x03) !== 0) {
      this.dropRx();
      throw cardErr.p1p2('RECV: P1 00/01/02/FF, P2 bits 0–1');
    }
    if (cmd.p2 & 0x01) this.dropRx();
    if (this.rxTotal + cmd.data.length > TLS_SE_MAX_INPUT) {
      this.dropRx();
      throw cardErr.length(`RECV input longer than ${TLS_SE_MAX_INPUT} bytes`);
    }
    this.rx.push(cmd.data.slice());
    this.rxTotal += cmd.data.length;
    if ((cmd.p2 & 0x02) === 0) return { data: EMPTY, sw: SW.ok };
    const input = concat(...this.rx);
    this.dropRx();
    try {
      switch (mode) {
        case TlsSeMode.handshake:
          return this.handshake(input);
        case TlsSeMode.decrypt:
          return this.decrypt(input);
        case TlsSeMode.encrypt:
          return this.encrypt(input);
        default:
          return this.output([input.slice()], SW.ok);
      }
    } finally {
      wipe(input);
    }
  }

  private handshake(input: Uint8Array): Reply {
    if (this.phase === 'idle') {
      this.engine = this.host.newEngine();
      this.phase = 'handshake';
    }
    if (this.phase !== 'handshake' || !this.engine) throw cardErr.conditions(`TLS-SE: handshake data in phase ${this.phase}`);
    const out = this.feed(input);
    if (this.failed) return this.output(splitRecords(out.records), TlsSeSw.tlsError);
    this.heldPlain.push(...out.plaintext);
    if (out.peerClosed) {
      this.phase = 'closed';
      return this.output(splitRecords(out.records), TlsSeSw.sessionClosed);
    }
    if (out.handshakeComplete) {
      this.phase = 'open';
      return this.output(splitRecords(out.records), TlsSeSw.sessionOpen);
    }
    return this.output(splitRecords(out.records), SW.ok);
  }

  private decrypt(record: Uint8Array): Reply {
    if (this.phase !== 'open' || !this.engine) throw cardErr.conditions(`TLS-SE: decrypt in phase ${this.phase}`);
    const out = this.feed(record);
    const records = splitRecords(out.records);
    if (this.failed) return this.output(records, TlsSeSw.tlsError);
    const plain = concat(...this.heldPlain, ...out.plaintext, Uint8Array.of(0x17));
    wipe(...this.heldPlain, ...out.plaintext);
    this.heldPlain = [];
    if (out.peerClosed) {
      this.phase = 'closed';
      wipe(plain);
      return this.output([Uint8Array.of(0x01, 0x00, 0x15), ...records], TlsSeSw.sessionClosed);
    }
    return this.output([plain, ...records], SW.ok);
  }

  private encrypt(input: Uint8Array): Reply {
    if (this.phase !== 'open' || !this.engine) throw cardErr.conditions(`TLS-SE: encrypt in phase ${this.phase}`);
    const ct = input[input.length - 1]!;
    const pt = input.subarray(0, input.length - 1);
    if (ct === 0x15) {
      if (pt.length !== 2 || pt[0] !== 0x01 || pt[1] !== 0x00) throw cardErr.data('TLS-SE encrypt: the only alert is close_notify (01 00 15)');
      let rec: Uint8Array;
      try {
        rec = this.engine.encrypt(0x15, pt);
      } catch (e) {
        throw new CardError('ERR_CARD_TLS', `TLS-SE encrypt: ${(e as Error).message}`, TlsSeSw.encryptError, { cause: e });
      }
      this.phase = 'closed';
      return this.output(splitRecords(rec), TlsSeSw.sessionClosed);
    }
    if (ct !== 0x17) throw cardErr.data('TLS-SE encrypt: content type must be 17 (application data) or 15 (close_notify)');
    let rec: Uint8Array;
    try {
      rec = this.engine.encrypt(0x17, pt);
    } catch (e) {
      throw new CardError('ERR_CARD_TLS', `TLS-SE encrypt: ${(e as Error).message}`, TlsSeSw.encryptError, { cause: e });
    }
    return this.output(splitRecords(rec), SW.ok);
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

  /** Queues the items; answers 61xx/9Fxx when there is output, else the final SW. */
  private output(items: Uint8Array[], finalSw: number): Reply {
    const list = items.filter((i) => i.length > 0);
    if (list.length === 0) return { data: EMPTY, sw: finalSw };
    this.items = list;
    this.itemOff = 0;
    this.finalSw = finalSw;
    return { data: EMPTY, sw: moreSw(SW.moreData, list[0]!.length) };
  }

  /** SEND = GET RESPONSE `00 C0 00 00 Le`. */
  private send(cmd: CommandApdu): Reply {
    if (cmd.p1 !== 0 || cmd.p2 !== 0) throw cardErr.p1p2('SEND takes P1 = P2 = 00');
    const cur = this.items[0];
    if (!cur) throw cardErr.conditions('TLS-SE: nothing to send');
    const left = cur.length - this.itemOff;
    if (cmd.ne === 0) return { data: EMPTY, sw: SW.wrongLe | Math.min(left, TLS_SE_BLOCK) };
    const n = Math.min(cmd.ne, TLS_SE_BLOCK, left);
    const data = cur.slice(this.itemOff, this.itemOff + n);
    this.itemOff += n;
    if (this.itemOff < cur.length) return { data, sw: moreSw(SW.moreData, cur.length - this.itemOff) };
    wipe(cur);
    this.items.shift();
    this.itemOff = 0;
    const next = this.items[0];
    if (next) return { data, sw: moreSw(SW.moreDataEap, next.length) };
    return { data, sw: this.finalSw };
  }

  private dropRx(): void {
    wipe(...this.rx);
    this.rx = [];
    this.rxTotal = 0;
  }

  private dropOutput(): void {
    wipe(...this.items);
    this.items = [];
    this.itemOff = 0;
    this.finalSw = SW.ok;
  }
}
