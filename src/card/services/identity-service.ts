/**
 * card/services/identity-service: the card's server identities as a service shared by every applet
 * (docs/apdu-protocol.md §2, §2.1, §2.3): keys generated inside the card, CSRs signed inside it,
 * certificate chains, identity policies and trust anchors, and which identity serves a ClientHello
 * (SNI, else the channel's default identity, else the first with a chain).
 *
 * Every change runs in a store transaction (joining the caller's, if any) through ConfigService
 * (identities decide who may connect: tickets are rotated, sessions reset once it has committed).
 *
 * Secrets: the private keys (KeyObjects in the state, never exported here). imports bytes/, tls/
 * (api types) and card/.
 */
import { SetlsError, equalBytes } from '../../bytes/index.js';
import type { TlsIdentity } from '../../tls/api.js';
import { Limits } from '../constants.js';
import { cardErr } from '../errors.js';
import { buildCsr, checkChain, generateIdentity, tlsIdentity, type CsrRequest } from '../identity.js';
import { bestHostMatch } from '../names.js';
import type { CardState, ClientAuth, IdentityRecord, KeyTypeName } from '../state.js';
import type { ChannelContext } from '../os/applet.js';
import type { PersistentStore } from '../os/persistent-store.js';
import type { ConfigService } from './config-service.js';
import type { CardRandom } from './random.js';
import { slotOfLabel, type EngineIdentityRules } from './security-domain.js';

function accessDenied(serverName: string | undefined): SetlsError {
  return new SetlsError('ERR_TLS_ACCESS_DENIED', `the identity for ${serverName ?? 'this channel'} is locked or not active (security domain)`);
}

/** A change of one identity's policy; absent fields keep their value. */
export interface IdentityPolicyChange {
  readonly label: string;
  readonly clientAuth?: ClientAuth;
  readonly exportAllowed?: boolean;
  readonly exporterLabels?: readonly string[];
}

export class IdentityService {
  constructor(
    private readonly store: PersistentStore<CardState>,
    private readonly config: ConfigService,
    private readonly rng: CardRandom,
  ) {}

  get all(): readonly IdentityRecord[] {
    return this.store.state.identities;
  }

  /** The identity `label` (6A88 when there is none). */
  find(label: string): IdentityRecord {
    const rec = this.store.state.identities.find((i) => i.label === label);
    if (!rec) throw cardErr.notFound(`no identity ${JSON.stringify(label)}`);
    return rec;
  }

  /** The default identity on `ch`: its SET-IDENTITY choice (if it still has a chain), else the first identity with a chain. */
  defaultFor(ch: ChannelContext): IdentityRecord | undefined {
    if (ch.defaultIdentity !== undefined) {
      const rec = this.store.state.identities.find((i) => i.label === ch.defaultIdentity);
      if (rec && rec.chain.length > 0) return rec;
      return undefined;
    }
    return this.store.state.identities.find((i) => i.chain.length > 0);
  }

  /** SET-IDENTITY: `label` (which must have a chain: 6985) becomes the default identity on `ch`. */
  choose(ch: ChannelContext, label: string): void {
    const rec = this.find(label);
    if (rec.chain.length === 0) throw cardErr.conditions(`identity ${rec.label} has no certificate chain yet`);
    ch.defaultIdentity = rec.label;
  }

  /**
   * Identity selection for a ClientHello on `ch`: an identity whose leaf SAN DNS names match the SNI
   * (exact before wildcard, then identity order); no SNI → the default identity; an SNI that matches
   * nothing → the default identity, or none (the engine sends unrecognized_name) under policy `reject`.
   * `usable` (the security domain's rule) hides identities that may not serve: when the identity that
   * would answer is one of them — the only match for the SNI, or the default — the handshake is
   * refused with access_denied (ERR_TLS_ACCESS_DENIED, thrown into the engine).
   */
  select(serverName: string | undefined, ch: ChannelContext, usable?: (rec: IdentityRecord) => boolean): IdentityRecord | undefined {
    if (serverName !== undefined) {
      const served = this.store.state.identities.filter((i) => i.chain.length > 0);
      const match = bestHostMatch(usable ? served.filter(usable) : served, serverName);
      if (match) return match;
      if (usable && bestHostMatch(served, serverName)) throw accessDenied(serverName);
      if (this.store.state.policy.unknownSni === 'reject') return undefined;
    }
    const d = this.defaultFor(ch);
    if (d && usable && !usable(d)) throw accessDenied(serverName);
    return d;
  }

