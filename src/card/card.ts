/**
 * EmulatedCard: the setls applet behind ISO 7816-4 APDUs (docs/apdu-protocol.md). `process()` is
 * the only way in: APDU bytes in, response APDU bytes out, synchronous, never throwing.
 *
 * Layers: APDU checks (CLA, INS, selection, P1/P2, access, lengths) → command segmentation (P1 bit 0)
 * → the command → response chaining (Ne, 61xx, GET RESPONSE/FETCH). Persistent state goes through
 * the sealed store; transient state (PIN verification, TLS session, chains, pending responses) is
 * cleared by `reset()`.
 *
 * Secrets: private keys (KeyObjects in `state`), PIN hashes, PSK keys and the ticket key (in
 * `state`, wiped by `close()`), the ticket-key copy of the current session's engine (wiped when the
 * session goes), PSK and session-cache copies handed to the engine (wiped after each APDU), the
 * TLS 1.2 session-ID cache (master secrets; wiped on eviction, clear and close), the TLS session
 * (engine + buffers), APDU input copies (PINs, plaintext, PSKs) and pending responses (plaintext,
 * export blobs, exporter output); wiped when done.
 * imports bytes/, apdu/, eap/ (via session), tls/ (api types) and node built-ins.
 */
import { randomFillSync } from 'node:crypto';
import { SetlsError, concat, ctEqual, equalBytes, freshCopy, readU32, wipe } from '../bytes/index.js';
import { EapCode } from '../eap/index.js';
import { ApduError, PendingResponse, SW, encodeResponse, parseCommand, type CommandApdu } from '../apdu/index.js';
import type { TicketKey, TlsEntropy, TlsIdentity, TlsPsk, TlsServerConfig } from '../tls/api.js';
import { NamedGroup } from '../tls/constants.js';
import {
  APPLET_AID,
  CHAINABLE_INS,
  CLA_ISO,
  CLA_PROPRIETARY,
  CardStateCode,
  Channels,
  EXPORTED_PARAMETER_SESSION_INFO,
  EapP1,
  EncryptP2,
  Ins,
  KeyType,
  PinRef,
  PskOp,
  SetlsSw,
  TLS_SE_AID,
  TrustAnchorOp,
  decodeCla,
  encodeAlertTlv,
  encodeSessionInfo,
} from '../protocol/index.js';
import { DEFAULT_MAX_CHANNELS, Limits, PinPolicy, RESERVED_EXPORTER_LABELS } from './constants.js';
import { CardError, cardErr } from './errors.js';
import { buildCsr, checkChain, generateIdentity, parseChainData, parseCsrRequest, tlsIdentity } from './identity.js';
import { bestHostMatch } from './names.js';
import { DEFAULT_POLICY, applyPolicyTlv, type CardPolicy } from './policy.js';
import { p256Scalar, type RandomSource } from './signers.js';
import { hashPin, isPaddedPin, makePinRecord, padPin, pendingTag } from './pins.js';
import { CardClock, type MonotonicMs } from './clock.js';
import { DtlsEapSession, createCardDtlsEngine } from './dtls-session.js';
import { EapTlsSession, type SessionDeps, type TlsFactory } from './session.js';
import { cloneState, decodeLabel, deserializeState, serializeState, type CardState, type IdentityRecord, type PinName } from './state.js';
import { SealedStore, type StoreHooks } from './store.js';
import { cardInfoTlv, identityTlv, selectResponse } from './views.js';
import { SessionIdCache, parseExporterRequest, parseIdentityPolicy, parsePskCommand, parseTrustAnchorData } from './tls-commands.js';
import { TlsSeApplet } from './tls-se/applet.js';
import { tlsSeEngineConfig } from './tls-se/config.js';

export type { RandomSource } from './signers.js';

export interface EmulatedCardOpenOptions {
  /** The card's state folder (holds `state.sealed`). */
  readonly dir: string;
  /** 32-byte AES-256-GCM key sealing the state (copied; wiped by `close()`). */
  readonly masterKey: Uint8Array;
  /**
   * Logical channels the card keeps open at most, channel 0 included (1–20). Default 4. Each channel
   * has its own selected applet, TLS session, PIN verification, command chain and pending response.
   */
  readonly channels?: number;
  /**
   * The card's RNG. Default node:crypto's CSPRNG, drawn in blocks (serial, PIN salts, TLS randoms; ephemeral keys,
   * ECDSA nonces and PSS salts then come from node:crypto / OpenSSL directly).
   *
   * When given, the card runs in **deterministic mode**: everything random in a session comes from
   * it — ServerHello.random, the ephemeral ECDHE private key (x25519: 32 bytes; secp256r1: 32 bytes
   * redrawn until in [1, n-1]), the HelloRetryRequest cookie key and nonce, the ECDSA nonce k and the
   * RSA-PSS salt of CertificateVerify and of GET-CSR. Same state + same `random` + same commands →
   * the same response bytes (test/fixtures/card-trace). Exceptions: GENERATE-KEY keys come from
   * node:crypto's RNG, and the sealed store's AES-GCM nonce always comes from the system RNG.
   * For tests only (the ECDSA arithmetic there is not constant-time).
   */
  readonly random?: RandomSource;
  /** Test hooks into the atomic write (simulated power cuts). */
  readonly storeHooks?: StoreHooks;
  /**
   * The card's monotonic tick counter in ms (clock.ts: it bounds how fast host times move the time
   * floor). Default: the process's monotonic clock. Never the host's calendar time.
   */
  readonly monotonicMs?: MonotonicMs;
  /** What the folder lock says this card's process runs (default: the process's command line). */
  readonly owner?: string;
  /** The TLS engine factory. Default: `createTlsServer` of src/tls (wired by src/card/index.ts). */
  readonly tlsFactory?: TlsFactory;
}

export interface EmulatedCardCreateOptions extends EmulatedCardOpenOptions {
  readonly userPin: string;
  readonly operatorPin: string;
  readonly puk: string;
}

/** The last error the card turned into a status word (diagnostics for the host and tests; never secret). */
export interface CardErrorInfo {
  readonly code: string;
  readonly message: string;
  readonly sw: number;
}

type Access = 'none' | 'user' | 'operator';

interface Chain {
  readonly cla: number;
  readonly ins: number;
  /** P1 without the More bit: every segment of a chain carries the same flags (PROCESS-EAP START/INFO). */
  readonly p1: number;
  readonly p2: number;
  readonly parts: Uint8Array[];
  total: number;
}

interface Reply {
  readonly data: Uint8Array;
  readonly sw: number;
}

const EMPTY = new Uint8Array(0);
const ok = (data: Uint8Array = EMPTY): Reply => ({ data, sw: SW.ok });

let defaultTlsFactory: TlsFactory | undefined;

/** Sets the TLS engine used by cards created without `tlsFactory` (src/card/index.ts wires src/tls). */
export function setDefaultTlsFactory(f: TlsFactory): void {
  defaultTlsFactory = f;
}

function checkedRandom(src: RandomSource): RandomSource {
  return (n: number) => {
    const b = src(n);
    if (!(b instanceof Uint8Array) || b.length !== n) throw new SetlsError('ERR_CARD_RANDOM', `the card RNG returned a wrong-sized value for ${n} bytes`);
    return freshCopy(b);
  };
}

/**
 * The default card RNG: node:crypto's CSPRNG drawn a block at a time (one randomFillSync for many
 * small draws: TLS randoms, ticket nonces...). Bytes handed out are zeroed in the block at once;
 * `wipe()` (card reset and close) zeroes the bytes not yet drawn.
 */
