/**
 * CardClient: the setls card commands of docs/apdu-protocol.md §2 over a CardTransport. Every
 * logical command goes through apdu/transceive() (P1-More segmentation, 61xx/9Fxx/6Cxx following),
 * is serialised (one command at a time, so chains never interleave) and has a deadline. Every
 * status word other than 9000 becomes a CardError with a stable ERR_CARD_… code and the SW.
 * Publishes one `setls:apdu` diagnostics_channel event per APDU (metadata only, never bytes).
 * imports apdu/, bytes/, protocol/, transport/ and host/.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import { transceive, SW, type CommandApdu, type ResponseApdu } from '../apdu/index.js';
import { SetlsError } from '../bytes/index.js';
import {
  APPLET_AID,
  CLA_PROPRIETARY,
  CardStateCode,
  Channels,
  EXPORTED_PARAMETER_SESSION_INFO,
  EapP1,
  GetDataP1,
  Ins,
  PinRef,
  PskOp,
  ResetStateP2,
  SelectP1,
  SelectP2,
  SET_IDENTITY_P2,
  SessionKeyLength,
  StateP1,
  TrustAnchorOp,
  encodeCla,
} from '../protocol/index.js';
import { commandName, type CardTransport } from '../transport/index.js';
import { cardError, withTimeout } from './errors.js';
import { Mutex } from './mutex.js';
import {
  encodeCsrRequest,
  encodeChain,
  encodePin,
  encodeLabel,
  encodePolicy,
  encodeIdentityPolicy,
  encodeTrustAnchor,
  encodePsk,
  encodePskDelete,
  encodeExporter,
  parseExportedSession,
  KeyType,
  parseCardInfo,
  parseIdentityInfo,
  parseSelect,
  parseSessionInfo,
  type CardInfo,
  type CardPolicy,
  type KeyTypeName,
  type CsrRequest,
  type IdentityInfo,
  type SessionInfo,
  type IdentityPolicy,
  type PskSpec,
  type ExportedSessionBlob,
} from './card-codec.js';

/** The setls applet AID: F0 "setls" 01 (protocol's APPLET_AID). */
export const SETLS_AID = APPLET_AID;
export { CLA_PROPRIETARY, EapP1 };

/** Logical channels the CLA coding can address (0–19). */
const MAX_LOGICAL_CHANNELS = Channels.limit;

/** GET-STATE values (protocol's CardStateCode). */
export const CardState = CardStateCode;
export type CardState = (typeof CardState)[keyof typeof CardState];

export type PinKind = 'user' | 'operator';

export interface CardClientOptions {
  /** Use extended-length APDUs. Default: `transport.extendedLength`. */
  readonly extended?: boolean;
  /** Deadline for each APDU exchange with the card, ms. Default 30000 (key generation is slow on real cards). */
  readonly apduTimeoutMs?: number;
  /** Largest response accepted across a 61xx chain. Default 1 MiB. */
  readonly maxResponse?: number;
  /**
   * The logical channel this client talks on (0–19; default 0). Every command's CLA carries it, GET
   * RESPONSE too. Channels other than 0 must be opened first (`openChannel()` on another client of
   * the same card). Several clients (one per channel) may share one transport.
   */
  readonly channel?: number;
}

/** One `setls:apdu` event. */
export interface ApduEvent {
  readonly command: string;
  readonly commandLength: number;
  readonly responseLength: number;
  readonly sw: number;
  readonly durationMs: number;
}

const apduChannel = diagnostics_channel.channel('setls:apdu');
const EMPTY = new Uint8Array(0);

function pinP2(which: PinKind): number {
  if (which === 'user') return PinRef.user;
  if (which === 'operator') return PinRef.operator;
  throw new TypeError(`PIN kind must be 'user' or 'operator', got ${String(which)}`);
}

export class CardClient {
  readonly extended: boolean;
  private readonly apduTimeoutMs: number;
  private readonly maxResponse: number;
  private readonly lock = new Mutex();
  /** The logical channel of this client's commands. */
  readonly channel: number;
  private readonly cla: number;
  private readonly claIso: number;

