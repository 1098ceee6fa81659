/**
 * gp/card: `Scp03Card`, the card side of SCP03 for one logical channel of a security domain:
 * answer INITIALIZE UPDATE, verify EXTERNAL AUTHENTICATE (host cryptogram and C-MAC, constant
 * time), then unwrap each command (verify C-MAC, decrypt) and wrap its response (R-ENC, R-MAC).
 * Sans-I/O; never throws on bad input: every refusal is a status word to return. imports bytes/.
 *
 * States: idle → (INITIALIZE UPDATE) initialized → (EXTERNAL AUTHENTICATE) open.
 * Any failure — a bad host cryptogram or MAC, a command out of order, unprotected, replayed,
 * reordered, on another channel — aborts the session: keys wiped, state `aborted`, and every later
 * command answered 6985 until a new INITIALIZE UPDATE or `reset()` (deselect, channel close, power
 * off): a failed session stays failed (GP API SecureChannel.unwrap: 6982 on the failing command,
 * 6985 while aborted). Commands the card OS handles itself (SELECT, MANAGE CHANNEL, GET RESPONSE)
 * never reach this object.
 *
 * The sequence counter belongs to the caller's persistent store: read c, durably store c + 1, then
 * call `initializeUpdate(apdu, c)` — so the counter advances on every INITIALIZE UPDATE, even one
 * that fails, and no card challenge is ever produced twice. At FFFFFF the card refuses for good.
 *
 * Secrets: the static keys are looked up per INITIALIZE UPDATE and never kept (they stay the
 * caller's); held until the session ends (failure, `reset()`, next INITIALIZE UPDATE): the session
 * keys S-ENC/S-MAC/S-RMAC, the expected host cryptogram, the MAC chain. Plaintexts: unwrapped
 * command data is handed to the caller, who wipes it; response data passed to `wrapResponse` stays
 * the caller's; intermediate padded copies are zeroed at once.
 */
import { ctEqual, wipe } from '../bytes/index.js';
import { randomBytes } from 'node:crypto';
import { parseCla, type ClaInfo } from './cla.js';
import { encodeCommandApdu, parseCommandApdu, type RawCommand } from './command-apdu.js';
import { GpError, GpErrorCode, GpSw } from './errors.js';
import { encodeInitializeUpdateResponse, externalAuthenticateMacInput, KEY_DIVERSIFICATION_DATA_LENGTH } from './handshake.js';
import type { StaticKeys } from './keys.js';
import {
  DEFAULT_I,
  GpIns,
  IParam,
  isSecurityLevel,
  isValidI,
  levelAllowedByI,
  modeOfI,
  SEQUENCE_COUNTER_MAX,
  type SecurityLevel,
  type SMode,
} from './params.js';
import { SecureMessaging, type ResponseContext, type UnwrapFailure } from './secure-messaging.js';
import {
  cardCryptogram,
  deriveSessionKeys,
  hostCryptogram,
  pseudoRandomCardChallenge,
  wipeSessionKeys,
  type SessionKeys,
} from './session-keys.js';

export interface Scp03CardOptions {
  /** AID of this security domain (5..16 bytes): context of the pseudo-random card challenge. */
  readonly sdAid: Uint8Array;
  /** The key set for a KVN (P1 of INITIALIZE UPDATE; 0 = the default set), or undefined. */
  readonly lookupKeys: (kvn: number) => StaticKeys | undefined;
  /** 10 bytes returned in INITIALIZE UPDATE (default zeros). */
  readonly keyDiversificationData?: Uint8Array;
  /** The "i" parameter (default 70: pseudo-random challenge, R-MAC, R-ENC, S8). */
  readonly i?: number;
  /** Randomness for a random card challenge (when i lacks bit 10). */
  readonly random?: (n: number) => Uint8Array;
}

export type Scp03CardState = 'idle' | 'initialized' | 'open' | 'aborted';

/** A card-side answer: the complete response APDU (data ‖ SW) to send back. */
export interface CardAnswer {
  readonly response: Uint8Array;
  readonly sw: number;
}

export interface ExternalAuthenticateAnswer extends CardAnswer {
  /** True when this was a failed authentication attempt (for the applet's back-off). */
  readonly authFailed: boolean;
}

export type UnwrapAnswer =
  | {
      readonly ok: true;
      /** The plain command as the applet should process it (CLA without SM, channel kept). */
      readonly command: RawCommand;
      /** Its encoding. */
      readonly apdu: Uint8Array;
      /** False for a plain command outside any session (no protection was present). */
      readonly secured: boolean;
    }
  | { readonly ok: false; readonly sw: number; readonly why: UnwrapFailure | 'state' | 'channel' | 'format' };

function swOnly(sw: number): CardAnswer {
  return { response: Uint8Array.of(sw >> 8, sw & 0xff), sw };
}