class RandomPool {
  private static readonly BLOCK = 1024;
  /** Draws larger than this bypass the block. */
  private static readonly MAX_POOLED = 64;
  private readonly buf = new Uint8Array(RandomPool.BLOCK);
  private pos = RandomPool.BLOCK;
  readonly source: RandomSource = (n: number): Uint8Array => this.take(n);

  take(n: number): Uint8Array {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`random bytes: bad length ${n}`);
    if (n > RandomPool.MAX_POOLED) return randomFillSync(new Uint8Array(n));
    if (this.pos + n > this.buf.length) {
      randomFillSync(this.buf);
      this.pos = 0;
    }
    const out = this.buf.slice(this.pos, this.pos + n);
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  wipe(): void {
    this.buf.fill(0);
    this.pos = this.buf.length;
  }
}

/**
 * The transient state of one logical channel (docs/apdu-protocol.md §1.1): selected applet, PIN
 * verification (per channel), SET-IDENTITY choice, TLS session, command chain and pending response.
 * Persistent state (identities, PIN counters, policy, PSKs, ticket key) and the TLS 1.2 session-ID
 * cache are the card's, shared by all channels.
 */
class LogicalChannel {
  selected = false;
  /** Which applet the last successful SELECT chose: the setls applet or the TLS-SE applet (tls-se/). */
  active: 'setls' | 'tls-se' = 'setls';
  tlsSe!: TlsSeApplet;
  readonly verified = { user: false, operator: false };
  chain: Chain | undefined;
  pending: PendingResponse | undefined;
  session!: EapTlsSession | DtlsEapSession;
  /** SET-IDENTITY choice (transient). */
  identityLabel: string | undefined;
  /** Label of the identity the engine picked for the current session (session info `26`). */
  servedLabel: string | undefined;
  /** Host time of the current session (Unix seconds), if the first Response carried one. */
  sessionTime: number | undefined;
  /** Copies of the ticket key handed to the current session's engine; wiped when the session goes. */
  sessionSecrets: Uint8Array[] = [];
  /** The wiring of this channel's TLS / DTLS sessions (made at first use). */
  tlsDeps: SessionDeps | undefined;
  dtlsDeps: SessionDeps | undefined;

  constructor(readonly number: number) {}
}

export class EmulatedCard {
  /** Open logical channels by number (channel 0 always open). */
  private readonly channels: (LogicalChannel | undefined)[];
  /** The channel of the APDU being processed. */
  private ch: LogicalChannel;
  /** TLS-SE external PSKs (identity hex → key). Kept in card RAM: lost when the card process ends. */
  private readonly psks = new Map<string, Uint8Array>();
  /** `lastTime` (the time floor) as last written to the store. */
  private persistedTime: number;
  /** The time model: floor bounds, latest host time (clock.ts). */
  private readonly clock: CardClock;
  private closed = false;
  /** Ephemeral private keys handed to the engine (deterministic mode); wiped after each APDU. */
  private readonly issuedKeys: Uint8Array[] = [];
  private lastErr: CardErrorInfo | undefined;
  /** TLS 1.2 session-ID cache (card RAM only: lost when the card object goes; never sealed). */
  private readonly sessionCache = new SessionIdCache(Limits.sessionCacheEntries, (copy) => this.issuedKeys.push(copy));
  /** The engine's view of the session-ID cache (the same hooks for every session). */
  private readonly sessionCacheHooks = {
    get: (id: Uint8Array) => this.sessionCache.get(id),
    set: (id: Uint8Array, st: Uint8Array) => this.sessionCache.set(id, st),
    delete: (id: Uint8Array) => this.sessionCache.delete(id),
  };
  private readonly findPskHook = (identity: Uint8Array): TlsPsk | undefined => this.findPsk(identity);
  /** The policy's lists as handed to engines: frozen copies, remade when the policy object changes (public data). */
  private policyLists: PolicyLists | undefined;

  private constructor(
    private readonly store: SealedStore,
    private state: CardState,
    private readonly random: RandomSource,
    /** The default RNG's block (undefined with a given `random`): wiped on reset and close. */
    private readonly randomPool: RandomPool | undefined,
    private readonly factory: TlsFactory | undefined,
    /** Deterministic mode: the card was given `random` (see EmulatedCardOpenOptions.random). */
    private readonly deterministic: boolean,
    maxChannels: number | undefined,
    monotonicMs: MonotonicMs | undefined,
  ) {
    const max = maxChannels ?? DEFAULT_MAX_CHANNELS;
    this.persistedTime = state.lastTime;
    this.clock = new CardClock(state.lastTime, monotonicMs);
    this.channels = new Array<LogicalChannel | undefined>(max).fill(undefined);
    this.ch = this.openChannel(0);
  }

  /** A fresh channel `n` (nothing selected, no PIN verified, a new TLS session). */
  private openChannel(n: number): LogicalChannel {
    const ch = new LogicalChannel(n);
    ch.session = this.newSession(ch);
    ch.tlsSe = this.newTlsSe(ch);
    this.channels[n] = ch;
    return ch;
  }

  /** Closes channel `n`: its session, chain, pending response and PIN verification are wiped. */
  private closeChannel(n: number): void {
    const ch = this.channels[n];
    if (!ch) return;
    this.clearChannel(ch);
    ch.session.dispose();
    wipe(...ch.sessionSecrets.splice(0));
    this.channels[n] = undefined;
  }

  /** Clears a channel's transient state (as after a reset) and gives it a new TLS session. */
  private clearChannel(ch: LogicalChannel): void {
    ch.tlsSe.reset();
    ch.active = 'setls';
    ch.session.dispose();
    ch.session = this.newSession(ch);
    ch.selected = false;
    ch.verified.user = false;
    ch.verified.operator = false;
    ch.identityLabel = undefined;
    ch.sessionTime = undefined;
    ch.servedLabel = undefined;
    if (ch.chain) for (const p of ch.chain.parts) wipe(p);
    ch.chain = undefined;
    ch.pending?.wipe();
    ch.pending = undefined;
  }

  /** Logical channels the card keeps open at most (channel 0 included). */
  get maxChannels(): number {
    return this.channels.length;
  }

  /** The numbers of the open logical channels (0 first). */
  get openChannels(): number[] {
    return this.channels.flatMap((c, i) => (c ? [i] : []));
  }

  /** Manufactures a new card in `dir` (refuses to overwrite one: ERR_CARD_EXISTS). */
  static create(opts: EmulatedCardCreateOptions): EmulatedCard {
    checkChannels(opts.channels);
    const user = padPin(opts.userPin);
    const operator = padPin(opts.operatorPin);
    const puk = padPin(opts.puk);
    // The folder is made and locked first: the existence check and the first write are the lock holder's.
    const store = SealedStore.open(opts.dir, opts.masterKey, opts.storeHooks, { create: true, ...(opts.owner !== undefined ? { command: opts.owner } : {}) });
    if (store.exists()) {
      store.close();
      throw new SetlsError('ERR_CARD_EXISTS', `a card already exists in ${opts.dir}`);
    }
    const pool = opts.random ? undefined : new RandomPool();
    const random = opts.random ? checkedRandom(opts.random) : pool!.source;
    const state: CardState = {
      serial: random(8),
      pins: {
        user: makePinRecord(user, random(16), PinPolicy.userTries),
        operator: makePinRecord(operator, random(16), PinPolicy.operatorTries),
        puk: makePinRecord(puk, random(16), PinPolicy.pukTries),
      },
      lastTime: 0,
      identities: [],
      policy: DEFAULT_POLICY,
      psks: [],
      ticketKey: undefined,
    };
    wipe(user, operator, puk);
    const card = new EmulatedCard(store, state, random, pool, opts.tlsFactory, opts.random !== undefined, opts.channels, opts.monotonicMs);
    try {
      card.write(state);
    } catch (e) {
      card.close();
      throw e;
    }
    return card;
  }