  constructor(
    readonly transport: CardTransport,
    opts: CardClientOptions = {},
  ) {
    if (!transport || typeof transport.transmit !== 'function') throw new TypeError('CardClient needs a CardTransport');
    this.extended = opts.extended ?? transport.extendedLength;
    if (this.extended && !transport.extendedLength) {
      throw new SetlsError('ERR_HOST_OPTION', 'extended APDUs requested but the transport does not carry them');
    }
    this.apduTimeoutMs = opts.apduTimeoutMs ?? 30_000;
    this.maxResponse = opts.maxResponse ?? 1 << 20;
    this.channel = opts.channel ?? 0;
    this.cla = encodeCla('proprietary', this.channel);
    this.claIso = encodeCla('iso', this.channel);
  }

  /**
   * MANAGE CHANNEL open (sent on this client's channel): `channel` undefined → the card picks the
   * lowest free channel; else that channel. Returns the channel number. No channel left:
   * CardError with SW 6A81.
   */
  async openChannel(channel?: number): Promise<number> {
    if (channel !== undefined && (!Number.isInteger(channel) || channel < 1 || channel >= MAX_LOGICAL_CHANNELS)) {
      throw new RangeError(`a channel to open is 1..${MAX_LOGICAL_CHANNELS - 1}`);
    }
    if (channel !== undefined) {
      await this.ok('MANAGE-CHANNEL(open)', { cla: this.claIso, ins: Ins.manageChannel, p1: Channels.open, p2: channel, data: EMPTY, ne: 0 });
      return channel;
    }
    const d = await this.ok('MANAGE-CHANNEL(open)', { cla: this.claIso, ins: Ins.manageChannel, p1: Channels.open, p2: 0x00, data: EMPTY, ne: 1 });
    if (d.length !== 1 || d[0]! < 1 || d[0]! >= MAX_LOGICAL_CHANNELS) throw new SetlsError('ERR_CARD_RESPONSE', `MANAGE CHANNEL returned ${d.length} bytes`);
    return d[0]!;
  }

  /** MANAGE CHANNEL close of `channel` (default: this client's channel; channel 0 cannot be closed). */
  async closeChannel(channel: number = this.channel): Promise<void> {
    if (!Number.isInteger(channel) || channel < 1 || channel >= MAX_LOGICAL_CHANNELS) throw new RangeError(`a channel to close is 1..${MAX_LOGICAL_CHANNELS - 1}`);
    await this.ok('MANAGE-CHANNEL(close)', { cla: this.claIso, ins: Ins.manageChannel, p1: Channels.close, p2: channel, data: EMPTY, ne: 0 });
  }

  /** Largest Ne for one APDU. */
  private get neMax(): number {
    return this.extended ? 65536 : 256;
  }

  /** Sends one logical command (segmented and response-chained) and returns data and final SW, unchecked. */
  transceive(cmd: CommandApdu): Promise<ResponseApdu> {
    return this.runChain((transmit) => transceive(transmit, cmd, { extended: this.extended, maxResponse: this.maxResponse }));
  }

  /**
   * Runs one exchange of several APDUs (a command chain with its GET RESPONSEs, or a TLS-SE
   * RECV/SEND sequence) under this client's lock and, where the transport has them, inside one
   * PC/SC transaction, so no other command (or PC/SC client) can split it. `transmit` sends one raw
   * APDU with the per-APDU deadline and the `setls:apdu` diagnostics.
   */
  runChain<T>(fn: (transmit: (apdu: Uint8Array) => Promise<Uint8Array>) => Promise<T>): Promise<T> {
    // No named closure per call: under tsx (esbuild keepNames) each one costs a defineProperty of its
    // name, ~6 µs, on a path taken several times per handshake.
    const t = this.transport;
    return this.lock.run(t.withTransaction ? () => t.withTransaction!(() => fn(this.transmitApdu)) : () => fn(this.transmitApdu));
  }

  /** `transmitOne` bound once (runChain hands it to every exchange). */
  private readonly transmitApdu = (apdu: Uint8Array): Promise<Uint8Array> => this.transmitOne(apdu);

  private async transmitOne(apdu: Uint8Array): Promise<Uint8Array> {
    const t0 = performance.now();
    const cla = apdu[0]!;
    const ins = apdu[1]!;
    const p1 = apdu[2]!;
    const p2 = apdu[3]!;
    // A card that answered synchronously (in-process) cannot be late: no deadline timer for it.
    const now = this.transport.transmitDirect ? this.transport.transmitDirect(apdu) : this.transport.transmit(apdu);
    const res = now instanceof Promise ? await withTimeout(now, this.apduTimeoutMs, 'ERR_CARD_TIMEOUT', () => commandName(cla, ins, p1, p2)) : now;
    if (apduChannel.hasSubscribers) {
      const sw = res.length >= 2 ? (res[res.length - 2]! << 8) | res[res.length - 1]! : -1;
      const ev: ApduEvent = {
        command: commandName(cla, ins, p1, p2),
        commandLength: apdu.length,
        responseLength: res.length,
        sw,
        durationMs: performance.now() - t0,
      };
      apduChannel.publish(ev);
    }
    return res;
  }

