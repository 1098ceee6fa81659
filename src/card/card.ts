/**
 * EmulatedCard: the emulated secure element — a card OS (card/os/) hosting the setls applet,
 * Urien's TLS-SE applet and the GlobalPlatform security domain (card/applets/), which share the card
 * services (card/services/) over one sealed persistent store. `process()` is the only way in: APDU bytes in, response APDU bytes out,
 * synchronous, never throwing (docs/apdu-protocol.md; docs/architecture.md "The card: an OS and
 * its applets").
 *
 * Secrets: the persistent state (private keys as KeyObjects, PIN hashes, PSK keys, the ticket key,
 * the security domain's attestation key and SCP03 key sets; wiped by `close()`), the master-key copy (the sealed store's), the RNG block, everything the
 * applets and services hold (their headers say what and when it is wiped).
 * imports bytes/, protocol/ and card/.
 */
import { SetlsError, wipe } from '../bytes/index.js';
import { Channels, DEFAULT_CARD_NAME, buildAtr } from '../protocol/index.js';
import { blankRecord, type IsdOptions } from './applets/isd/index.js';
import { cardApplets, type AppletFactory } from './applets/registry.js';
import { SecurityDomainApplet } from './applets/security-domain.js';
import type { MonotonicMs } from './clock.js';
import { DEFAULT_MAX_CHANNELS, PinPolicy } from './constants.js';
import { makePinRecord, padPin } from './pins.js';
import { DEFAULT_POLICY } from './policy.js';
import type { RandomSource } from './signers.js';
import { cloneState, deserializeState, serializeState, type CardState } from './state.js';
import { CardOs, type CardErrorInfo } from './os/card-os.js';
import { PersistentStore } from './os/persistent-store.js';
import { SealedStore, type StoreHooks } from './os/sealed-store.js';
import { cardRandom, type CardRandom } from './services/random.js';
import { createCardServices, type CardServices } from './services/services.js';
import type { TlsFactory } from './services/tls-service.js';

export type { RandomSource } from './signers.js';
export type { CardErrorInfo } from './os/card-os.js';

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
  /** The card's name in its ATR's historical bytes (1–13 ASCII bytes; default "setls"). */
  readonly atrName?: string;
  /**
   * More applets for this card, after the setls and TLS-SE applets and those registered with
   * `registerDefaultApplet` (applets/registry.ts). Each gets the card's services.
   */
  readonly applets?: readonly AppletFactory[];
  /**
   * Options of the card's security domain (tests: the challenge AID of recorded SCP03 vectors, the
   * back-off threshold).
   */
  readonly securityDomain?: IsdOptions;
}

export interface EmulatedCardCreateOptions extends EmulatedCardOpenOptions {
  readonly userPin: string;
  readonly operatorPin: string;
  readonly puk: string;
}

const STATE_CODEC = { serialize: serializeState, clone: cloneState };

/** Diagnostics of the card's security domain (tests, never secrets). */
export interface SecurityDomainDiagnostics {
  /** The SCP03 session state of a logical channel ('idle' when none). */
  sessionState(channel: number): 'idle' | 'initialized' | 'open' | 'aborted';
  /** Failed authentications counted in this power cycle (the back-off's F). */
  readonly failedAuths: number;
}

export class EmulatedCard {
  private readonly os: CardOs;
  private readonly sd: SecurityDomainApplet;
  /** The card's Answer To Reset (protocol/atr.ts). */
  readonly atr: Uint8Array;

  private constructor(
    private readonly sealed: SealedStore,
    private readonly services: CardServices,
    opts: EmulatedCardOpenOptions,
    atr: Uint8Array,
  ) {
    this.atr = atr;
    const s = services;
    // The setls applet first: it is the default applet (answers on channels where nothing is selected).
    const applets = cardApplets(s, opts.applets, opts.securityDomain);
    this.sd = applets.find((a): a is SecurityDomainApplet => a instanceof SecurityDomainApplet)!;
    this.os = new CardOs({
      maxChannels: opts.channels ?? DEFAULT_MAX_CHANNELS,
      applets,
      afterApdu: () => s.tls.afterApdu(),
      afterReset: () => s.rng.wipe(),
      admit: (applet, what) => s.securityDomain.admit(applet.aid, what),
    });
  }