  /**
   * Loads the card in `dir`, taking the folder's lock until `close()` (ERR_CARD_LOCKED, naming the
   * holder, when another process or card object has it); a wrong master key or a corrupt state
   * gives ERR_CARD_STATE.
   */
  static open(opts: EmulatedCardOpenOptions): EmulatedCard {
    checkChannels(opts.channels);
    const store = SealedStore.open(opts.dir, opts.masterKey, opts.storeHooks, opts.owner !== undefined ? { command: opts.owner } : {});
    try {
      if (!store.exists()) throw new SetlsError('ERR_CARD_STATE', `no card state in ${opts.dir}`);
      store.removeLeftoverTmp();
      const plain = store.read();
      let state: CardState;
      try {
        state = deserializeState(plain);
      } finally {
        wipe(plain);
      }
      const pool = opts.random ? undefined : new RandomPool();
      const random = opts.random ? checkedRandom(opts.random) : pool!.source;
      return new EmulatedCard(store, state, random, pool, opts.tlsFactory, opts.random !== undefined, opts.channels, opts.monotonicMs);
    } catch (e) {
      store.close();
      throw e;
    }
  }

  /** The last error turned into a status word by `process` (undefined after a success). */
  get lastError(): CardErrorInfo | undefined {
    return this.lastErr;
  }

  /**
   * Processes one command APDU and returns the response APDU (data ‖ SW1 SW2) as a fresh array
   * (own ArrayBuffer, byteOffset 0). Never throws: errors become status words, unexpected ones 6F00.
   */
  process(apdu: Uint8Array): Uint8Array {
    let reply: Reply;
    const input = apdu instanceof Uint8Array ? freshCopy(apdu) : undefined;
    try {
      if (!input) throw cardErr.length('an APDU is a Uint8Array');
      if (this.closed) throw new CardError('ERR_CARD_CLOSED', 'the card was closed', SW.conditionsNotSatisfied);
      reply = this.processApdu(input);
      this.lastErr = undefined;
    } catch (e) {
      const sw = e instanceof CardError || e instanceof ApduError ? e.sw : SW.internalError;
      this.lastErr = {
        code: e instanceof SetlsError ? e.code : 'ERR_CARD_INTERNAL',
        message: e instanceof Error ? e.message : String(e),
        sw,
      };
      reply = { data: EMPTY, sw };
    } finally {
      wipe(input, ...this.issuedKeys.splice(0));
    }
    const out = encodeResponse(reply.data, reply.sw); // a fresh array (own ArrayBuffer, byteOffset 0)
    wipe(reply.data);
    return out;
  }

  /** Card reset / power cycle: transient state cleared, persistent state kept; every channel but 0 closed. */
  reset(): void {
    for (let n = 1; n < this.channels.length; n++) this.closeChannel(n);
    this.ch = this.channels[0]!;
    this.clearChannel(this.ch);
    this.randomPool?.wipe();
  }

  /** Power off for good: resets, wipes the master key copy; `process` answers 6985 afterwards. */
  close(): void {
    if (this.closed) return;
    this.reset();
    for (const k of this.psks.values()) wipe(k);
    this.psks.clear();
    this.sessionCache.clear();
    for (const p of this.state.psks) wipe(p.key);
    if (this.state.ticketKey) wipe(this.state.ticketKey.key);
    this.store.close();
    this.closed = true;
  }

  // ---------------------------------------------------------------- APDU layer

  private processApdu(input: Uint8Array): Reply {
    let cmd: CommandApdu;
    try {
      cmd = parseCommand(input);
    } catch (e) {
      this.dropChain();
      this.dropPending();
      throw e;
    }
    try {
      const dc = decodeCla(cmd.cla);
      if (!dc || dc.kind === 'gp' || dc.sm || dc.chaining) {
        // An undecodable class byte: answered on the basic channel (as before channels existed).
        this.ch = this.channels[0]!;
        return this.dispatch(cmd);
      }
      const ch = dc.channel < this.channels.length ? this.channels[dc.channel] : undefined;
      if (!ch) throw new CardError('ERR_CARD_CHANNEL', `logical channel ${dc.channel} is not open`, Channels.swChannelNotSupported);
      this.ch = ch;
      // From here on the command is seen in its channel-0 class (00 / A0).
      const cla = dc.kind === 'iso' ? CLA_ISO : CLA_PROPRIETARY;
      const norm: CommandApdu = cla === cmd.cla ? cmd : withCla(cmd, cla);
      if (dc.kind === 'iso' && cmd.ins === Channels.insManageChannel) return this.manageChannel(norm);
      return this.dispatch(norm);
    } finally {
      wipe(cmd.data);
    }
  }

  /**
   * MANAGE CHANNEL (interindustry class only). Open: P1 00, P2 00 → the lowest free channel, its
   * number as the one data byte; P2 = n → opens channel n (no data). Close: P1 80, P2 = n (P2 00:
   * the channel in CLA). Like any other command it breaks a chain and drops the pending response of
   * the channel it arrives on. A channel opened from channel 0 starts with nothing selected; one
   * opened from another channel starts with the same applet selected (ISO 7816-4), PIN not verified.
   */
  private manageChannel(cmd: CommandApdu): Reply {
    const ch = this.ch;
    if (ch.chain) {
      this.dropChain();
      this.dropPending();
      throw new CardError('ERR_CARD_CHAIN', 'command chain broken by a different command', SW.lastCommandOfChainExpected);
    }
    this.dropPending();
    if (cmd.data.length !== 0) throw cardErr.length('MANAGE CHANNEL takes no data');
    if (cmd.p1 === Channels.open) {
      let n = cmd.p2;
      if (n === 0) {
        n = this.channels.findIndex((c) => !c);
        if (n < 0) throw new CardError('ERR_CARD_NO_CHANNEL', `all ${this.channels.length} logical channels are open`, Channels.swNoChannelLeft);
      } else {
        if (n >= Channels.limit) throw cardErr.p1p2(`no logical channel ${n}`);
        if (n >= this.channels.length) throw new CardError('ERR_CARD_NO_CHANNEL', `the card keeps at most ${this.channels.length} logical channels`, Channels.swNoChannelLeft);
        if (this.channels[n]) throw cardErr.p1p2(`logical channel ${n} is already open`);
      }
      const opened = this.openChannel(n);
      if (ch.number !== 0) {
        opened.selected = ch.selected;
        opened.active = ch.active;
      }
      if (cmd.p2 !== 0) return ok();
      return this.respond(cmd, ok(Uint8Array.of(n)));
    }
    if (cmd.p1 === Channels.close) {
      const n = cmd.p2 === 0 ? ch.number : cmd.p2;
      if (n === 0) throw cardErr.p1p2('the basic channel cannot be closed');
      if (n >= this.channels.length) throw cardErr.p1p2(`no logical channel ${n}`);
      if (!this.channels[n]) throw new CardError('ERR_CARD_CHANNEL', `logical channel ${n} is not open`, Channels.swChannelNotSupported);
      this.closeChannel(n);
      this.ch = this.channels[0]!;
      return ok();
    }
    throw cardErr.p1p2('MANAGE CHANNEL P1 must be 00 (open) or 80 (close)');
  }