  /** Sends a command and throws a CardError unless the card answers 9000. */
  private async ok(what: string, cmd: CommandApdu): Promise<Uint8Array> {
    const r = await this.transceive(cmd);
    if (r.sw !== SW.ok) throw cardError(what, r.sw);
    return r.data;
  }

  private cmd(ins: number, p1: number, p2: number, data: Uint8Array = EMPTY, ne = 0): CommandApdu {
    return { cla: this.cla, ins, p1, p2, data, ne };
  }

  /** SELECT the applet; returns its version string (e.g. "setls/1"). */
  async select(aid: Uint8Array = SETLS_AID): Promise<string> {
    if (!(aid instanceof Uint8Array) || aid.length < 5 || aid.length > 16) throw new TypeError('an AID is 5 to 16 bytes');
    const data = await this.ok('SELECT', { cla: this.claIso, ins: Ins.select, p1: SelectP1.byAid, p2: SelectP2.answer, data: aid, ne: 256 });
    return parseSelect(data);
  }

  /** VERIFY-PIN. Wrong PIN: CardError ERR_CARD_PIN_WRONG with `triesLeft`; blocked: ERR_CARD_PIN_BLOCKED. */
  async verifyPin(pin: string, which: PinKind = 'user'): Promise<void> {
    await this.ok(`VERIFY-PIN(${which})`, this.cmd(Ins.verifyPin, 0x00, pinP2(which), encodePin(pin, 'PIN')));
  }

  /** VERIFY-PIN with Lc = 0: whether the PIN is verified, else the tries left. */
  async pinStatus(which: PinKind = 'user'): Promise<{ verified: boolean; triesLeft?: number }> {
    const r = await this.transceive(this.cmd(Ins.verifyPin, 0x00, pinP2(which)));
    if (r.sw === SW.ok) return { verified: true };
    if (r.sw >= 0x63c0 && r.sw <= 0x63cf) return { verified: false, triesLeft: r.sw & 0x0f };
    if (r.sw === SW.authMethodBlocked) return { verified: false, triesLeft: 0 };
    throw cardError(`VERIFY-PIN(${which})`, r.sw);
  }

  async changePin(oldPin: string, newPin: string, which: PinKind = 'user'): Promise<void> {
    const data = new Uint8Array(16);
    data.set(encodePin(oldPin, 'old PIN'), 0);
    data.set(encodePin(newPin, 'new PIN'), 8);
    await this.ok(`CHANGE-PIN(${which})`, this.cmd(Ins.changePin, 0x00, pinP2(which), data));
  }

  /** UNBLOCK-PIN: sets the PIN `which` to `newPin` with full tries, given the PUK. */
  async unblockPin(puk: string, newPin: string, which: PinKind = 'user'): Promise<void> {
    const data = new Uint8Array(16);
    data.set(encodePin(newPin, 'new PIN'), 0);
    data.set(encodePin(puk, 'PUK'), 8);
    await this.ok(`UNBLOCK-PIN(${which})`, this.cmd(Ins.unblockPin, 0x00, pinP2(which), data));
  }

  /** SET-IDENTITY: the server identity used by the next handshakes (resets the TLS state). */
  async setIdentity(label: string): Promise<void> {
    await this.ok('SET-IDENTITY', this.cmd(Ins.setIdentity, 0x00, SET_IDENTITY_P2, encodeLabel(label)));
  }

  async getState(): Promise<CardState> {
    const d = await this.ok('GET-STATE', this.cmd(Ins.state, StateP1.get, 0x00, EMPTY, 1));
    if (d.length !== 1 || d[0]! < CardStateCode.identityNotSet || d[0]! > CardStateCode.closed) throw new SetlsError('ERR_CARD_RESPONSE', `GET-STATE returned ${d.length} bytes`);
    return d[0] as CardState;
  }

