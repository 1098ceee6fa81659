/**
 * gp/host: `Scp03Host`, the off-card side of one SCP03 session (the operator service, a GP tool):
 * build INITIALIZE UPDATE, check the card's answer (card cryptogram in constant time, and the
 * pseudo-random card challenge when the SD's AID is known), build EXTERNAL AUTHENTICATE, then wrap
 * commands and unwrap their responses in order. Sans-I/O: bytes in, bytes out. imports bytes/.
 *
 *   const host = new Scp03Host({ keys, sdAid });
 *   send(host.initializeUpdate());           host.processInitializeUpdateResponse(reply);
 *   send(host.externalAuthenticate(0x33));   host.processExternalAuthenticateResponse(reply);
 *   send(host.wrap(plainApdu));              const { data, sw } = host.unwrap(reply);
 *   host.close();
 *
 * Responses are matched to wrapped commands first in, first out, so a whole script may be wrapped
 * ahead (store and forward) and its responses unwrapped later, in order. A response dropped or
 * reordered by the relay fails its R-MAC; any verification failure closes the session.
 *
 * Secrets held until `close()` (or a failure) zeroes them: a copy of the static keys (K-DEK is
 * needed for PUT KEY), the session keys S-ENC/S-MAC/S-RMAC, the host challenge, the expected host
 * cryptogram, the MAC chain values of pending responses. Plaintexts given to `wrap` stay the
 * caller's; intermediate padded copies are zeroed at once.
 */
import { ctEqual, toHex, wipe } from '../bytes/index.js';
import { randomBytes } from 'node:crypto';
import { parseCla } from './cla.js';
import { parseCommandApdu } from './command-apdu.js';
import { GpError, GpErrorCode } from './errors.js';
import {
  buildInitializeUpdate,
  encodeExternalAuthenticate,
  externalAuthenticateMacInput,
  parseInitializeUpdateResponse,
  type InitializeUpdateResponse,
} from './handshake.js';
import { copyStaticKeys, wipeStaticKeys, type StaticKeys } from './keys.js';
import { IParam, isSecurityLevel, levelAllowedByI, modeOfI, type SecurityLevel, type SMode } from './params.js';
import { SecureMessaging, type PlainResponse, type ResponseContext } from './secure-messaging.js';
import {
  cardCryptogram,
  deriveSessionKeys,
  hostCryptogram,
  pseudoRandomCardChallenge,
  wipeSessionKeys,
  type SessionKeys,
} from './session-keys.js';

export interface Scp03HostOptions {
  /** The card's static key set (copied; the copy is wiped on close). */
  readonly keys: StaticKeys;
  /** KVN to ask for in INITIALIZE UPDATE: default `keys.kvn`; 0 = the card's first available. */
  readonly requestKvn?: number;
  /** Logical channel of the security domain (0..19); the IU/EA class bytes carry it. */
  readonly channel?: number;
  /** The SD's AID: when given, a pseudo-random card challenge must equal KDF(K-ENC, counter ‖ AID). */
  readonly sdAid?: Uint8Array;
  /** S8 (default) or S16 mode. */
  readonly mode?: SMode;
  /** Allow wrapped commands to switch to extended length when they outgrow short APDUs (default true). */
  readonly allowExtended?: boolean;
  /** Bound on wrapped commands awaiting their response (default 256). */
  readonly maxPending?: number;
  /** Randomness for the host challenge (tests pass a fixed one). */
  readonly random?: (n: number) => Uint8Array;
}

export type Scp03HostState = 'new' | 'initializing' | 'authenticating' | 'open' | 'closed';

export class Scp03Host {
  private keys: StaticKeys | undefined;
  private readonly mode: SMode;
  private readonly channel: number;
  private readonly allowExtended: boolean;
  private readonly maxPending: number;
  private _state: Scp03HostState = 'new';
  private hostChallenge: Uint8Array | undefined;
  private session: SessionKeys | undefined;
  private expectedHostCryptogram: Uint8Array | undefined;
  private card: InitializeUpdateResponse | undefined;
  private sm: SecureMessaging | undefined;
  private readonly pending: ResponseContext[] = [];