  private dispatch(cmd: CommandApdu): Reply {
    // The TLS-SE applet takes every APDU but SELECT while it is selected.
    if (this.ch.active === 'tls-se' && !(cmd.cla === CLA_ISO && cmd.ins === Ins.select)) return this.ch.tlsSe.process(cmd);
    const chainable = CHAINABLE_INS.has(cmd.ins) && cmd.cla === CLA_PROPRIETARY;
    if (this.ch.chain && (!chainable || cmd.cla !== this.ch.chain.cla || cmd.ins !== this.ch.chain.ins || cmd.p2 !== this.ch.chain.p2)) {
      this.dropChain();
      this.dropPending();
      throw new CardError('ERR_CARD_CHAIN', 'command chain broken by a different command', SW.lastCommandOfChainExpected);
    }
    if (cmd.cla !== CLA_ISO && cmd.cla !== CLA_PROPRIETARY) {
      this.dropPending();
      throw new CardError('ERR_CARD_CLA', `CLA 0x${cmd.cla.toString(16)} not supported`, SW.claNotSupported);
    }
    if (cmd.ins === Ins.getResponse || cmd.ins === Ins.fetch) return this.getResponse(cmd);
    this.dropPending();
    if (cmd.cla === CLA_ISO) {
      if (cmd.ins !== Ins.select) throw new CardError('ERR_CARD_INS', `INS 0x${cmd.ins.toString(16)} not supported with CLA 00`, SW.insNotSupported);
      return this.respond(cmd, this.select(cmd));
    }
    let access: Access;
    try {
      access = this.precheck(cmd); // 6D00, 6985 (not selected), 6A86
    } catch (e) {
      this.dropChain();
      throw e;
    }
    if (access !== 'none' && !this.ch.verified[access]) {
      this.dropChain();
      throw cardErr.security(`${access} PIN not verified`);
    }
    let data = cmd.data;
    if (this.ch.chain && (cmd.p1 & ~0x01) !== this.ch.chain.p1) {
      // Same command, other flags (PROCESS-EAP START/INFO): a different command breaks the chain.
      this.dropChain();
      throw new CardError('ERR_CARD_CHAIN', 'command chain broken by different P1 flags', SW.lastCommandOfChainExpected);
    }
    if (chainable && (cmd.p1 & 0x01) !== 0) {
      const c = this.ch.chain ?? { cla: cmd.cla, ins: cmd.ins, p1: cmd.p1 & ~0x01, p2: cmd.p2, parts: [], total: 0 };
      c.total += data.length;
      if (c.total > Limits.maxChain) {
        this.ch.chain = c;
        this.dropChain();
        throw cardErr.length(`command chain longer than ${Limits.maxChain} bytes`);
      }
      c.parts.push(data.slice());
      this.ch.chain = c;
      return ok();
    }
    if (this.ch.chain) {
      if (this.ch.chain.total + data.length > Limits.maxChain) {
        this.dropChain();
        throw cardErr.length(`command chain longer than ${Limits.maxChain} bytes`);
      }
      data = concat(...this.ch.chain.parts, data);
      this.dropChain();
    }
    try {
      return this.respond(cmd, this.execute(cmd, data));
    } finally {
      if (data !== cmd.data) wipe(data);
    }
  }

  /**
   * PROCESS-EAP with its P1 flags (§3): START wipes the channel's session first (RESET-STATE folded
   * into the first Response of a handshake); INFO appends the session info TLV beyond the EAP Length
   * of an EAP-Success (GET-EXPORTED-PARAMETER folded into the handshake's last exchange), and the
   * alert TLV `2C` (level, description) beyond the EAP Length of a `7001` answer, so the host knows
   * which alert the card sent without reading the (possibly encrypted) alert record.
   */
  private processEap(cmd: CommandApdu, data: Uint8Array): Reply {
    if ((cmd.p1 & EapP1.start) !== 0) this.resetSession('tls');
    const answer = this.ch.session.processEap(cmd.p2, data);
    if ((cmd.p1 & EapP1.info) === 0) return answer;
    if (answer.sw === SetlsSw.authFailure) {
      const alert = this.ch.session.alertSent;
      return alert === undefined ? answer : { data: concat(answer.data, encodeAlertTlv(alert)), sw: answer.sw };
    }
    const info = answer.data[0] === EapCode.success ? this.ch.session.info : undefined;
    return info ? { data: concat(answer.data, encodeSessionInfo(info, this.ch.servedLabel)), sw: answer.sw } : answer;
  }

  /** Applies Ne: the whole reply when it fits, else Ne bytes and 61xx (Ne = 0: no data, 61xx). */
  private respond(cmd: CommandApdu, r: Reply): Reply {
    if (r.data.length === 0) return r;
    if (r.data.length <= cmd.ne) return r;
    const p = new PendingResponse(r.data.slice(), r.sw);
    wipe(r.data);
    const first = p.take(cmd.ne);
    if (p.remaining > 0) this.ch.pending = p;
    return first;
  }

  private getResponse(cmd: CommandApdu): Reply {
    if (cmd.p1 !== 0 || cmd.p2 !== 0) throw cardErr.p1p2('GET RESPONSE takes P1 = P2 = 00');
    if (cmd.data.length !== 0) throw cardErr.length('GET RESPONSE takes no data');
    const p = this.ch.pending;
    if (!p) throw cardErr.conditions('no response data pending');
    if (cmd.ne === 0) {
      // No Le: tell the host how many bytes to ask for (the data stays pending).
      return { data: EMPTY, sw: SW.wrongLe | (p.remaining >= 256 ? 0 : p.remaining) };
    }
    const r = p.take(cmd.ne);
    if (p.remaining === 0) this.dropPending();
    return r;
  }

  private dropChain(): void {
    if (this.ch.chain) for (const p of this.ch.chain.parts) wipe(p);
    this.ch.chain = undefined;
  }

  private dropPending(): void {
    this.ch.pending?.wipe();
    this.ch.pending = undefined;
  }