export class Scp03Card {
  private readonly i: number;
  private readonly s: SMode;
  private readonly kdd: Uint8Array;
  private _state: Scp03CardState = 'idle';
  private channel = -1;
  private session: SessionKeys | undefined;
  private expectedHostCryptogram: Uint8Array | undefined;
  private sm: SecureMessaging | undefined;
  private responseCtx: ResponseContext | undefined;

  constructor(private readonly opts: Scp03CardOptions) {
    this.i = opts.i ?? DEFAULT_I;
    if (!isValidI(this.i)) throw new RangeError(`invalid SCP03 i parameter 0x${this.i.toString(16)}`);
    this.s = modeOfI(this.i);
    this.kdd = opts.keyDiversificationData?.slice() ?? new Uint8Array(KEY_DIVERSIFICATION_DATA_LENGTH);
    if (this.kdd.length !== KEY_DIVERSIFICATION_DATA_LENGTH) throw new RangeError('key diversification data must be 10 bytes');
    if (opts.sdAid.length < 5 || opts.sdAid.length > 16) throw new RangeError('SD AID must be 5..16 bytes');
  }

  get state(): Scp03CardState {
    return this._state;
  }
  /** The session's security level (0 unless open). */
  get securityLevel(): number {
    return this._state === 'open' ? this.sm!.level : 0;
  }
  /** The logical channel the session is bound to (-1 before INITIALIZE UPDATE). */
  get sessionChannel(): number {
    return this.channel;
  }

  private clear(): void {
    wipeSessionKeys(this.session);
    this.session = undefined;
    wipe(this.expectedHostCryptogram);
    this.expectedHostCryptogram = undefined;
    this.sm?.wipe();
    this.sm = undefined;
    if (this.responseCtx) wipe(this.responseCtx.chain);
    this.responseCtx = undefined;
  }

  /** Ends any session and forgets it (deselect, logical channel closed, card reset). */
  reset(): void {
    this.clear();
    this.channel = -1;
    this._state = 'idle';
  }

  private abort(): void {
    this.clear();
    this._state = 'aborted';
  }

  /**
   * Answers INITIALIZE UPDATE `80|ch 50 KVN 00 s <host challenge> [00]` using sequence counter
   * `counter` (the caller has already stored counter + 1). Restarts any session on this object.
   */
  initializeUpdate(apdu: Uint8Array, counter: number): CardAnswer {
    this.reset();
    const c = parseCommandApdu(apdu);
    if (!c) return swOnly(GpSw.wrongLength);
    const info = parseCla(c.cla);
    if (!info || info.sm || !info.proprietary) return swOnly(GpSw.claNotSupported);
    if (c.ins !== GpIns.initializeUpdate) return swOnly(GpSw.insNotSupported);
    if (c.p2 !== 0x00) return swOnly(GpSw.wrongP1P2);
    if (c.data.length !== this.s) return swOnly(GpSw.wrongLength);
    const pseudo = (this.i & IParam.pseudoRandomChallenge) !== 0;
    if (pseudo && (!Number.isInteger(counter) || counter < 0 || counter > SEQUENCE_COUNTER_MAX)) {
      return swOnly(GpSw.conditionsNotSatisfied); // counter exhausted: never reuse a challenge
    }
    const keys = this.opts.lookupKeys(c.p1);
    if (!keys || keys.enc.length !== keys.mac.length) return swOnly(GpSw.referencedDataNotFound);
    const hostChallenge = c.data;
    const cardChallenge = pseudo
      ? pseudoRandomCardChallenge(keys.enc, counter, this.opts.sdAid, this.s)
      : Uint8Array.from((this.opts.random ?? randomBytes)(this.s));
    this.session = deriveSessionKeys(keys, hostChallenge, cardChallenge);
    const ccg = cardCryptogram(this.session.sMac, hostChallenge, cardChallenge);
    this.expectedHostCryptogram = hostCryptogram(this.session.sMac, hostChallenge, cardChallenge);
    const data = encodeInitializeUpdateResponse({
      keyDiversificationData: this.kdd,
      kvn: keys.kvn,
      i: this.i,
      cardChallenge,
      cardCryptogram: ccg,
      ...(pseudo ? { sequenceCounter: counter } : {}),
    });
    wipe(hostChallenge, ccg);
    this.channel = info.channel;
    this._state = 'initialized';
    const response = new Uint8Array(data.length + 2);
    response.set(data);
    response.set([0x90, 0x00], data.length);
    return { response, sw: GpSw.ok };
  }

