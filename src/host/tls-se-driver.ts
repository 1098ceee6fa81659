/**
 * The host end of draft-urien-tls-se (../shared/reference/urien-drafts.md §7; the card side is
 * src/card/applets/tls-se/, docs/tls-se.md): drives a card that runs a TLS 1.3 server behind two APDUs,
 *
 *   RECV  00 D8 P1 P2 Lc <≤ 240 bytes>   P1 00 handshake / 01 decrypt / 02 encrypt; P2 bit0 first, bit1 last
 *   SEND  00 C0 00 00 Le                 (GET RESPONSE)
 *
 * written for Urien's real applet (purien/TLS-SE src/tls_se.java) and its rules:
 *   - ONE TLS record per RECV (the applet answers 6D02 unless `record length + 5 == bytes received`):
 *     a client's ChangeCipherSpec and Finished are two RECVs (CCS → 9000, Finished → 9001);
 *   - the applet's receive buffer is 512 bytes: a record with its header must fit, so application
 *     data is encrypted in pieces of at most 512 − 5 − 16 (tag) − 1 (type) = 490 bytes, and a client
 *     record larger than 512 bytes cannot be decrypted (ERR_HOST_TLS_SE_RECORD_TOO_LARGE);
 *   - the answer to a RECV is DATA (≤ 240 bytes) with `9Fxx` = "xx more bytes of this same output",
 *     read with SEND Le = xx, repeated until the final status word; `6Cxx` = repeat the SEND with
 *     Le = xx; `61xx` is followed the same way (other cards). So each exchange yields ONE byte stream:
 *     handshake — records for the client; encrypt — the record(s); decrypt — `plaintext ‖ type`.
 * Final status words: 9000 (ok / more records needed), 9001 (session open), 9002 (session closed),
 * 6D16 (TLS error; setls cards put the alert records for the client in the data).
 * setls extension, optional for a card: decrypt of a non-application record returns `records ‖ 16`
 * (records the card sends in reply, e.g. its KeyUpdate) or `records ‖ alert ‖ 15`.
 *
 * Each RECV…SEND exchange runs as one CardClient chain (one PC/SC transaction where available).
 * `TlsSeSession` implements the same `SeSession` interface as EapSession, so RecordLayer,
 * SeTlsSocket and TlsTandem run unchanged on top of it; `TlsSeDriver` is its `SessionDriver`.
 * imports apdu/, bytes/, protocol/ and host/.
 */
import { concat, SetlsError } from '../bytes/index.js';
import { SW, parseResponse, type ResponseApdu } from '../apdu/index.js';
import {
  CLA_ISO,
  Ins,
  SelectP1,
  SelectP2,
  TLS_SE_AID,
  TLS_SE_BLOCK,
  TLS_SE_RX_SIZE,
  TLS_SE_TAG_LENGTH,
  TlsSeIns,
  TlsSeMode,
  TlsSeP2,
  TlsSePinRef,
  TlsSeSw,
  type SessionInfo,
} from '../protocol/index.js';
import type { CardClient } from './card-client.js';
import { cardError } from './errors.js';
import { Mutex } from './mutex.js';
import { CONTENT_TYPE_ALERT, CONTENT_TYPE_APPLICATION_DATA, MAX_PLAINTEXT, type DecryptResult, type HandshakeStep } from './eap-session.js';
import type { SeSession, SeSessionPhase, SessionDriver } from './session-driver.js';

/** The TLS-SE applet AID of Urien's tls_se.java; the real applet's receive buffer (tls_se.java RXSIZE). */
export { TLS_SE_AID, TLS_SE_RX_SIZE };
/** Bytes per RECV fragment the host sends (the draft: 240). */
export const TLS_SE_FRAGMENT = TLS_SE_BLOCK;
/** RECV P1 (protocol's TlsSeMode). */
export const TlsSeP1 = { handshake: TlsSeMode.handshake, decrypt: TlsSeMode.decrypt, encrypt: TlsSeMode.encrypt } as const;
/** The final status words the host acts on (protocol's TlsSeSw). */
export const TLS_SE_SW = { ok: TlsSeSw.ok, open: TlsSeSw.sessionOpen, closed: TlsSeSw.sessionClosed, tlsError: TlsSeSw.tlsError } as const;