  /** Checks INS, selection and P1/P2 of a proprietary command; returns the PIN it needs. */
  private precheck(cmd: CommandApdu): Access {
    const { ins, p1, p2 } = cmd;
    if (!PROPRIETARY_INS.has(ins)) throw new CardError('ERR_CARD_INS', `INS 0x${ins.toString(16)} not supported`, SW.insNotSupported);
    if (!this.ch.selected) throw cardErr.conditions('the setls applet is not selected');
    switch (ins) {
      case Ins.verifyPin:
      case Ins.changePin:
      case Ins.unblockPin:
        checkP1P2(p1 === 0 && (p2 === PinRef.user || p2 === PinRef.operator), cmd);
        return 'none';
      case Ins.setIdentity:
        checkP1P2(p1 === 0 && p2 === 0x80, cmd);
        return 'user';
      case Ins.state:
        checkP1P2((p1 === 0x00 && p2 === 0) || (p1 === 0x10 && (p2 === 0 || p2 === 1)), cmd); // RESET-STATE P2 01: DTLS (§8)
        return 'user';
      case Ins.processEap:
        // P1: bit 0 More; START and INFO (§3) only on PROCESS-EAP proper (P2 00).
        checkP1P2(p2 === 0 ? (p1 & ~(0x01 | EapP1.start | EapP1.info)) === 0 : (p1 & ~0x01) === 0 && (p2 === EncryptP2.applicationData || p2 === EncryptP2.alert), cmd);
        return 'user';
      case Ins.getSessionKey:
      case Ins.getExportedParameter:
      case Ins.exportSession:
      case Ins.exporter:
        checkP1P2(p1 === 0 && p2 === 0, cmd);
        return 'user';
      case Ins.getData:
        checkP1P2((p1 === 0 || p1 === 1) && p2 === 0, cmd);
        return 'none';
      case Ins.generateKey:
        checkP1P2((p1 === KeyType.p256 || p1 === KeyType.rsa2048) && p2 === 0, cmd);
        return 'operator';
      case Ins.putPolicy:
      case Ins.putIdentityPolicy:
        checkP1P2(p1 === 0 && p2 === 0, cmd);
        return 'operator';
      case Ins.putTrustAnchor:
        checkP1P2((p1 & ~0x01) === 0 && (p2 === TrustAnchorOp.add || p2 === TrustAnchorOp.clear), cmd);
        return 'operator';
      case Ins.putPsk:
        checkP1P2(p1 === 0 && (p2 === PskOp.put || p2 === PskOp.remove), cmd);
        return 'operator';
      case Ins.setClock:
        checkP1P2(p1 === 0 && p2 === 0, cmd);
        return 'operator';
      case Ins.getCsr:
      case Ins.putChain:
        checkP1P2((p1 & ~0x01) === 0 && p2 === 0, cmd);
        return 'operator';
      default:
        throw new CardError('ERR_CARD_INS', `INS 0x${ins.toString(16)} not supported`, SW.insNotSupported);
    }
  }

  private execute(cmd: CommandApdu, data: Uint8Array): Reply {
    switch (cmd.ins) {
      case Ins.verifyPin:
        return this.verifyPin(cmd.p2, data);
      case Ins.changePin:
        return this.changePin(cmd.p2, data);
      case Ins.unblockPin:
        return this.unblockPin(cmd.p2, data);
      case Ins.setIdentity:
        return this.setIdentity(data);
      case Ins.state:
        noData(data);
        if (cmd.p1 === 0x10) {
          this.resetSession(cmd.p2 === 1 ? 'dtls' : 'tls');
          return ok();
        }
        return ok(Uint8Array.of(this.stateCode()));
      case Ins.processEap:
        if (data.length === 0) throw cardErr.length('PROCESS-EAP needs an EAP packet');
        return this.processEap(cmd, data);
      case Ins.getSessionKey: {
        noData(data);
        if (cmd.ne !== 64 && cmd.ne !== 128) return { data: EMPTY, sw: SW.wrongLe | 64 };
        return ok(this.ch.session.sessionKey(cmd.ne));
      }
      case Ins.getExportedParameter: {
        if (data.length !== 1) throw cardErr.length('GET-EXPORTED-PARAMETER takes one byte');
        if (data[0] !== EXPORTED_PARAMETER_SESSION_INFO) throw cardErr.data('unknown exported parameter');
        const info = this.ch.session.info;
        if (!info) throw cardErr.conditions('no authenticated TLS session');
        return ok(encodeSessionInfo(info, this.ch.servedLabel));
      }
      case Ins.getData:
        if (cmd.p1 === 0) {
          noData(data);
          return ok(cardInfoTlv(this.state, this.stateCode()));
        }
        return ok(identityTlv(this.findIdentity(decodeLabel(data))));
      case Ins.generateKey:
        return this.generateKey(decodeLabel(data), cmd.p1 === KeyType.rsa2048 ? 'rsa2048' : 'p256');
      case Ins.getCsr: {
        const req = parseCsrRequest(data);
        return ok(buildCsr(this.findIdentity(req.label), req, this.deterministic ? this.random : undefined));
      }
      case Ins.putChain:
        return this.putChain(data);
      case Ins.putPolicy:
        return this.putPolicy(data);
      case Ins.putIdentityPolicy:
        return this.putIdentityPolicy(data);
      case Ins.putTrustAnchor:
        return this.putTrustAnchor(cmd.p2, data);
      case Ins.putPsk:
        return this.putPsk(cmd.p2, data);
      case Ins.setClock:
        return this.setClock(data);
      case Ins.exportSession:
        noData(data);
        return this.exportSession();
      case Ins.exporter:
        return this.exporter(data);
      default:
        throw new CardError('ERR_CARD_INS', `INS 0x${cmd.ins.toString(16)} not supported`, SW.insNotSupported);
    }
  }

  // ---------------------------------------------------------------- commands

  private select(cmd: CommandApdu): Reply {
    // Any SELECT that is not "by DF name" (OpenSC probes MF/EF by FID or path) finds nothing here.
    if (cmd.p1 !== 0x04) throw new CardError('ERR_CARD_NOT_FOUND', 'only SELECT by AID is supported', SW.notFound);
    if (cmd.p2 !== 0x00 && cmd.p2 !== 0x0c) throw cardErr.p1p2('SELECT P2 must be 00 or 0C');
    if (equalBytes(cmd.data, TLS_SE_AID)) {
      this.ch.tlsSe.reset();
      this.ch.active = 'tls-se';
      this.ch.selected = false;
      return ok();
    }
    if (equalBytes(cmd.data, APPLET_AID)) {
      this.ch.tlsSe.reset();
      this.ch.active = 'setls';
    }
    if (!equalBytes(cmd.data, APPLET_AID)) throw new CardError('ERR_CARD_NOT_FOUND', 'unknown AID', SW.notFound);
    this.ch.selected = true;
    return cmd.p2 === 0x0c ? ok() : ok(selectResponse());
  }

  private pinName(p2: number): 'user' | 'operator' {
    return p2 === PinRef.operator ? 'operator' : 'user';
  }

  /**
   * The PIN check: the counter is decremented and written to the store BEFORE the constant-time
   * comparison, so a lost write (power cut) never reveals a comparison result without costing a try.
   * That write also stores the value's pending-attempt tag (pins.ts): the same value presented again
   * (the process crashed before the success was recorded) was already charged and is not charged
   * again, even at 0 tries left (the same value is no new guess). A correct value restores the
   * counter and clears the tag, in a second write. A different value replaces the tag and is charged.
   */
  private checkSecret(name: PinName, presented: Uint8Array): boolean {
    const rec = this.state.pins[name];
    const digest = hashPin(presented, rec.salt);
    try {
      const tag = pendingTag(digest);
      const charged = rec.pending !== undefined && ctEqual(rec.pending, tag);
      if (!charged) {
        if (rec.tries === 0) throw cardErr.blocked(`${name} blocked`);
        // in memory first: a failed write never refunds the try
        rec.tries -= 1;
        rec.pending = tag;
        this.write(this.state);
      }
      if (!ctEqual(digest, rec.hash)) return false;
      // Adopted only once written: a torn write leaves the (charged) pending attempt in place.
      this.commit((s) => {
        s.pins[name].tries = s.pins[name].max;
        s.pins[name].pending = undefined;
      });
      return true;
    } finally {
      wipe(digest);
    }
  }

  /** Blocked, unless a pending attempt may still be resolved by presenting the same value (checkSecret). */
  private blockedWithoutPending(name: PinName): boolean {
    const rec = this.state.pins[name];
    return rec.tries === 0 && rec.pending === undefined;
  }

  private wrongSecret(name: PinName): never {
    const left = this.state.pins[name].tries;
    if (left === 0) throw cardErr.blocked(`${name} blocked`);
    throw new CardError('ERR_CARD_WRONG_PIN', `wrong ${name}, ${left} tries left`, SW.wrongPinTries | left);
  }

