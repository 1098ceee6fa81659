/**
 * gp/secure-messaging: the SCP03 protection of commands and responses once EXTERNAL AUTHENTICATE
 * has fixed the security level — the same arithmetic on both sides, so the off-card session
 * (host.ts) and the card (card.ts) share it. imports bytes/.
 *
 * Command (GP Amendment D; `s` = 8 in S8 mode, 16 in S16 mode):
 *   1. C-DECRYPTION: the encryption counter is incremented for EVERY command, data or not; data is
 *      padded `80 00…` and AES-CBC encrypted under S-ENC, ICV = AES-ECB(S-ENC, counter(16, BE)).
 *   2. C-MAC = CMAC(S-MAC, chain ‖ CLA' INS P1 P2 Lc' ‖ data'), CLA' = (CLA & 80) | 04, Lc' = the
 *      Lc field on the wire (1 byte, or `00 Lc1 Lc2` extended) counting the MAC; the first s bytes
 *      are appended and all 16 become the next chain value (the first chain is the MAC of
 *      EXTERNAL AUTHENTICATE, itself chained on 00×16).
 *   3. Case 2/4 commands carry Le = `00` (`00 00` extended): the response grows by R-MAC and padding.
 * Response:
 *   R-ENC (data only, when there is data): `80 00…` padding, AES-CBC under S-ENC with
 *   ICV = AES-ECB(S-ENC, 80 ‖ counter[1..15]) — the command's counter with its first byte 80.
 *   R-MAC = first s bytes of CMAC(S-RMAC, chain ‖ data' ‖ SW1 SW2), chain = this command's C-MAC.
 *   An error SW (anything but 9000, 62xx, 63xx) gets neither: the response is the bare SW.
 *
 * Secrets: S-ENC/S-MAC/S-RMAC (until `wipe`), padded plaintexts (zeroed as soon as encrypted or
 * unpadded). The MAC chain is not secret but is wiped too.
 */
import { concat, ctEqual, wipe } from '../bytes/index.js';
import { aesCbcDecrypt, aesCbcEncrypt, aesEncryptBlock, pad80, unpad80 } from './aes.js';
import { macCla, withSm, withoutSm, type ClaInfo } from './cla.js';
import { aesCmac } from './cmac.js';
import { lcField, type RawCommand } from './command-apdu.js';
import { GpError, GpErrorCode, isErrorSw } from './errors.js';
import { SlBit, type SecurityLevel, type SMode } from './params.js';
import { wipeSessionKeys, type SessionKeys } from './session-keys.js';

/** What a response to one command is checked (or protected) against. */
export interface ResponseContext {
  /** The command's full 16-byte C-MAC. */
  readonly chain: Uint8Array;
  /** The command's encryption counter (0 when the level has no C-DECRYPTION). */
  readonly counter: number;
}

export interface PlainResponse {
  readonly data: Uint8Array;
  readonly sw: number;
}

/** Why an unwrap failed (for logs and tests; the card answers 6982 whatever the reason). */
export type UnwrapFailure = 'sm-missing' | 'no-mac' | 'le' | 'mac' | 'length' | 'padding';

function counterBlock(counter: number, response: boolean): Uint8Array {
  const b = new Uint8Array(16);
  let v = counter;
  for (let i = 15; i >= 0 && v > 0; i--) {
    b[i] = v % 256;
    v = Math.floor(v / 256);
  }
  if (response) b[0] = 0x80;
  return b;
}

export class SecureMessaging {
  private keys: SessionKeys | undefined;
  private chain = new Uint8Array(16);
  private counter = 0;

  constructor(
    keys: SessionKeys,
    readonly level: SecurityLevel,
    readonly s: SMode,
  ) {
    this.keys = keys;
  }

  get cDec(): boolean {
    return (this.level & SlBit.cDecryption) !== 0;
  }
  get rMac(): boolean {
    return (this.level & SlBit.rMac) !== 0;
  }
  get rEnc(): boolean {
    return (this.level & SlBit.rEncryption) !== 0;
  }
  get open(): boolean {
    return this.keys !== undefined;
  }