  private static assemble(sealed: SealedStore, state: CardState, rng: CardRandom, opts: EmulatedCardOpenOptions, atr: Uint8Array): EmulatedCard {
    const store = new PersistentStore(sealed, STATE_CODEC, state);
    const services = createCardServices({ store, rng, ...(opts.tlsFactory ? { tlsFactory: opts.tlsFactory } : {}), ...(opts.monotonicMs ? { monotonicMs: opts.monotonicMs } : {}) });
    return new EmulatedCard(sealed, services, opts, atr);
  }

  /** Logical channels the card keeps open at most (channel 0 included). */
  get maxChannels(): number {
    return this.os.maxChannels;
  }

  /** The numbers of the open logical channels (0 first). */
  get openChannels(): number[] {
    return this.os.openChannels;
  }

  /** Manufactures a new card in `dir` (refuses to overwrite one: ERR_CARD_EXISTS). */
  static create(opts: EmulatedCardCreateOptions): EmulatedCard {
    checkChannels(opts.channels);
    const atr = buildAtr(opts.atrName ?? DEFAULT_CARD_NAME);
    const user = padPin(opts.userPin);
    const operator = padPin(opts.operatorPin);
    const puk = padPin(opts.puk);
    // The folder is made and locked first: the existence check and the first write are the lock holder's.
    const sealed = SealedStore.open(opts.dir, opts.masterKey, opts.storeHooks, { create: true, ...(opts.owner !== undefined ? { command: opts.owner } : {}) });
    if (sealed.exists()) {
      sealed.close();
      throw new SetlsError('ERR_CARD_EXISTS', `a card already exists in ${opts.dir}`);
    }
    const rng = cardRandom(opts.random);
    const random = rng.random;
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
      // A card fresh from the fab: its security domain in OP_READY, for factory personalisation.
      isd: blankRecord(),
    };
    wipe(user, operator, puk);
    let card: EmulatedCard;
    try {
      card = EmulatedCard.assemble(sealed, state, rng, opts, atr);
    } catch (e) {
      sealed.close();
      throw e;
    }
    try {
      card.services.store.flush();
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
    const atr = buildAtr(opts.atrName ?? DEFAULT_CARD_NAME);
    const sealed = SealedStore.open(opts.dir, opts.masterKey, opts.storeHooks, opts.owner !== undefined ? { command: opts.owner } : {});
    try {
      if (!sealed.exists()) throw new SetlsError('ERR_CARD_STATE', `no card state in ${opts.dir}`);
      sealed.removeLeftoverTmp();
      const plain = sealed.read();
      let state: CardState;
      try {
        state = deserializeState(plain);
      } finally {
        wipe(plain);
      }
      return EmulatedCard.assemble(sealed, state, cardRandom(opts.random), opts, atr);
    } catch (e) {
      sealed.close();
      throw e;
    }
  }

  /** The last error turned into a status word by `process` (undefined after a success). */
  get lastError(): CardErrorInfo | undefined {
    return this.os.lastError;
  }

  /** The security domain's session states and back-off count (diagnostics). */
  get securityDomain(): SecurityDomainDiagnostics {
    const isd = this.sd.isd;
    return {
      sessionState: (channel) => isd.sessionState(channel),
      get failedAuths() {
        return isd.failedAuths;
      },
    };
  }

  /**
   * Processes one command APDU and returns the response APDU (data ‖ SW1 SW2) as a fresh array
   * (own ArrayBuffer, byteOffset 0). Never throws: errors become status words, unexpected ones 6F00.
   */
  process(apdu: Uint8Array): Uint8Array {
    return this.os.process(apdu);
  }

  /**
   * Card reset / power cycle: transient state cleared, persistent state kept; every channel but 0
   * closed. A power cycle for every applet's RAM (the security domain's SCP03 sessions end and its
   * count of failed authentications starts again), except the time floor's per-power-on bound, which
   * runs from the card object's creation (a host cannot widen it by resetting the card).
   */
  reset(): void {
    this.os.reset();
  }

  /** Power off for good: resets, wipes the master key copy and the state's secrets; `process` answers 6985 afterwards. */
  close(): void {
    if (this.os.closed) return;
    this.os.close();
    this.services.tls.close();
    const state = this.services.store.state;
    for (const p of state.psks) wipe(p.key);
    if (state.ticketKey) wipe(state.ticketKey.key);
    if (state.isd) {
      wipe(state.isd.attestation?.pkcs8);
      for (const k of state.isd.keySets) wipe(k.enc, k.mac, k.dek);
    }
    this.sealed.close();
  }
}

function checkChannels(n: number | undefined): void {
  if (n !== undefined && (!Number.isInteger(n) || n < 1 || n > Channels.limit)) throw new RangeError(`channels must be an integer 1..${Channels.limit}`);
}
