/**
 * card/services/tls-service: what every TLS-serving applet of the card needs — the TLS engine
 * factory (src/tls, wired by src/card/index.ts), the engine configuration of a session from the card
 * policy (suites, groups, ALPN, versions, KeyUpdate, tickets under the card's ticket key, the TLS 1.2
 * session-ID cache, the card's PSKs), the engine's entropy (the card RNG; deterministic mode: the
 * ephemeral keys too) and the per-APDU wipe of the secret copies handed to engines.
 *
 * Secrets: the session-ID cache (TLS 1.2 master secrets; wiped on eviction, on a configuration
 * change and at close), copies of PSK keys, cache entries and ephemeral private keys handed to an
 * engine (wiped after each APDU: `afterApdu`), ticket-key copies (the caller's `sessionSecrets`).
 * imports bytes/, tls/ (api types, constants) and card/.
 */
import { SetlsError, equalBytes, wipe } from '../../bytes/index.js';
import type { TlsEntropy, TlsPsk, TlsServerConfig, TlsServerConnection } from '../../tls/api.js';
import { NamedGroup } from '../../tls/constants.js';
import { Limits } from '../constants.js';
import type { CardPolicy } from '../policy.js';
import { p256Scalar } from '../signers.js';
import type { CardState } from '../state.js';
import { SessionIdCache } from './session-id-cache.js';
import type { PersistentStore } from '../os/persistent-store.js';
import type { ConfigService } from './config-service.js';
import type { CardRandom } from './random.js';

export type TlsFactory = (config: TlsServerConfig) => TlsServerConnection;

let defaultTlsFactory: TlsFactory | undefined;

/** Sets the TLS engine used by cards created without `tlsFactory` (src/card/index.ts wires src/tls). */
export function setDefaultTlsFactory(f: TlsFactory): void {
  defaultTlsFactory = f;
}

/** The policy's lists as handed to engines: frozen copies, remade when the policy object changes (public data). */
interface PolicyLists {
  readonly policy: CardPolicy;
  readonly cipherSuites: readonly number[];
  readonly groups: readonly number[];
  readonly alpnProtocols: readonly string[];
  readonly versions: readonly number[];
  readonly cipherSuites12: readonly number[];
  readonly pskKeyExchangeModes: readonly number[];
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export class TlsService {
  /** Secret copies handed to engines during the current APDU; wiped by `afterApdu`. */
  private readonly issued: Uint8Array[] = [];
  /** TLS 1.2 session-ID cache (card RAM only: lost when the card object goes; never sealed). */
  readonly sessionCache = new SessionIdCache(Limits.sessionCacheEntries, (copy) => this.issued.push(copy));
  /** The engine's view of the session-ID cache (the same hooks for every session). */
  private readonly sessionCacheHooks = {
    get: (id: Uint8Array) => this.sessionCache.get(id),
    set: (id: Uint8Array, st: Uint8Array) => this.sessionCache.set(id, st),
    delete: (id: Uint8Array) => this.sessionCache.delete(id),
  };
  private readonly findPskHook = (identity: Uint8Array): TlsPsk | undefined => this.findPsk(identity);
  private policyLists: PolicyLists | undefined;

  constructor(
    private readonly store: PersistentStore<CardState>,
    private readonly config: ConfigService,
    private readonly rng: CardRandom,
    private readonly factory: TlsFactory | undefined,
  ) {
    // A cached session must not outlive the configuration it was made under.
    config.onChanged(() => this.sessionCache.clear());
  }

  /** The TLS engine factory (ERR_CARD_NO_TLS_ENGINE when none is wired). */
  engineFactory(): TlsFactory {
    const f = this.factory ?? defaultTlsFactory;
    if (!f) throw new SetlsError('ERR_CARD_NO_TLS_ENGINE', 'no TLS engine wired (import src/card/index.ts)');
    return f;
  }

  /** An engine's entropy: the card RNG, the card's time `now()` (Unix ms), and in deterministic mode the ephemeral keys. */
  entropy(nowMs: () => number): TlsEntropy {
    return {
      random: (n) => this.rng.random(n),
      now: nowMs,
      ...(this.rng.deterministic ? { ephemeralPrivateKey: (group: number) => this.ephemeralPrivateKey(group) } : {}),
    };
  }

  /** Hands a secret copy to an engine for the current APDU (wiped by `afterApdu`). */
  issue(copy: Uint8Array): void {
    this.issued.push(copy);
  }

  /** After every APDU: wipes the copies handed to engines (they keep their own). */
  afterApdu(): void {
    if (this.issued.length) wipe(...this.issued.splice(0));
  }

  /**
   * The engine configuration of one session: the card policy (suites, groups, ALPN, KeyUpdate,
   * versions, TLS 1.2 suites), tickets (the card's ticket key; its copy goes to `sessionSecrets`,
   * wiped with the session), the TLS 1.2 session-ID cache, the card's PSKs, and in deterministic
   * mode the cookie key (the caller wipes `cookieKey` once the engine has it).
   */
  engineConfig(base: TlsServerConfig, sessionSecrets: Uint8Array[]): TlsServerConfig {
    const p: CardPolicy = this.store.state.policy;
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
      const k = this.config.ticketKey();
      const copy = { id: k.id.slice(), key: k.key.slice() };
      sessionSecrets.push(copy.key);
      cfg.ticketKeys = { current: copy };
      cfg.ticketLifetimeSeconds = p.ticketLifetime;
    }
    if (p.sessionIdCache) cfg.sessionCache = this.sessionCacheHooks;
    if (this.store.state.psks.length > 0) cfg.findPsk = this.findPskHook;
    if (this.rng.deterministic) cfg.cookieKey = this.rng.random(32);
    return cfg;
  }

  /** An external PSK by identity, as a copy wiped after the APDU (the engine keeps its own). */
  private findPsk(identity: Uint8Array): TlsPsk | undefined {
    const p = this.store.state.psks.find((x) => equalBytes(x.identity, identity));
    if (!p) return undefined;
    const key = p.key.slice();
    this.issued.push(key);
    return { identity: p.identity.slice(), key, hash: p.hash };
  }

  /** Deterministic mode: the ephemeral ECDHE private key from the card RNG (x25519 raw, P-256 scalar). */
  private ephemeralPrivateKey(group: number): Uint8Array {
    let key: Uint8Array | undefined;
    if (group === NamedGroup.x25519) key = this.rng.random(32);
    else if (group === NamedGroup.secp256r1) key = p256Scalar(this.rng.random);
    if (key) {
      this.issued.push(key);
      return key;
    }
    throw new SetlsError('ERR_CARD_INTERNAL', `no deterministic key generation for group 0x${group.toString(16)}`);
  }

  /** Close: the session-ID cache is emptied. */
  close(): void {
    this.sessionCache.clear();
  }
}