  private k(): SessionKeys {
    if (!this.keys) throw new GpError(GpErrorCode.state, 'the secure channel session is closed');
    return this.keys;
  }

  /** CMAC(S-MAC, chain ‖ input) without moving the chain. */
  private cmac(input: Uint8Array): Uint8Array {
    const m = concat(this.chain, input);
    const mac = aesCmac(this.k().sMac, m);
    wipe(m);
    return mac;
  }

  private icv(counter: number, response: boolean): Uint8Array {
    const block = counterBlock(counter, response);
    const icv = aesEncryptBlock(this.k().sEnc, block);
    wipe(block);
    return icv;
  }

  private nextCounter(): number {
    if (!this.cDec) return 0;
    if (this.counter >= Number.MAX_SAFE_INTEGER) throw new GpError(GpErrorCode.counter, 'encryption counter exhausted');
    return ++this.counter;
  }

  /**
   * EXTERNAL AUTHENTICATE's C-MAC over `header(5) ‖ host cryptogram` on the zero chain; the full MAC
   * becomes the chain. Both sides call it exactly once, first.
   */
  authenticate(macInput: Uint8Array): Uint8Array {
    const mac = this.cmac(macInput);
    this.chain.set(mac);
    return mac;
  }

  /** Off-card: protects a plain command (its CLA already checked by the caller). */
  wrapCommand(plain: RawCommand, info: ClaInfo, allowExtended: boolean): { wire: Uint8Array; ctx: ResponseContext } {
    const keys = this.k();
    // Sizes first: a command refused for its length must not move the counter or the chain.
    const encrypt = this.cDec && plain.data.length > 0;
    const nc = (encrypt ? (Math.floor(plain.data.length / 16) + 1) * 16 : plain.data.length) + this.s;
    if (nc > 65535) throw new GpError(GpErrorCode.tooLong, `wrapped command data of ${nc} bytes exceeds 65535`);
    const extended = plain.extended || nc > 255 || plain.ne > 256;
    if (extended && !allowExtended) {
      throw new GpError(GpErrorCode.tooLong, `wrapped command needs extended length (Lc ${nc}, Ne ${plain.ne})`);
    }
    const counter = this.nextCounter();
    let body = plain.data;
    if (encrypt) {
      const padded = pad80(body);
      const icv = this.icv(counter, false);
      body = aesCbcEncrypt(keys.sEnc, icv, padded);
      wipe(icv, padded);
    }
    const lc = lcField(nc, extended);
    const mac = this.cmac(concat(Uint8Array.of(macCla(plain.cla), plain.ins, plain.p1, plain.p2), lc, body));
    this.chain.set(mac);
    const le = plain.ne === 0 ? new Uint8Array(0) : extended ? Uint8Array.of(0, 0) : Uint8Array.of(0);
    const wire = concat(Uint8Array.of(withSm(info, plain.cla), plain.ins, plain.p1, plain.p2), lc, body, mac.subarray(0, this.s), le);
    return { wire, ctx: { chain: mac, counter } };
  }