const CONTENT_TYPE_HANDSHAKE = 22;

export interface TlsSeExchange {
  /** Everything the card answered to this RECV, data of the RECV and of every SEND, in order. */
  readonly output: Uint8Array;
  /** The final status word. */
  readonly sw: number;
}

export interface TlsSeSessionOptions {
  /** Bytes per RECV fragment (the draft: 240). 1..255. */
  readonly fragment?: number;
  /** The card's receive buffer: the largest RECV input (a record with its header). Default 512. */
  readonly rxSize?: number;
  /** Largest total output of one exchange. Default 1 MiB. */
  readonly maxOutput?: number;
}

function protocolError(message: string): SetlsError {
  return new SetlsError('ERR_HOST_TLS_SE_PROTOCOL', message);
}

/** Largest plaintext the card can encrypt into one record that fits its receive buffer. */
export function tlsSeMaxPlaintext(rxSize = TLS_SE_RX_SIZE): number {
  return rxSize - 5 - TLS_SE_TAG_LENGTH - 1;
}

/** Whether `b` is a sequence of whole TLS records (5-byte headers, lengths exact), each of type `type`. */
function wholeRecords(b: Uint8Array, type: number): boolean {
  let o = 0;
  while (o < b.length) {
    if (b.length - o < 5 || b[o] !== type) return false;
    o += 5 + ((b[o + 3]! << 8) | b[o + 4]!);
  }
  return o === b.length;
}

/**
 * One RECV (fragmented) and the SENDs that read the card's answer. Exposed for tests and for
 * drivers of other TLS-SE cards.
 */
export async function tlsSeExchange(card: CardClient, p1: number, data: Uint8Array, opts: TlsSeSessionOptions = {}): Promise<TlsSeExchange> {
  const frag = opts.fragment ?? TLS_SE_FRAGMENT;
  if (!Number.isInteger(frag) || frag < 1 || frag > 255) throw new RangeError('fragment must be 1..255');
  if (data.length === 0) throw new RangeError('a TLS-SE RECV carries at least one byte');
  const maxOutput = opts.maxOutput ?? 1 << 20;
  return card.runChain(async (transmit) => {
    let r: ResponseApdu = { data: new Uint8Array(0), sw: 0 };
    for (let o = 0; o < data.length; o += frag) {
      const chunk = data.subarray(o, Math.min(data.length, o + frag));
      const last = o + frag >= data.length;
      const p2 = (o === 0 ? TlsSeP2.first : 0) | (last ? TlsSeP2.last : 0);
      const apdu = new Uint8Array(5 + chunk.length);
      apdu.set([CLA_ISO, TlsSeIns.recv, p1, p2, chunk.length]);
      apdu.set(chunk, 5);
      r = parseResponse(await transmit(apdu));
      if (!last && r.sw !== TLS_SE_SW.ok) throw cardError('TLS-SE RECV (fragment)', r.sw);
    }
    const parts: Uint8Array[] = [];
    let total = 0;
    const push = (d: Uint8Array): void => {
      total += d.length;
      if (total > maxOutput) throw protocolError(`TLS-SE output exceeds ${maxOutput} bytes`);
      if (d.length) parts.push(d);
    };
    push(r.data);
    // 9Fxx / 61xx: xx more bytes of the same output; 6Cxx: ask again with Le = xx. Bounded by maxOutput
    // (each SEND either brings data or is a 6Cxx retry, and two 6Cxx in a row are a protocol error).
    let retried = false;
    for (;;) {
      const hi = r.sw & 0xff00;
      if (hi !== SW.moreDataEap && hi !== SW.moreData && hi !== SW.wrongLe) break;
      if (hi === SW.wrongLe) {
        if (retried) throw protocolError(`TLS-SE card answered 6Cxx twice (SW ${r.sw.toString(16)})`);
        retried = true;
      } else retried = false;
      const le = r.sw & 0xff; // 00 = 256 in a short APDU
      r = parseResponse(await transmit(Uint8Array.of(CLA_ISO, TlsSeIns.send, 0x00, 0x00, le)));
      push(r.data);
    }
    return { output: concat(...parts), sw: r.sw };
  });
}
/** Sends one raw APDU as its own chain and returns its status word (SELECT, VERIFY, RESET). */
async function simple(card: CardClient, apdu: Uint8Array): Promise<number> {
  return card.runChain(async (transmit) => parseResponse(await transmit(apdu)).sw);
}