  private verifyPin(p2: number, data: Uint8Array): Reply {
    const name = this.pinName(p2);
    if (data.length === 0) {
      if (this.ch.verified[name]) return ok();
      return this.wrongSecret(name);
    }
    if (data.length !== PinPolicy.padded) throw cardErr.length('VERIFY takes an 8-byte padded PIN');
    if (!isPaddedPin(data)) throw cardErr.data('a PIN is 4–8 ASCII digits padded with FF');
    if (this.blockedWithoutPending(name)) throw cardErr.blocked(`${name} PIN blocked`);
    this.ch.verified[name] = false;
    if (!this.checkSecret(name, data)) return this.wrongSecret(name);
    this.ch.verified[name] = true;
    return ok();
  }

  private changePin(p2: number, data: Uint8Array): Reply {
    const name = this.pinName(p2);
    if (data.length !== 2 * PinPolicy.padded) throw cardErr.length('CHANGE-PIN takes old(8) ‖ new(8)');
    const oldPin = data.subarray(0, 8);
    const newPin = data.subarray(8);
    if (!isPaddedPin(oldPin) || !isPaddedPin(newPin)) throw cardErr.data('a PIN is 4–8 ASCII digits padded with FF');
    if (this.blockedWithoutPending(name)) throw cardErr.blocked(`${name} PIN blocked`);
    this.ch.verified[name] = false;
    if (!this.checkSecret(name, oldPin)) return this.wrongSecret(name);
    const salt = this.random(16);
    this.commit((s) => {
      (s.pins as Record<PinName, ReturnType<typeof makePinRecord>>)[name] = makePinRecord(newPin, salt, s.pins[name].max);
    });
    this.ch.verified[name] = true;
    return ok();
  }

  private unblockPin(p2: number, data: Uint8Array): Reply {
    const name = this.pinName(p2);
    if (data.length !== 2 * PinPolicy.padded) throw cardErr.length('UNBLOCK-PIN takes new(8) ‖ PUK(8)');
    const newPin = data.subarray(0, 8);
    const puk = data.subarray(8);
    if (!isPaddedPin(newPin) || !isPaddedPin(puk)) throw cardErr.data('a PIN or PUK is 4–8 ASCII digits padded with FF');
    if (this.blockedWithoutPending('puk')) throw cardErr.blocked('PUK blocked');
    if (!this.checkSecret('puk', puk)) return this.wrongSecret('puk');
    const salt = this.random(16);
    this.commit((s) => {
      (s.pins as Record<PinName, ReturnType<typeof makePinRecord>>)[name] = makePinRecord(newPin, salt, s.pins[name].max);
    });
    this.ch.verified[name] = false;
    return ok();
  }

  private setIdentity(data: Uint8Array): Reply {
    const rec = this.findIdentity(decodeLabel(data));
    if (rec.chain.length === 0) throw cardErr.conditions(`identity ${rec.label} has no certificate chain yet`);
    this.ch.identityLabel = rec.label;
    this.resetSession();
    return ok();
  }

  private generateKey(label: string, keyType: 'p256' | 'rsa2048'): Reply {
    const exists = this.state.identities.some((i) => i.label === label);
    if (!exists && this.state.identities.length >= Limits.maxIdentities) throw cardErr.full(`at most ${Limits.maxIdentities} identities`);
    const fresh = generateIdentity(label, keyType);
    const old = this.state.identities.find((x) => x.label === label);
    // A new key keeps the identity's policy and trust anchors (they are about its clients).
    const rec: IdentityRecord = old
      ? { ...fresh, clientAuth: old.clientAuth, exportAllowed: old.exportAllowed, exporterLabels: old.exporterLabels, trustAnchors: old.trustAnchors }
      : fresh;
    this.commitRotatingTickets((s) => {
      const i = s.identities.findIndex((x) => x.label === label);
      if (i >= 0) s.identities[i] = rec;
      else s.identities.push(rec);
    });
    this.configChanged();
    return ok(rec.spki.slice());
  }

  private putChain(data: Uint8Array): Reply {
    const { label, certs } = parseChainData(data);
    const rec = this.findIdentity(label);
    const hostNames = checkChain(rec, certs);
    this.commitRotatingTickets((s) => {
      const i = s.identities.findIndex((x) => x.label === label);
      s.identities[i] = { ...rec, chain: certs, hostNames };
    });
    this.configChanged();
    return ok();
  }

  /** PUT-POLICY: absent tags keep their value; persisted; resets the TLS session. */
  private putPolicy(data: Uint8Array): Reply {
    const policy = applyPolicyTlv(data, this.state.policy);
    this.commit((s) => {
      s.policy = policy;
    });
    this.configChanged();
    return ok();
  }

  /** PUT-IDENTITY-POLICY: client auth, session export, exporter labels of one identity; absent tags keep their value. */
  private putIdentityPolicy(data: Uint8Array): Reply {
    const change = parseIdentityPolicy(data);
    const rec = this.findIdentity(change.label);
    const next: IdentityRecord = {
      ...rec,
      ...(change.clientAuth !== undefined ? { clientAuth: change.clientAuth } : {}),
      ...(change.exportAllowed !== undefined ? { exportAllowed: change.exportAllowed } : {}),
      ...(change.exporterLabels !== undefined ? { exporterLabels: [...change.exporterLabels] } : {}),
    };
    this.commitRotatingTickets((s) => {
      s.identities[s.identities.findIndex((x) => x.label === rec.label)] = next;
    });
    this.configChanged();
    return ok();
  }

  /** PUT-TRUST-ANCHOR: P2 00 adds a CA certificate to an identity's anchors (at most 8; a duplicate is a no-op), P2 01 clears them. */
  private putTrustAnchor(p2: number, data: Uint8Array): Reply {
    const { label, certificate } = parseTrustAnchorData(data, p2);
    const rec = this.findIdentity(label);
    let anchors: Uint8Array[];
    if (p2 === TrustAnchorOp.clear) anchors = [];
    else if (rec.trustAnchors.some((a) => equalBytes(a, certificate!))) return ok();
    else {
      if (rec.trustAnchors.length >= Limits.maxTrustAnchors) throw cardErr.full(`at most ${Limits.maxTrustAnchors} trust anchors per identity`);
      anchors = [...rec.trustAnchors, certificate!];
    }
    this.commitRotatingTickets((s) => {
      s.identities[s.identities.findIndex((x) => x.label === rec.label)] = { ...rec, trustAnchors: anchors };
    });
    this.configChanged();
    return ok();
  }

  /** PUT-PSK: P2 00 adds or replaces an external PSK (at most 16), P2 01 deletes one (6A88 when unknown). */
  private putPsk(p2: number, data: Uint8Array): Reply {
    const { identity, psk } = parsePskCommand(data, p2);
    const i = this.state.psks.findIndex((p) => equalBytes(p.identity, identity));
    const old = i >= 0 ? this.state.psks[i] : undefined;
    try {
      if (psk) {
        if (!old && this.state.psks.length >= Limits.maxPsks) throw cardErr.full(`at most ${Limits.maxPsks} PSKs`);
        this.commitRotatingTickets((s) => {
          if (i >= 0) s.psks[i] = psk;
          else s.psks.push(psk);
        }, !!old);
      } else {
        if (!old) throw cardErr.notFound('no PSK with that identity');
        this.commitRotatingTickets((s) => {
          s.psks.splice(i, 1);
        });
      }
    } catch (e) {
      wipe(psk?.key);
      throw e;
    }
    wipe(old?.key); // no longer in the state
    this.configChanged();
    return ok();
  }