  constructor(private readonly opts: Scp03HostOptions) {
    this.keys = copyStaticKeys(opts.keys);
    this.mode = opts.mode ?? 8;
    this.channel = opts.channel ?? 0;
    this.allowExtended = opts.allowExtended ?? true;
    this.maxPending = opts.maxPending ?? 256;
    if (this.mode !== 8 && this.mode !== 16) throw new RangeError('mode must be 8 (S8) or 16 (S16)');
  }

  get state(): Scp03HostState {
    return this._state;
  }
  /** The security level once EXTERNAL AUTHENTICATE was built (0 before). */
  get securityLevel(): number {
    return this.sm?.level ?? 0;
  }
  /** What the card said in its INITIALIZE UPDATE response (KVN, i, counter, diversification data). */
  get cardInfo(): InitializeUpdateResponse | undefined {
    return this.card;
  }
  /** The static keys' K-DEK, for PUT KEY key blocks (see put-key.ts); undefined once closed. */
  get dek(): Uint8Array | undefined {
    return this.keys?.dek;
  }

  private fail(code: (typeof GpErrorCode)[keyof typeof GpErrorCode], message: string): never {
    this.close();
    throw new GpError(code, message);
  }

  private need(state: Scp03HostState, what: string): void {
    if (this._state !== state) throw new GpError(GpErrorCode.state, `${what} needs state ${state}, not ${this._state}`);
  }

  /** The INITIALIZE UPDATE command, with a fresh random host challenge unless one is given. */
  initializeUpdate(hostChallenge?: Uint8Array): Uint8Array {
    this.need('new', 'initializeUpdate');
    const hc = hostChallenge ? hostChallenge.slice() : (this.opts.random ?? randomBytes)(this.mode);
    if (hc.length !== this.mode) throw new RangeError(`host challenge must be ${this.mode} bytes in S${this.mode} mode`);
    this.hostChallenge = Uint8Array.from(hc);
    this._state = 'initializing';
    return buildInitializeUpdate(this.opts.requestKvn ?? this.keys!.kvn, this.hostChallenge, this.channel);
  }

  /**
   * Checks the card's response (data ‖ SW): SW 9000, SCP 03, the KVN asked for, S-mode, the card
   * challenge if predictable, and the card cryptogram (constant time). Throws and closes on any
   * mismatch: a real card counts failed authentications, so never retry blindly.
   */
  processInitializeUpdateResponse(response: Uint8Array): InitializeUpdateResponse {
    this.need('initializing', 'processInitializeUpdateResponse');
    const keys = this.keys!;
    if (response.length < 2) this.fail(GpErrorCode.initUpdate, 'INITIALIZE UPDATE response has no status word');
    const sw = (response[response.length - 2]! << 8) | response[response.length - 1]!;
    if (sw !== 0x9000) this.fail(GpErrorCode.initUpdate, `INITIALIZE UPDATE answered ${sw.toString(16).padStart(4, '0')}`);
    let r: InitializeUpdateResponse;
    try {
      r = parseInitializeUpdateResponse(response.subarray(0, response.length - 2));
    } catch (e) {
      this.close();
      throw e;
    }
    const asked = this.opts.requestKvn ?? keys.kvn;
    if (r.kvn !== keys.kvn || (asked !== 0 && r.kvn !== asked)) this.fail(GpErrorCode.initUpdate, `card used KVN ${r.kvn}, we hold ${keys.kvn}`);
    if (modeOfI(r.i) !== this.mode) this.fail(GpErrorCode.initUpdate, `card answered in S${modeOfI(r.i)} mode, we run S${this.mode}`);
    if (r.sequenceCounter !== undefined && this.opts.sdAid) {
      const expected = pseudoRandomCardChallenge(keys.enc, r.sequenceCounter, this.opts.sdAid, this.mode);
      const ok = ctEqual(expected, r.cardChallenge);
      wipe(expected);
      if (!ok) this.fail(GpErrorCode.cardChallenge, 'card challenge is not the pseudo-random one for this counter and AID');
    }
    const hc = this.hostChallenge!;
    this.session = deriveSessionKeys(keys, hc, r.cardChallenge);
    const expectedCard = cardCryptogram(this.session.sMac, hc, r.cardChallenge);
    const ok = ctEqual(expectedCard, r.cardCryptogram);
    wipe(expectedCard);
    if (!ok) this.fail(GpErrorCode.cardCryptogram, 'card cryptogram invalid: wrong keys or not this card');
    this.expectedHostCryptogram = hostCryptogram(this.session.sMac, hc, r.cardChallenge);
    this.card = r;
    this._state = 'authenticating';
    return r;
  }