  /**
   * RESET-STATE: wipes the TLS session; the card is ready for a new handshake (`'dtls'`: the next one
   * is a DTLS 1.2 session, docs/apdu-protocol.md §8).
   */
  async resetState(mode: 'tls' | 'dtls' = 'tls'): Promise<void> {
    await this.ok('RESET-STATE', this.cmd(Ins.state, StateP1.reset, mode === 'dtls' ? ResetStateP2.dtls : ResetStateP2.tls));
  }

  /** GET-SESSION-KEY: MSK (64) or MSK ‖ EMSK (128). The caller should wipe it after use. */
  async getSessionKey(len: 64 | 128 = 64): Promise<Uint8Array> {
    if (len !== SessionKeyLength.msk && len !== SessionKeyLength.mskEmsk) throw new RangeError('session key length must be 64 or 128');
    const d = await this.ok('GET-SESSION-KEY', this.cmd(Ins.getSessionKey, 0x00, 0x00, EMPTY, len));
    if (d.length !== len) throw new SetlsError('ERR_CARD_RESPONSE', `GET-SESSION-KEY returned ${d.length} bytes, expected ${len}`);
    return d;
  }

  /** GET-EXPORTED-PARAMETER: the negotiated parameters of the current session. */
  async sessionInfo(): Promise<SessionInfo> {
    return parseSessionInfo(await this.ok('GET-EXPORTED-PARAMETER', this.cmd(Ins.getExportedParameter, 0x00, 0x00, Uint8Array.of(EXPORTED_PARAMETER_SESSION_INFO), this.neMax)));
  }

  async cardInfo(): Promise<CardInfo> {
    return parseCardInfo(await this.ok('GET-DATA(card info)', this.cmd(Ins.getData, GetDataP1.cardInfo, 0x00, EMPTY, this.neMax)));
  }

  async identityInfo(label: string): Promise<IdentityInfo> {
    return parseIdentityInfo(await this.ok('GET-DATA(identity)', this.cmd(Ins.getData, GetDataP1.identity, 0x00, encodeLabel(label), this.neMax)));
  }

  /** GENERATE-KEY (operator): a new key, generated inside the card, for identity `label`; returns its SPKI DER. */
  async generateKey(label: string, keyType: KeyTypeName = 'p256'): Promise<Uint8Array> {
    const p1 = KeyType[keyType];
    if (p1 === undefined) throw new RangeError(`key type must be one of ${Object.keys(KeyType).join(', ')}`);
    return this.ok('GENERATE-KEY', this.cmd(Ins.generateKey, p1, 0x00, encodeLabel(label), this.neMax));
  }

  /** PUT-POLICY (operator): suites, groups, unknown-SNI rule, ALPN, KeyUpdate limit. Absent fields are kept. */
  async putPolicy(policy: CardPolicy): Promise<void> {
    await this.ok('PUT-POLICY', this.cmd(Ins.putPolicy, 0x00, 0x00, encodePolicy(policy)));
  }

  /** GET-CSR (operator): a PKCS#10 CSR DER signed inside the card. */
  async getCsr(req: CsrRequest): Promise<Uint8Array> {
    return this.ok('GET-CSR', this.cmd(Ins.getCsr, 0x00, 0x00, encodeCsrRequest(req), this.neMax));
  }

  /** PUT-CHAIN (operator): installs the certificate chain (leaf first) of identity `label`. */
  async putChain(label: string, certsDer: readonly Uint8Array[]): Promise<void> {
    await this.ok('PUT-CHAIN', this.cmd(Ins.putChain, 0x00, 0x00, encodeChain(label, certsDer)));
  }

  /** PUT-IDENTITY-POLICY (operator): client auth, session export and exporter labels of one identity. Absent fields are kept. */
  async putIdentityPolicy(policy: IdentityPolicy): Promise<void> {
    await this.ok('PUT-IDENTITY-POLICY', this.cmd(Ins.putIdentityPolicy, 0x00, 0x00, encodeIdentityPolicy(policy)));
  }

  /** PUT-TRUST-ANCHOR (operator): adds a CA certificate (DER) client chains of identity `label` may end at. */
  async putTrustAnchor(label: string, caDer: Uint8Array): Promise<void> {
    await this.ok('PUT-TRUST-ANCHOR', this.cmd(Ins.putTrustAnchor, 0x00, TrustAnchorOp.add, encodeTrustAnchor(label, caDer)));
  }