  /** The identity that served the current session (its policy decides export and exporters). */
  private servedIdentity(): IdentityRecord | undefined {
    return this.ch.servedLabel === undefined ? undefined : this.state.identities.find((i) => i.label === this.ch.servedLabel);
  }

  /** EXPORT-SESSION: only when the serving identity allows it (policy 41 = 01); the session is closed after. */
  private exportSession(): Reply {
    if (this.ch.session.phase !== 'authenticated') throw cardErr.conditions('no authenticated TLS session');
    if (!this.servedIdentity()?.exportAllowed) throw cardErr.conditions('session export is not allowed for the identity that served this session');
    return ok(this.ch.session.exportSession());
  }

  /** EXPORTER: RFC 5705 / RFC 8446 §7.5 keying material for a label the serving identity allows. */
  private exporter(data: Uint8Array): Reply {
    const req = parseExporterRequest(data);
    try {
      if (RESERVED_EXPORTER_LABELS.includes(req.label)) throw cardErr.conditions(`exporter label ${JSON.stringify(req.label)} is reserved (RFC 5705 §4)`);
      if (this.ch.session.phase !== 'authenticated') throw cardErr.conditions('no authenticated TLS session');
      if (!this.servedIdentity()?.exporterLabels.includes(req.label)) {
        throw cardErr.conditions(`exporter label ${JSON.stringify(req.label)} is not allowed for the identity that served this session`);
      }
      return ok(this.ch.session.exporter(req.label, req.context, req.length));
    } finally {
      wipe(req.context);
    }
  }

  private findIdentity(label: string): IdentityRecord {
    const rec = this.state.identities.find((i) => i.label === label);
    if (!rec) throw cardErr.notFound(`no identity ${JSON.stringify(label)}`);
    return rec;
  }

  // ---------------------------------------------------------------- TLS session and time

  /** The default identity: the SET-IDENTITY choice, else the first identity with a chain. */
  private activeIdentity(ch: LogicalChannel = this.ch): IdentityRecord | undefined {
    if (ch.identityLabel !== undefined) {
      const rec = this.state.identities.find((i) => i.label === ch.identityLabel);
      if (rec && rec.chain.length > 0) return rec;
      return undefined;
    }
    return this.state.identities.find((i) => i.chain.length > 0);
  }

  private stateCode(): number {
    switch (this.ch.session.phase) {
      case 'authenticated':
        return CardStateCode.authenticated;
      case 'failed':
        return CardStateCode.notAuthenticated;
      case 'closed':
        return CardStateCode.closed;
      default:
        return this.activeIdentity() ? CardStateCode.authenticating : CardStateCode.identityNotSet;
    }
  }

  /**
   * Identity selection for a ClientHello: an identity whose leaf SAN DNS names match the SNI (exact
   * before wildcard, then identity order); no SNI → the default identity; an SNI that matches nothing
   * → the default identity, or none (the engine sends unrecognized_name) under policy `reject`.
   */
  private selectIdentity(serverName: string | undefined, ch: LogicalChannel = this.ch): IdentityRecord | undefined {
    if (serverName !== undefined) {
      const match = bestHostMatch(
        this.state.identities.filter((i) => i.chain.length > 0),
        serverName,
      );
      if (match) return match;
      if (this.state.policy.unknownSni === 'reject') return undefined;
    }
    return this.activeIdentity(ch);
  }

  private resetSession(mode: 'tls' | 'dtls' = 'tls', ch: LogicalChannel = this.ch): void {
    ch.session.dispose();
    ch.session = this.newSession(ch, mode);
    ch.sessionTime = undefined;
    ch.servedLabel = undefined;
  }

  /**
   * After a change of identities, anchors, PSKs or policy: the TLS session is reset and the TLS 1.2
   * session-ID cache emptied (a cached session must not outlive the configuration it was made under).
   */
  private configChanged(): void {
    this.sessionCache.clear();
    for (const ch of this.channels) if (ch) this.resetSession('tls', ch);
  }

  /**
   * `commit` for changes that decide who may connect (keys, chains, client auth, anchors, PSKs): the
   * ticket key is dropped in the same write (a new one is made at the next need), so tickets issued
   * under the old configuration stop resuming. `keepTickets` skips that (a PSK added, none removed).
   */
  private commitRotatingTickets(change: (s: CardState) => void, rotate = true): void {
    const old = this.state.ticketKey;
    this.commit((s) => {
      change(s);
      if (rotate) s.ticketKey = undefined;
    });
    if (rotate && old) wipe(old.key, old.id);
  }

  /** The card's ticket key, generated (from the card RNG) and sealed at first need. */
  private ticketKey(): TicketKey {
    if (!this.state.ticketKey) {
      const id = this.random(4);
      const key = this.random(32);
      this.commit((s) => {
        s.ticketKey = { id, key };
      });
    }
    return this.state.ticketKey!;
  }

  /** An external PSK by identity, as a copy the card wipes after the APDU (the engine keeps its own). */
  private findPsk(identity: Uint8Array): TlsPsk | undefined {
    const p = this.state.psks.find((x) => equalBytes(x.identity, identity));
    if (!p) return undefined;
    const key = p.key.slice();
    this.issuedKeys.push(key);
    return { identity: p.identity.slice(), key, hash: p.hash };
  }

  /**
   * The engine configuration of one session: the card policy (suites, groups, ALPN, KeyUpdate,
   * versions, TLS 1.2 suites), tickets (the card's ticket key, a copy wiped with the session), the
   * TLS 1.2 session-ID cache, the card's PSKs, and in deterministic mode the cookie key.
   */
  private engineConfig(base: TlsServerConfig, ch: LogicalChannel): TlsServerConfig {
    const p: CardPolicy = this.state.policy;
    let lists = this.policyLists;
    if (lists === undefined || lists.policy !== p) {
      lists = {
        policy: p,
        cipherSuites: Object.freeze([...p.cipherSuites]),
        groups: Object.freeze([...p.groups]),
        alpnProtocols: Object.freeze([...p.alpn]),
        versions: Object.freeze([...p.versions]),
        cipherSuites12: Object.freeze([...p.cipherSuites12]),
        pskKeyExchangeModes: Object.freeze([...p.pskModes]),
      };
      this.policyLists = lists;
    }
    // Object.assign + assignments, not `{ ...base, ... }`: V8 (Node 20) takes a slow path (~20 µs)
    // for properties added after an object spread.
    const cfg: Mutable<TlsServerConfig> = Object.assign({}, base);
    cfg.cipherSuites = lists.cipherSuites;
    cfg.groups = lists.groups;
    cfg.alpnProtocols = lists.alpnProtocols;
    cfg.keyUpdateAfterRecords = p.keyUpdateAfterRecords;
    cfg.versions = lists.versions;
    cfg.cipherSuites12 = lists.cipherSuites12;
    cfg.pskKeyExchangeModes = lists.pskKeyExchangeModes;
    if (p.ticketLifetime > 0) {
      const k = this.ticketKey();
      const copy = { id: k.id.slice(), key: k.key.slice() };
      ch.sessionSecrets.push(copy.key);
      cfg.ticketKeys = { current: copy };
      cfg.ticketLifetimeSeconds = p.ticketLifetime;
    }
    if (p.sessionIdCache) cfg.sessionCache = this.sessionCacheHooks;
    if (this.state.psks.length > 0) cfg.findPsk = this.findPskHook;
    if (this.deterministic) cfg.cookieKey = this.random(32);
    return cfg;
  }

