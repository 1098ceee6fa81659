/**
 * The host end of draft-urien-tls-se (../shared/reference/urien-drafts.md §7; the card side is
 * src/card/tls-se/, docs/tls-se.md): drives a card that runs a TLS 1.3 server behind two APDUs,
 *
 *   RECV  00 D8 P1 P2 Lc <≤ 240 bytes>   P1 00 handshake / 01 decrypt / 02 encrypt; P2 bit0 first, bit1 last
 *   SEND  00 C0 00 00 Le                 (GET RESPONSE)
 *
 * following `61xx` (more of this item), `9Fxx` (next item), `6Cxx` (repeat SEND with Le = xx), and
 * the final `9000` / `9001` (session open) / `9002` (session closed) / `6D16` (TLS error: the items
 * are the alert records). Each RECV…SEND exchange runs as one CardClient chain (one PC/SC
 * transaction where available). Works with any card that follows the draft's Fig. 5 exchange; the
 * setls extensions (decrypt items after the first are records for the client; 6D16 carries the
 * alert) are optional for such a card.
 *
 * `TlsSeSession` implements the same `SeSession` interface as EapSession, so RecordLayer,
 * SeTlsSocket and TlsTandem run unchanged on top of it; `TlsSeDriver` is its `SessionDriver`.
 * imports apdu/, bytes/ and host/.
 */
import { concat, SetlsError } from '../bytes/index.js';
import { parseResponse, type ResponseApdu } from '../apdu/index.js';
import type { CardClient } from './card-client.js';
import type { SessionInfo } from './card-codec.js';
import { cardError } from './errors.js';
import { Mutex } from './mutex.js';
import { CONTENT_TYPE_ALERT, CONTENT_TYPE_APPLICATION_DATA, groupRecords, MAX_PLAINTEXT, type DecryptResult, type HandshakeStep } from './eap-session.js';
import type { SeSession, SeSessionPhase, SessionDriver } from './session-driver.js';

/** The TLS-SE applet AID of Urien's tls_se.java. */
export const TLS_SE_AID = Uint8Array.of(0x01, 0x02, 0x03, 0x04, 0x05, 0x00);
export const TLS_SE_FRAGMENT = 240;
export const TlsSeP1 = { handshake: 0x00, decrypt: 0x01, encrypt: 0x02 } as const;
export const TLS_SE_SW = { ok: 0x9000, open: 0x9001, closed: 0x9002, tlsError: 0x6d16 } as const;

export interface TlsSeExchange {
  /** The output items in order (handshake: records; decrypt: plaintext ‖ CT, then records). */
  readonly items: Uint8Array[];
  /** The final status word. */
  readonly sw: number;
}

export interface TlsSeSessionOptions {
  /** Bytes per RECV fragment (the draft: 240). 1..255. */
  readonly fragment?: number;
  /** Largest total output of one exchange. Default 1 MiB. */
  readonly maxOutput?: number;
}

function protocolError(message: string): SetlsError {
  return new SetlsError('ERR_HOST_TLS_SE_PROTOCOL', message);
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
      const p2 = (o === 0 ? 0x01 : 0) | (o + frag >= data.length ? 0x02 : 0);
      const apdu = new Uint8Array(5 + chunk.length);
      apdu.set([0x00, 0xd8, p1, p2, chunk.length]);
      apdu.set(chunk, 5);
      r = parseResponse(await transmit(apdu));
      if (o + frag < data.length && r.sw !== TLS_SE_SW.ok) throw cardError('TLS-SE RECV (fragment)', r.sw);
    }
    const items: Uint8Array[] = [];
    let cur: Uint8Array[] = [];
    let total = 0;
    const push = (d: Uint8Array): void => {
      total += d.length;
      if (total > maxOutput) throw protocolError(`TLS-SE output exceeds ${maxOutput} bytes`);
      if (d.length) cur.push(d);
    };
    push(r.data);
    let le = 0;
    for (;;) {
      const hi = r.sw >> 8;
      if (hi === 0x61) le = r.sw & 0xff || 256;
      else if (hi === 0x9f) {
        if (cur.length) items.push(concat(...cur));
        cur = [];
        le = r.sw & 0xff || 256;
      } else if (hi === 0x6c) le = r.sw & 0xff || 256;
      else break;
      r = parseResponse(await transmit(Uint8Array.of(0x00, 0xc0, 0x00, 0x00, le & 0xff)));
      push(r.data);
    }
    if (cur.length) items.push(concat(...cur));
    return { items, sw: r.sw };
  });
}

/** Sends one raw APDU as its own chain and returns its status word (SELECT, VERIFY, RESET). */
async function simple(card: CardClient, apdu: Uint8Array): Promise<number> {
  return card.runChain(async (transmit) => parseResponse(await transmit(apdu)).sw);
}

export class TlsSeSession implements SeSession {
  private phaseValue: SeSessionPhase = 'handshake';
  private readonly lock = new Mutex();

  constructor(
    private readonly card: CardClient,
    private readonly opts: TlsSeSessionOptions = {},
  ) {}