export class TlsSeSession implements SeSession {
  private phaseValue: SeSessionPhase = 'handshake';
  private readonly lock = new Mutex();
  private readonly rxSize: number;
  private readonly maxPlain: number;

  constructor(
    private readonly card: CardClient,
    private readonly opts: TlsSeSessionOptions = {},
  ) {
    this.rxSize = opts.rxSize ?? TLS_SE_RX_SIZE;
    if (!Number.isInteger(this.rxSize) || this.rxSize < 64 || this.rxSize > 16384 + 256 + 5) throw new RangeError('rxSize must be 64..16645');
    this.maxPlain = tlsSeMaxPlaintext(this.rxSize);
  }

  get phase(): SeSessionPhase {
    return this.phaseValue;
  }

  /** Handshake records, ONE per RECV (the real applet's rule; a client CCS is a RECV of its own). TLS-SE has no time field. */
  handshake(records: readonly Uint8Array[], _gmtTime?: number): Promise<HandshakeStep> {
    return this.lock.run(async () => {
      if (!Array.isArray(records) || records.some((r) => !(r instanceof Uint8Array) || r.length < 5)) {
        throw new TypeError('handshake() takes an array of whole TLS records');
      }
      if (this.phaseValue !== 'handshake') throw new SetlsError('ERR_HOST_STATE', `handshake() in phase ${this.phaseValue}`);
      const out: Uint8Array[] = [];
      const remaining: Uint8Array[] = [];
      let done = false;
      let failed = false;
      for (const record of records) {
        if (done || failed) {
          remaining.push(record);
          continue;
        }
        this.checkFits(record);
        const x = await tlsSeExchange(this.card, TlsSeP1.handshake, record, this.opts);
        out.push(x.output);
        if (x.sw === TLS_SE_SW.open) {
          done = true;
          this.phaseValue = 'connected';
        } else if (x.sw === TLS_SE_SW.tlsError) {
          failed = true;
          this.phaseValue = 'failing';
        } else if (x.sw === TLS_SE_SW.closed) {
          failed = true;
          this.phaseValue = 'failed';
        } else if (x.sw !== TLS_SE_SW.ok) {
          this.phaseValue = 'failed';
          throw cardError('TLS-SE RECV (handshake)', x.sw);
        }
      }
      return { toClient: concat(...out), done, failed, needMore: !done && !failed, remaining };
    });
  }

  /** A record the card's receive buffer cannot hold (6D02 on the real applet) is refused before it is sent. */
  private checkFits(record: Uint8Array): void {
    if (record.length > this.rxSize) {
      this.phaseValue = 'failed';
      throw new SetlsError(
        'ERR_HOST_TLS_SE_RECORD_TOO_LARGE',
        `a ${record.length}-byte record from the client does not fit the TLS-SE card's ${this.rxSize}-byte receive buffer (one record per RECV)`,
      );
    }
  }

  /** TLS-SE has no failure acknowledgement: the session is simply failed. */
  acknowledgeFailure(): Promise<void> {
    return this.lock.run(async () => {
      if (this.phaseValue === 'failing') this.phaseValue = 'failed';
    });
  }