  private newSession(ch: LogicalChannel, mode: 'tls' | 'dtls' = 'tls'): EapTlsSession | DtlsEapSession {
    wipe(...ch.sessionSecrets.splice(0)); // the previous session's engine is gone
    if (mode === 'dtls') return new DtlsEapSession((ch.dtlsDeps ??= this.sessionDeps(ch, mode)));
    return new EapTlsSession((ch.tlsDeps ??= this.sessionDeps(ch, mode)));
  }

  /** A channel's session wiring (made once per channel and mode: the hooks read the channel's state when called). */
  private sessionDeps(ch: LogicalChannel, mode: 'tls' | 'dtls'): SessionDeps {
    const entropy: TlsEntropy = {
      random: (n) => this.random(n),
      now: () => (ch.sessionTime ?? this.clock.now(this.state.lastTime)) * 1000,
      ...(this.deterministic ? { ephemeralPrivateKey: (group: number) => this.ephemeralPrivateKey(group) } : {}),
    };
    return {
      factory: (config: TlsServerConfig) => {
        const f = mode === 'dtls' ? createCardDtlsEngine : (this.factory ?? defaultTlsFactory);
        if (!f) throw new SetlsError('ERR_CARD_NO_TLS_ENGINE', 'no TLS engine wired (import src/card/index.ts)');
        const full = this.engineConfig(config, ch);
        try {
          return f(full);
        } finally {
          wipe(full.cookieKey); // the engine keeps its own copy
        }
      },
      entropy,
      selectIdentity: (serverName: string | undefined): TlsIdentity | undefined => {
        const rec = this.selectIdentity(serverName, ch);
        ch.servedLabel = rec?.label;
        return rec ? tlsIdentity(rec, this.deterministic ? this.random : undefined) : undefined;
      },
      acceptTime: (t: number) => this.acceptTime(t, ch),
    };
  }

  /** The TLS-SE applet, wired to this card's engine, identities and PINs (shared with the setls applet). */
  private newTlsSe(ch: LogicalChannel): TlsSeApplet {
    return new TlsSeApplet({
      newEngine: () => {
        const f = this.factory ?? defaultTlsFactory;
        if (!f) throw new SetlsError('ERR_CARD_NO_TLS_ENGINE', 'no TLS engine wired (import src/card/index.ts)');
        const config = tlsSeEngineConfig({
          entropy: {
            random: (n) => this.random(n),
            now: () => this.clock.now(this.state.lastTime) * 1000,
            ...(this.deterministic ? { ephemeralPrivateKey: (group: number) => this.ephemeralPrivateKey(group) } : {}),
          },
          selectIdentity: (serverName): TlsIdentity | undefined => {
            const rec = this.selectIdentity(serverName, ch);
            return rec ? tlsIdentity(rec, this.deterministic ? this.random : undefined) : undefined;
          },
          alpn: this.state.policy.alpn,
          psks: this.psks,
        });
        return f(config);
      },
      isVerified: (which) => ch.verified[which],
      verifyPin: (which, ascii) => {
        let padded: Uint8Array;
        try {
          padded = padPin(new TextDecoder('utf-8', { fatal: true }).decode(ascii));
        } catch {
          return SW.wrongData;
        }
        try {
          return this.verifyPin(which === 'operator' ? PinRef.operator : PinRef.user, padded).sw;
        } catch (e) {
          if (e instanceof CardError) return e.sw;
          throw e;
        } finally {
          wipe(padded);
        }
      },
      setPsk: (identity, key) => {
        const k = Buffer.from(identity).toString('hex');
        wipe(this.psks.get(k));
        this.psks.set(k, key.slice());
      },
    });
  }

  /** Deterministic mode: the ephemeral ECDHE private key from the card RNG (x25519 raw, P-256 scalar). */
  private ephemeralPrivateKey(group: number): Uint8Array {
    let key: Uint8Array | undefined;
    if (group === NamedGroup.x25519) key = this.random(32);
    else if (group === NamedGroup.secp256r1) key = p256Scalar(this.random);
    if (key) {
      this.issuedKeys.push(key);
      return key;
    }
    throw new SetlsError('ERR_CARD_INTERNAL', `no deterministic key generation for group 0x${group.toString(16)}`);
  }

  /**
   * The host's GMT time (clock.ts): refuses a rollback of more than 300 s below the floor; the session
   * uses `t`; the floor moves within its bounds and is persisted lazily (at once when it moved by more
   * than an hour since the last write, or when it is first set).
   */
  private acceptTime(t: number, ch: LogicalChannel): void {
    const floor = this.state.lastTime;
    const next = this.clock.accept(t, floor);
    ch.sessionTime = t;
    if (next === floor) return;
    this.state.lastTime = next;
    if (this.persistedTime === 0 || next - this.persistedTime > Limits.timePersistSeconds) this.write(this.state);
  }

  /**
   * SET-CLOCK (operator PIN): `data` = the new time floor, 4 bytes big-endian Unix seconds; 0 (or no
   * data) unsets it. Written at once; the floor's bounds restart from it (clock.ts).
   */
  private setClock(data: Uint8Array): Reply {
    if (data.length !== 0 && data.length !== 4) throw cardErr.length('SET-CLOCK takes 4 bytes (Unix seconds) or none');
    const t = data.length === 0 ? 0 : readU32(data, 0);
    this.commit((s) => {
      s.lastTime = t;
    });
    this.clock.set(t);
    return ok();
  }

  // ---------------------------------------------------------------- persistence

  private write(s: CardState): void {
    const plain = serializeState(s);
    try {
      this.store.write(plain);
    } finally {
      wipe(plain);
    }
    this.persistedTime = s.lastTime;
  }

  /** Applies a change to a copy, writes it, and only then makes it the card's state. */
  private commit(change: (s: CardState) => void): void {
    const next = cloneState(this.state);
    change(next);
    this.write(next);
    this.state = next;
  }
}

/** The command in another class byte (same fields otherwise). */
function withCla(cmd: CommandApdu, cla: number): CommandApdu {
  const c: Mutable<CommandApdu> = Object.assign({}, cmd);
  c.cla = cla;
  return c;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

interface PolicyLists {
  readonly policy: CardPolicy;
  readonly cipherSuites: readonly number[];
  readonly groups: readonly number[];
  readonly alpnProtocols: readonly string[];
  readonly versions: readonly number[];
  readonly cipherSuites12: readonly number[];
  readonly pskKeyExchangeModes: readonly number[];
}

function checkChannels(n: number | undefined): void {
  if (n !== undefined && (!Number.isInteger(n) || n < 1 || n > Channels.limit)) throw new RangeError(`channels must be an integer 1..${Channels.limit}`);
}

/** Every INS of the setls applet but SELECT (the proprietary class). */
const PROPRIETARY_INS: ReadonlySet<number> = new Set((Object.values(Ins) as number[]).filter((i) => i !== Ins.select && i !== Ins.manageChannel));

function checkP1P2(cond: boolean, cmd: CommandApdu): void {
  if (!cond) throw cardErr.p1p2(`P1/P2 ${cmd.p1.toString(16)}/${cmd.p2.toString(16)} invalid for INS 0x${cmd.ins.toString(16)}`);
}

function noData(data: Uint8Array): void {
  if (data.length !== 0) throw cardErr.length('this command takes no data');
}