  /**
   * Card: verifies and removes the protection of a wire command whose CLA indicates SM. On success
   * the chain has moved and the returned context is the one its response must use; on failure
   * nothing is decrypted and the caller must abort the session.
   */
  unwrapCommand(wire: RawCommand, info: ClaInfo): { ok: true; command: RawCommand; ctx: ResponseContext } | { ok: false; why: UnwrapFailure } {
    const keys = this.k();
    if (!info.sm) return { ok: false, why: 'sm-missing' };
    if (wire.data.length < this.s) return { ok: false, why: 'no-mac' };
    // The host always asks for Le = 00 / 00 00; anything else is a relay's edit outside the MAC.
    if (wire.ne !== 0 && wire.ne !== (wire.extended ? 65536 : 256)) return { ok: false, why: 'le' };
    const body = wire.data.subarray(0, wire.data.length - this.s);
    const got = wire.data.subarray(wire.data.length - this.s);
    const mac = this.cmac(concat(Uint8Array.of(macCla(wire.cla), wire.ins, wire.p1, wire.p2), lcField(wire.data.length, wire.extended), body));
    if (!ctEqual(mac.subarray(0, this.s), got)) {
      wipe(mac);
      return { ok: false, why: 'mac' };
    }
    this.chain.set(mac);
    const counter = this.nextCounter();
    let data: Uint8Array = body.slice();
    if (this.cDec && body.length > 0) {
      if (body.length % 16 !== 0) return { ok: false, why: 'length' };
      const icv = this.icv(counter, false);
      const padded = aesCbcDecrypt(keys.sEnc, icv, body);
      const plain = unpad80(padded);
      wipe(icv, padded);
      // The host never encrypts an empty field (a command without data is sent without data).
      if (!plain || plain.length === 0) return { ok: false, why: 'padding' };
      data = plain;
    }
    const command: RawCommand = {
      cla: withoutSm(info, wire.cla),
      ins: wire.ins,
      p1: wire.p1,
      p2: wire.p2,
      data,
      ne: wire.ne,
      extended: data.length > 255 || wire.ne > 256,
    };
    return { ok: true, command, ctx: { chain: mac, counter } };
  }

  /** Card: protects a response (data ‖ SW) for the command of `ctx`; an error SW goes out bare. */
  wrapResponse(ctx: ResponseContext, data: Uint8Array, sw: number): Uint8Array {
    const keys = this.k();
    const swBytes = Uint8Array.of(sw >> 8, sw & 0xff);
    if (isErrorSw(sw)) return swBytes;
    let body = data;
    if (this.rEnc && data.length > 0) {
      const padded = pad80(data);
      const icv = this.icv(ctx.counter, true);
      body = aesCbcEncrypt(keys.sEnc, icv, padded);
      wipe(icv, padded);
    }
    if (!this.rMac) return concat(body, swBytes);
    const m = concat(ctx.chain, body, swBytes);
    const rmac = aesCmac(keys.sRmac, m);
    const out = concat(body, rmac.subarray(0, this.s), swBytes);
    wipe(m, rmac);
    return out;
  }

  /**
   * Off-card: verifies and removes the protection of a response (data ‖ SW) to the command of
   * `ctx`; undefined if the R-MAC, the shape or the R-ENC padding is wrong.
   */
  unwrapResponse(ctx: ResponseContext, response: Uint8Array): PlainResponse | undefined {
    const keys = this.k();
    if (response.length < 2) return undefined;
    const sw = (response[response.length - 2]! << 8) | response[response.length - 1]!;
    const data = response.subarray(0, response.length - 2);
    if (!this.rMac) return { data: data.slice(), sw };
    if (isErrorSw(sw)) return data.length === 0 ? { data: new Uint8Array(0), sw } : undefined;
    if (data.length < this.s) return undefined;
    const body = data.subarray(0, data.length - this.s);
    const m = concat(ctx.chain, body, response.subarray(response.length - 2));
    const rmac = aesCmac(keys.sRmac, m);
    const ok = ctEqual(rmac.subarray(0, this.s), data.subarray(data.length - this.s));
    wipe(m, rmac);
    if (!ok) return undefined;
    if (!this.rEnc || body.length === 0) return { data: body.slice(), sw };
    if (body.length % 16 !== 0) return undefined;
    const icv = this.icv(ctx.counter, true);
    const padded = aesCbcDecrypt(keys.sEnc, icv, body);
    const plain = unpad80(padded);
    wipe(icv, padded);
    if (!plain || plain.length === 0) return undefined;
    return { data: plain, sw };
  }

  /** Zeroes the session keys and the chain; every later call throws ERR_GP_STATE. */
  wipe(): void {
    wipeSessionKeys(this.keys);
    this.keys = undefined;
    wipe(this.chain);
    this.counter = 0;
  }
}