  /**
   * Plaintext in, record(s) out: application data is cut into pieces the card can protect in its
   * receive buffer (≤ 490 bytes each for 512), one RECV `piece ‖ type` per piece.
   */
  encrypt(type: number, plaintext: Uint8Array): Promise<Uint8Array> {
    return this.lock.run(async () => {
      if (type !== CONTENT_TYPE_APPLICATION_DATA && type !== CONTENT_TYPE_ALERT) throw new RangeError('content type must be 23 or 21');
      if (!(plaintext instanceof Uint8Array) || plaintext.length > MAX_PLAINTEXT) throw new RangeError(`plaintext must be a Uint8Array of at most ${MAX_PLAINTEXT} bytes`);
      if (type === CONTENT_TYPE_ALERT && (plaintext.length !== 2 || plaintext[0] !== 1 || plaintext[1] !== 0)) {
        throw new RangeError('the only alert the host may encrypt is close_notify (01 00)');
      }
      if (this.phaseValue !== 'connected') throw new SetlsError('ERR_HOST_STATE', `encrypt() in phase ${this.phaseValue}`);
      const records: Uint8Array[] = [];
      let o = 0;
      do {
        const n = Math.min(this.maxPlain, plaintext.length - o);
        const input = new Uint8Array(n + 1);
        input.set(plaintext.subarray(o, o + n));
        input[n] = type;
        o += n;
        const x = await tlsSeExchange(this.card, TlsSeP1.encrypt, input, this.opts);
        input.fill(0);
        if (x.sw === TLS_SE_SW.closed) this.phaseValue = 'closed';
        else if (x.sw !== TLS_SE_SW.ok) {
          this.phaseValue = 'failed';
          throw cardError('TLS-SE RECV (encrypt)', x.sw);
        }
        if (x.output.length < 5 || !wholeRecords(x.output, CONTENT_TYPE_APPLICATION_DATA)) {
          this.phaseValue = 'failed';
          throw protocolError(`TLS-SE encrypt returned ${x.output.length} bytes that are not whole records`);
        }
        records.push(x.output);
      } while (o < plaintext.length && this.phaseValue === 'connected');
      if (type === CONTENT_TYPE_ALERT) this.phaseValue = 'closed';
      return concat(...records);
    });
  }