  /**
   * The TLS engine's view of an identity (deterministic mode: nonces and salts from the card RNG),
   * with the security domain's `rules` (client CAs, deny-list) when it has some.
   */
  forEngine(rec: IdentityRecord, rules?: EngineIdentityRules): TlsIdentity {
    return tlsIdentity(rec, this.rng.deterministic ? this.rng.random : undefined, rules);
  }

  /**
   * A new key generated inside the card for identity `label` (created, at most Limits.maxIdentities:
   * 6A84; or its key replaced, its chain dropped, its policy and anchors kept). Returns the SPKI.
   */
  generateKey(label: string, keyType: KeyTypeName): Uint8Array {
    const old = this.store.state.identities.find((x) => x.label === label);
    // The security domain's slots (`slot1`–`slot8`) do not count against the limit of labelled identities.
    if (!old && this.store.state.identities.filter((i) => slotOfLabel(i.label) === undefined).length >= Limits.maxIdentities) {
      throw cardErr.full(`at most ${Limits.maxIdentities} identities`);
    }
    const fresh = generateIdentity(label, keyType);
    // A new key keeps the identity's policy and trust anchors (they are about its clients).
    const rec: IdentityRecord = old
      ? { ...fresh, clientAuth: old.clientAuth, exportAllowed: old.exportAllowed, exporterLabels: old.exporterLabels, trustAnchors: old.trustAnchors }
      : fresh;
    this.config.commit((s) => {
      const i = s.identities.findIndex((x) => x.label === label);
      if (i >= 0) s.identities[i] = rec;
      else s.identities.push(rec);
    });
    return rec.spki.slice();
  }

  /** A PKCS#10 CSR for identity `label`'s key, signed inside the card. */
  csr(req: CsrRequest): Uint8Array {
    return buildCsr(this.find(req.label), req, this.rng.deterministic ? this.rng.random : undefined);
  }

  /** Installs a certificate chain (leaf first): the leaf must be for the identity's key, each certificate issued by the next (6A80). */
  installChain(label: string, certs: Uint8Array[]): void {
    const rec = this.find(label);
    const hostNames = checkChain(rec, certs);
    this.config.commit((s) => {
      const i = s.identities.findIndex((x) => x.label === label);
      s.identities[i] = { ...rec, chain: certs, hostNames };
    });
  }

  /** Client auth, session export and exporter labels of one identity. */
  setPolicy(change: IdentityPolicyChange): void {
    const rec = this.find(change.label);
    const next: IdentityRecord = {
      ...rec,
      ...(change.clientAuth !== undefined ? { clientAuth: change.clientAuth } : {}),
      ...(change.exportAllowed !== undefined ? { exportAllowed: change.exportAllowed } : {}),
      ...(change.exporterLabels !== undefined ? { exporterLabels: [...change.exporterLabels] } : {}),
    };
    this.replace(rec, next);
  }

  /** Adds a CA certificate to an identity's trust anchors (at most Limits.maxTrustAnchors: 6A84; a duplicate is a no-op). */
  addTrustAnchor(label: string, certificate: Uint8Array): void {
    const rec = this.find(label);
    if (rec.trustAnchors.some((a) => equalBytes(a, certificate))) return;
    if (rec.trustAnchors.length >= Limits.maxTrustAnchors) throw cardErr.full(`at most ${Limits.maxTrustAnchors} trust anchors per identity`);
    this.replace(rec, { ...rec, trustAnchors: [...rec.trustAnchors, certificate] });
  }

  /** Removes every trust anchor of an identity. */
  clearTrustAnchors(label: string): void {
    const rec = this.find(label);
    this.replace(rec, { ...rec, trustAnchors: [] });
  }

  private replace(rec: IdentityRecord, next: IdentityRecord): void {
    this.config.commit((s) => {
      s.identities[s.identities.findIndex((x) => x.label === rec.label)] = next;
    });
  }
}