  /** The EXTERNAL AUTHENTICATE command for `level` (01, 03, 11, 13 or 33, within the card's i). */
  externalAuthenticate(level: number): Uint8Array {
    this.need('authenticating', 'externalAuthenticate');
    if (!isSecurityLevel(level)) throw new GpError(GpErrorCode.level, `security level 0x${level.toString(16)} is not 01, 03, 11, 13 or 33`);
    if (!levelAllowedByI(level, this.card!.i)) {
      const i = this.card!.i.toString(16);
      throw new GpError(GpErrorCode.level, `security level 0x${level.toString(16)} needs R-MAC/R-ENC the card (i=0x${i}) lacks`);
    }
    const sm = new SecureMessaging(this.session!, level as SecurityLevel, this.mode);
    this.session = undefined; // owned by sm from now on
    const hcg = this.expectedHostCryptogram!;
    const mac = sm.authenticate(externalAuthenticateMacInput(level as SecurityLevel, hcg));
    const apdu = encodeExternalAuthenticate(level as SecurityLevel, hcg, mac, this.mode, this.channel);
    wipe(mac, hcg);
    this.expectedHostCryptogram = undefined;
    this.sm = sm;
    this._state = 'open';
    return apdu;
  }

  /** Checks EXTERNAL AUTHENTICATE's answer (SW only); anything but 9000 closes the session. */
  processExternalAuthenticateResponse(response: Uint8Array): void {
    this.need('open', 'processExternalAuthenticateResponse');
    if (response.length !== 2 || response[0] !== 0x90 || response[1] !== 0x00) {
      this.fail(GpErrorCode.auth, `EXTERNAL AUTHENTICATE refused (${toHex(response.subarray(-2)) || 'no SW'})`);
    }
  }

  /**
   * Protects a plain command (CLA `00`–`03`, `40`–`4F`, `80`–`83` or `C0`–`CF`, no chaining) at the
   * session's level; the wrapped command keeps the caller's logical-channel bits.
   */
  wrap(plain: Uint8Array): Uint8Array {
    this.need('open', 'wrap');
    const c = parseCommandApdu(plain);
    if (!c) throw new GpError(GpErrorCode.apdu, `malformed command APDU (${plain.length} bytes)`);
    const info = parseCla(c.cla);
    if (!info) throw new GpError(GpErrorCode.apdu, `class byte 0x${c.cla.toString(16)} cannot be wrapped (chaining, ISO SM, reserved or FF)`);
    if (info.sm) throw new GpError(GpErrorCode.apdu, 'command is already secure-messaging (double wrap)');
    if (this.pending.length >= this.maxPending) throw new GpError(GpErrorCode.state, `more than ${this.maxPending} responses outstanding`);
    const { wire, ctx } = this.sm!.wrapCommand(c, info, this.allowExtended);
    this.pending.push(ctx);
    return wire;
  }

  /**
   * Verifies and removes the protection of the response (data ‖ SW) to the oldest wrapped command
   * still waiting for one. Error status words come back bare (no R-MAC exists for them); a bad
   * R-MAC, R-ENC padding or shape throws ERR_GP_RESPONSE and closes the session.
   */
  unwrap(response: Uint8Array): PlainResponse {
    this.need('open', 'unwrap');
    const ctx = this.pending.shift();
    if (!ctx) throw new GpError(GpErrorCode.state, 'no wrapped command is waiting for a response');
    const r = this.sm!.unwrapResponse(ctx, response);
    wipe(ctx.chain);
    if (!r) this.fail(GpErrorCode.response, 'response R-MAC, R-ENC or shape does not verify: dropped, reordered or forged');
    return r;
  }

  /** Ends the session and zeroes every secret it held. Idempotent. */
  close(): void {
    wipeStaticKeys(this.keys);
    this.keys = undefined;
    wipeSessionKeys(this.session);
    this.session = undefined;
    this.sm?.wipe();
    this.sm = undefined;
    wipe(this.hostChallenge, this.expectedHostCryptogram);
    for (const p of this.pending) wipe(p.chain);
    this.pending.length = 0;
    this._state = 'closed';
  }
}