  get phase(): SeSessionPhase {
    return this.phaseValue;
  }

  /** Handshake records, CCS batched with the record after it (as for EAP); TLS-SE has no time field. */
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
      for (const group of groupRecords(records)) {
        if (done || failed) {
          remaining.push(...group);
          continue;
        }
        const x = await tlsSeExchange(this.card, TlsSeP1.handshake, concat(...group), this.opts);
        out.push(...x.items);
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

  /** TLS-SE has no failure acknowledgement: the session is simply failed. */
  acknowledgeFailure(): Promise<void> {
    return this.lock.run(async () => {
      if (this.phaseValue === 'failing') this.phaseValue = 'failed';
    });
  }

  encrypt(type: number, plaintext: Uint8Array): Promise<Uint8Array> {
    return this.lock.run(async () => {
      if (type !== CONTENT_TYPE_APPLICATION_DATA && type !== CONTENT_TYPE_ALERT) throw new RangeError('content type must be 23 or 21');
      if (!(plaintext instanceof Uint8Array) || plaintext.length > MAX_PLAINTEXT) throw new RangeError(`plaintext must be a Uint8Array of at most ${MAX_PLAINTEXT} bytes`);
      if (type === CONTENT_TYPE_ALERT && (plaintext.length !== 2 || plaintext[0] !== 1 || plaintext[1] !== 0)) {
        throw new RangeError('the only alert the host may encrypt is close_notify (01 00)');
      }
      if (this.phaseValue !== 'connected') throw new SetlsError('ERR_HOST_STATE', `encrypt() in phase ${this.phaseValue}`);
      const input = new Uint8Array(plaintext.length + 1);
      input.set(plaintext);
      input[plaintext.length] = type;
      const x = await tlsSeExchange(this.card, TlsSeP1.encrypt, input, this.opts);
      if (x.sw === TLS_SE_SW.closed) this.phaseValue = 'closed';
      else if (x.sw !== TLS_SE_SW.ok) {
        this.phaseValue = 'failed';
        throw cardError('TLS-SE RECV (encrypt)', x.sw);
      }
      const rec = concat(...x.items);
      if (rec.length < 5) throw protocolError(`TLS-SE encrypt returned ${rec.length} bytes`);
      if (type === CONTENT_TYPE_ALERT) this.phaseValue = 'closed';
      return rec;
    });
  }

  decrypt(record: Uint8Array): Promise<DecryptResult> {
    return this.lock.run(async () => {
      if (!(record instanceof Uint8Array) || record.length < 5) throw new TypeError('decrypt() takes one whole TLS record');
      if (this.phaseValue !== 'connected') throw new SetlsError('ERR_HOST_STATE', `decrypt() in phase ${this.phaseValue}`);
      const x = await tlsSeExchange(this.card, TlsSeP1.decrypt, record, this.opts);
      const empty = new Uint8Array(0);
      if (x.sw === TLS_SE_SW.tlsError) {
        this.phaseValue = 'failed';
        return { plaintext: empty, outRecords: concat(...x.items), peerClosed: false, failed: true, alert: 80 };
      }
      if (x.sw !== TLS_SE_SW.ok && x.sw !== TLS_SE_SW.closed) {
        this.phaseValue = 'failed';
        throw cardError('TLS-SE RECV (decrypt)', x.sw);
      }
      const first = x.items[0] ?? Uint8Array.of(CONTENT_TYPE_APPLICATION_DATA);
      const ct = first[first.length - 1];
      const outRecords = concat(...x.items.slice(1));
      if (x.sw === TLS_SE_SW.closed) {
        this.phaseValue = 'closed';
        return { plaintext: empty, outRecords, peerClosed: true, failed: false, alert: 0 };
      }
      if (ct !== CONTENT_TYPE_APPLICATION_DATA) throw protocolError(`TLS-SE decrypt returned content type ${ct}`);
      return { plaintext: first.slice(0, first.length - 1), outRecords, peerClosed: false, failed: false, alert: 0 };
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
    sel.set([0x00, 0xa4, 0x04, 0x00, aid.length]);
    sel.set(aid, 5);
    let sw = await simple(this.card, sel);
    if (sw >> 8 === 0x61) sw = 0x9000; // a card that returns FCI: not needed
    if (sw !== 0x9000) throw cardError('SELECT (TLS-SE)', sw);
    if (this.opts.pin !== '') {
      const pin = new TextEncoder().encode(this.opts.pin);
      if (pin.length < 1 || pin.length > 16) throw new RangeError('PIN length');
      const v = new Uint8Array(5 + pin.length);
      v.set([0x00, 0x20, 0x00, 0x00, pin.length]);
      v.set(pin, 5);
      const s = await simple(this.card, v);
      v.fill(0);
      if (s !== 0x9000) throw cardError('VERIFY-PIN(user)', s);
    }
  }

  async resetState(): Promise<void> {
    const sw = await simple(this.card, Uint8Array.of(0x00, 0xd8, 0x00, 0x00, 0x00));
    if (sw !== 0x9000) throw cardError('TLS-SE RESET', sw);
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