  /**
   * Verifies EXTERNAL AUTHENTICATE `84|ch 82 SL 00 2s <host cryptogram> <C-MAC>`; on success the
   * session is open at level SL. Failure aborts: 6982 for a bad C-MAC, 6300 for a bad host
   * cryptogram, 6A86 for a level outside 01/03/11/13/33 or beyond "i", 6985 without a fresh
   * INITIALIZE UPDATE.
   */
  externalAuthenticate(apdu: Uint8Array): ExternalAuthenticateAnswer {
    const refuse = (sw: number, authFailed = true): ExternalAuthenticateAnswer => {
      this.abort();
      return { ...swOnly(sw), authFailed };
    };
    if (this._state !== 'initialized') return refuse(GpSw.conditionsNotSatisfied, false);
    const c = parseCommandApdu(apdu);
    if (!c) return refuse(GpSw.wrongLength);
    const info = parseCla(c.cla);
    if (!info || !info.sm || !info.proprietary || info.channel !== this.channel) return refuse(GpSw.claNotSupported);
    if (c.ins !== GpIns.externalAuthenticate) return refuse(GpSw.insNotSupported);
    if (c.p2 !== 0x00 || !isSecurityLevel(c.p1) || !levelAllowedByI(c.p1, this.i)) return refuse(GpSw.wrongP1P2);
    if (c.data.length !== 2 * this.s || c.extended || (c.ne !== 0 && c.ne !== 256)) return refuse(GpSw.wrongLength);
    const level = c.p1 as SecurityLevel;
    const sm = new SecureMessaging(this.session!, level, this.s);
    this.session = undefined; // owned by sm
    const hcg = c.data.subarray(0, this.s);
    const mac = sm.authenticate(externalAuthenticateMacInput(level, hcg));
    const macOk = ctEqual(mac.subarray(0, this.s), c.data.subarray(this.s));
    const cgOk = ctEqual(this.expectedHostCryptogram!, hcg);
    wipe(mac, this.expectedHostCryptogram);
    this.expectedHostCryptogram = undefined;
    this.sm = sm;
    if (!macOk) return refuse(GpSw.securityStatusNotSatisfied);
    if (!cgOk) return refuse(GpSw.authenticationFailed);
    this._state = 'open';
    return { ...swOnly(GpSw.ok), authFailed: false };
  }

  /**
   * Verifies and removes the protection of a command. Outside a session a plain command passes
   * through (`secured: false`); in a session every command must carry SM on the session's channel
   * and verify, else the session is aborted and the answer is the status word to return.
   */
  unwrapCommand(apdu: Uint8Array): UnwrapAnswer {
    const fail = (sw: number, why: UnwrapFailure | 'state' | 'channel' | 'format'): UnwrapAnswer => {
      if (this._state !== 'idle') this.abort();
      return { ok: false, sw, why };
    };
    if (this._state === 'aborted') return { ok: false, sw: GpSw.conditionsNotSatisfied, why: 'state' };
    if (this._state === 'initialized') return fail(GpSw.conditionsNotSatisfied, 'state');
    const c = parseCommandApdu(apdu);
    const info: ClaInfo | undefined = c && parseCla(c.cla);
    if (this._state === 'idle') {
      if (!c) return fail(GpSw.wrongLength, 'format');
      if (!info) return fail(GpSw.claNotSupported, 'format');
      if (info.sm) return fail(GpSw.securityStatusNotSatisfied, 'state');
      return { ok: true, command: c, apdu: encodeCommandApdu(c), secured: false };
    }
    // open
    if (!c || !info) return fail(GpSw.securityStatusNotSatisfied, 'format');
    if (info.channel !== this.channel) return fail(GpSw.securityStatusNotSatisfied, 'channel');
    if (this.responseCtx) wipe(this.responseCtx.chain);
    this.responseCtx = undefined;
    const r = this.sm!.unwrapCommand(c, info);
    if (!r.ok) return fail(GpSw.securityStatusNotSatisfied, r.why);
    this.responseCtx = r.ctx;
    return { ok: true, command: r.command, apdu: encodeCommandApdu(r.command), secured: true };
  }

  /**
   * The response APDU (data ‖ SW) for the command last unwrapped, protected at the session level:
   * R-ENC then R-MAC, none for an error SW (which goes out bare, its data dropped). Outside a
   * session, data ‖ SW unchanged. Call it exactly once per unwrapped command (a second call
   * inside a session throws ERR_GP_STATE rather than emit unprotected data).
   */
  wrapResponse(data: Uint8Array, sw: number): Uint8Array {
    const swBytes = Uint8Array.of((sw >> 8) & 0xff, sw & 0xff);
    if (this._state === 'aborted') return swBytes;
    if (this._state !== 'open') {
      const out = new Uint8Array(data.length + 2);
      out.set(data);
      out.set(swBytes, data.length);
      return out;
    }
    // Never let response data out unprotected inside a session: a second call is a bug.
    if (!this.responseCtx) throw new GpError(GpErrorCode.state, 'wrapResponse called without a freshly unwrapped command');
    const ctx = this.responseCtx;
    this.responseCtx = undefined;
    const out = this.sm!.wrapResponse(ctx, data, sw);
    wipe(ctx.chain);
    return out;
  }
}