  /** PUT-TRUST-ANCHOR P2 01 (operator): removes every trust anchor of identity `label`. */
  async clearTrustAnchors(label: string): Promise<void> {
    await this.ok('PUT-TRUST-ANCHOR(clear)', this.cmd(Ins.putTrustAnchor, 0x00, TrustAnchorOp.clear, encodeTrustAnchor(label)));
  }

  /** PUT-PSK (operator): adds or replaces an external PSK. The caller should wipe `key` afterwards. */
  async putPsk(psk: PskSpec): Promise<void> {
    const data = encodePsk(psk);
    try {
      await this.ok('PUT-PSK', this.cmd(Ins.putPsk, 0x00, PskOp.put, data));
    } finally {
      data.fill(0);
    }
  }

  /** PUT-PSK P2 01 (operator): deletes the PSK with this identity. */
  async deletePsk(identity: Uint8Array | string): Promise<void> {
    await this.ok('PUT-PSK(delete)', this.cmd(Ins.putPsk, 0x00, PskOp.remove, encodePskDelete(identity)));
  }

  /**
   * SET-CLOCK (operator): sets the card's time floor to `seconds` (Unix time; the floor below which
   * the card refuses a host time as rolled back), or unsets it with 0 (docs/apdu-protocol.md §2).
   */
  async setClock(seconds: number): Promise<void> {
    if (!Number.isInteger(seconds) || seconds < 0 || seconds > 0xffffffff) throw new RangeError('SET-CLOCK takes Unix seconds 0..2^32-1');
    const data = seconds === 0 ? EMPTY : Uint8Array.of(seconds >>> 24, (seconds >>> 16) & 0xff, (seconds >>> 8) & 0xff, seconds & 0xff);
    await this.ok('SET-CLOCK', this.cmd(Ins.setClock, 0x00, 0x00, data));
  }

  /**
   * EXPORT-SESSION (user): the current session's traffic keys and sequence numbers (TLS-Tandem);
   * the card then wipes the session (state CLOSED). ERR_CARD_CONDITIONS_NOT_SATISFIED (6985) when
   * the identity's policy does not allow export or no session is established. SECRET: wipe the
   * result with wipeExportedSession().
   */
  async exportSession(): Promise<ExportedSessionBlob> {
    return parseExportedSession(await this.ok('EXPORT-SESSION', this.cmd(Ins.exportSession, 0x00, 0x00, EMPTY, this.neMax)));
  }

  /**
   * EXPORTER (user): RFC 5705 / RFC 8446 §7.5 keying material of the current session. `context`
   * undefined = no context (differs from an empty one in TLS 1.2). Reserved or not-allowed labels:
   * ERR_CARD_CONDITIONS_NOT_SATISFIED.
   */
  async exporter(label: string, context: Uint8Array | undefined, length: number): Promise<Uint8Array> {
    const d = await this.ok('EXPORTER', this.cmd(Ins.exporter, 0x00, 0x00, encodeExporter(label, context, length), Math.min(Math.max(length, 1), this.neMax)));
    if (d.length !== length) throw new SetlsError('ERR_CARD_RESPONSE', `EXPORTER returned ${d.length} bytes, expected ${length}`);
    return d;
  }

  /**
   * PROCESS-EAP (P2 00) or PROCESS-EAP-ENCRYPT (P2 80|CT): one EAP-Response in, the card's answer
   * and SW out, unchecked (7001 carries data). Used by EapSession. `p1Flags` (P2 00 only):
   * EapP1.start wipes the card's TLS session first, EapP1.info asks for the session info after an
   * EAP-Success (docs/apdu-protocol.md §3), EapP1.end (a DECRYPT) wipes it after an answer that
   * ends the session (§4), EapP1.fold lets the answer with the card's last records carry the
   * EAP-Success too (§3).
   */
  async processEap(eapResponse: Uint8Array, p2 = 0x00, p1Flags = 0x00): Promise<ResponseApdu> {
    if (!(eapResponse instanceof Uint8Array) || eapResponse.length < 4) throw new TypeError('an EAP-Response is at least 4 bytes');
    if ((p1Flags & ~(EapP1.start | EapP1.info | EapP1.end | EapP1.fold)) !== 0 || (p1Flags !== 0 && p2 !== 0)) throw new RangeError('PROCESS-EAP flags are START/INFO/END/FOLD, with P2 00 only');
    return this.transceive(this.cmd(Ins.processEap, p1Flags, p2, eapResponse, this.neMax));
  }
}