  /**
   * One client record in (≤ the card's receive buffer). The card's answer is `plaintext ‖ type`
   * (type 17); setls cards may answer `records ‖ 16` (records to send, e.g. a KeyUpdate reply) or
   * `records ‖ alert ‖ 15` (the client's close_notify and ours).
   */
  decrypt(record: Uint8Array): Promise<DecryptResult> {
    return this.lock.run(async () => {
      if (!(record instanceof Uint8Array) || record.length < 5) throw new TypeError('decrypt() takes one whole TLS record');
      if (this.phaseValue !== 'connected') throw new SetlsError('ERR_HOST_STATE', `decrypt() in phase ${this.phaseValue}`);
      this.checkFits(record);
      const x = await tlsSeExchange(this.card, TlsSeP1.decrypt, record, this.opts);
      const empty = new Uint8Array(0);
      if (x.sw === TLS_SE_SW.tlsError) {
        this.phaseValue = 'failed';
        // 6D16: the applet names no alert (its records are encrypted): not known, never guessed.
        return { plaintext: empty, outRecords: x.output, peerClosed: false, failed: true, alert: undefined };
      }
      if (x.sw !== TLS_SE_SW.ok && x.sw !== TLS_SE_SW.closed) {
        this.phaseValue = 'failed';
        throw cardError('TLS-SE RECV (decrypt)', x.sw);
      }
      const fail = (message: string): never => {
        this.phaseValue = 'failed';
        throw protocolError(message);
      };
      if (x.output.length === 0) fail('TLS-SE decrypt returned no content type');
      const ct = x.output[x.output.length - 1]!;
      const body = x.output.subarray(0, x.output.length - 1);
      if (ct === CONTENT_TYPE_APPLICATION_DATA) {
        if (x.sw === TLS_SE_SW.closed) fail('TLS-SE decrypt: application data with SW 9002');
        return { plaintext: body.slice(), outRecords: empty, peerClosed: false, failed: false, alert: 0 };
      }
      if (ct === CONTENT_TYPE_ALERT) {
        if (body.length < 2) fail(`TLS-SE decrypt returned an alert of ${body.length} bytes`);
        const outRecords = body.slice(0, body.length - 2);
        const description = body[body.length - 1]!;
        if (outRecords.length && !wholeRecords(outRecords, CONTENT_TYPE_APPLICATION_DATA)) fail('TLS-SE decrypt: the bytes before the alert are not whole records');
        if (description === 0) {
          this.phaseValue = 'closed';
          return { plaintext: empty, outRecords, peerClosed: true, failed: false, alert: 0 };
        }
        this.phaseValue = 'failed';
        return { plaintext: empty, outRecords, peerClosed: false, failed: true, alert: description };
      }
      if (ct === CONTENT_TYPE_HANDSHAKE) {
        // A post-handshake message the card consumed; what precedes the type is what it sends back.
        // A card that returns the message itself (Urien's applet has no KeyUpdate) is refused here.
        if (!wholeRecords(body, CONTENT_TYPE_APPLICATION_DATA)) fail('TLS-SE decrypt: a handshake message the card did not handle (no KeyUpdate support?)');
        return { plaintext: empty, outRecords: body.slice(), peerClosed: false, failed: false, alert: 0 };
      }
      return fail(`TLS-SE decrypt returned content type ${ct}`);
    });
  }
}

export interface TlsSeDriverOptions {
  readonly aid?: Uint8Array;
  /** User PIN; sent as raw ASCII (`00 20 00 00 Lc PIN`), as in Urien's send_apdu.txt. Empty = no VERIFY. */
  readonly pin: string;
  readonly session?: TlsSeSessionOptions;
}

export class TlsSeDriver implements SessionDriver {
  readonly kind = 'tls-se' as const;
  constructor(
    readonly card: CardClient,
    private readonly opts: TlsSeDriverOptions,
  ) {}

  async start(): Promise<void> {
    const aid = this.opts.aid ?? TLS_SE_AID;
    const sel = new Uint8Array(5 + aid.length);
    sel.set([CLA_ISO, Ins.select, SelectP1.byAid, SelectP2.answer, aid.length]);
    sel.set(aid, 5);
    let sw = await simple(this.card, sel);
    if ((sw & 0xff00) === SW.moreData) sw = SW.ok; // a card that returns FCI: not needed
    if (sw !== SW.ok) throw cardError('SELECT (TLS-SE)', sw);
    if (this.opts.pin !== '') {
      const pin = new TextEncoder().encode(this.opts.pin);
      if (pin.length < 1 || pin.length > 16) throw new RangeError('PIN length');
      const v = new Uint8Array(5 + pin.length);
      v.set([CLA_ISO, TlsSeIns.verifyPin, 0x00, TlsSePinRef.user, pin.length]);
      v.set(pin, 5);
      const s = await simple(this.card, v);
      v.fill(0);
      if (s !== SW.ok) throw cardError('VERIFY-PIN(user)', s);
    }
  }

  async resetState(): Promise<void> {
    const sw = await simple(this.card, Uint8Array.of(CLA_ISO, TlsSeIns.recv, TlsSeMode.handshake, 0x00, 0x00));
    if (sw !== SW.ok) throw cardError('TLS-SE RESET', sw);
  }

  /** The TLS-SE applet has no way to fold its RESET into the first command. */
  readonly freshSessions = false;

  newSession(): SeSession {
    return new TlsSeSession(this.card, this.opts.session ?? {});
  }

  async sessionInfo(): Promise<SessionInfo | undefined> {
    return undefined;
  }
}
