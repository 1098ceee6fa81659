/**
 * card/services/config-service: the card's TLS configuration as a service — the card policy, the
 * external PSKs, the session ticket key — and the one rule for changing any of it: a store
 * transaction that (for changes that decide who may connect) drops the ticket key in the same write,
 * after which the TLS sessions of every channel are reset and the session-ID cache emptied
 * (`onChanged` listeners), so nothing made under the old configuration outlives it.
 *
 * Every method that writes runs in a store transaction (joining the caller's, if any); its
 * follow-ups (wiping replaced secrets, resetting sessions) run once that transaction has committed.
 *
 * Secrets: PSK keys and the ticket key live in the state (wiped here when replaced or removed).
 * imports bytes/, tls/ (api types) and card/.
 */
import { equalBytes, wipe } from '../../bytes/index.js';
import type { TicketKey } from '../../tls/api.js';
import { Limits } from '../constants.js';
import { cardErr } from '../errors.js';
import { applyPolicyTlv, type CardPolicy } from '../policy.js';
import type { CardState, PskRecord } from '../state.js';
import type { PersistentStore } from '../os/persistent-store.js';
import type { CardRandom } from './random.js';

export class ConfigService {
  private readonly listeners: (() => void)[] = [];

  constructor(
    private readonly store: PersistentStore<CardState>,
    private readonly rng: CardRandom,
  ) {}

  /** Called after every configuration change has committed (in registration order). */
  onChanged(fn: () => void): void {
    this.listeners.push(fn);
  }

  get policy(): CardPolicy {
    return this.store.state.policy;
  }

  get psks(): readonly PskRecord[] {
    return this.store.state.psks;
  }

  /**
   * Commits `change` and announces a configuration change. `rotateTickets` (default): the ticket key
   * is dropped in the same write (a new one is made at the next need), so tickets issued under the
   * old configuration stop resuming. `retired`: secrets the change takes out of the state, wiped
   * once it has committed.
   */
  commit(change: (s: CardState) => void, rotateTickets = true, retired: readonly (Uint8Array | undefined)[] = []): void {
    const old = rotateTickets ? this.store.state.ticketKey : undefined;
    this.store.transaction((s) => {
      change(s);
      if (rotateTickets) s.ticketKey = undefined;
    });
    this.store.afterCommit(() => {
      if (old) wipe(old.key, old.id);
      wipe(...retired);
      this.changed();
    });
  }

  /** Resets what depends on the configuration (listeners: session-ID cache, every channel's TLS session). */
  changed(): void {
    for (const l of this.listeners) l();
  }

  /** PUT-POLICY / an operator's SetPolicy: the policy TLVs `30`..`39`; absent tags keep their value (6A80 on bad data). */
  applyPolicy(tlv: Uint8Array): void {
    const policy = applyPolicyTlv(tlv, this.store.state.policy);
    this.commit((s) => {
      s.policy = policy;
    }, false);
  }

  /** Adds or replaces an external PSK (at most Limits.maxPsks: 6A84). Takes `psk.key` (wiped on failure). */
  putPsk(psk: PskRecord): void {
    const i = this.store.state.psks.findIndex((p) => equalBytes(p.identity, psk.identity));
    const old = i >= 0 ? this.store.state.psks[i] : undefined;
    try {
      if (!old && this.store.state.psks.length >= Limits.maxPsks) throw cardErr.full(`at most ${Limits.maxPsks} PSKs`);
      // A PSK added (none replaced) keeps the tickets: nobody lost access.
      this.commit(
        (s) => {
          if (i >= 0) s.psks[i] = psk;
          else s.psks.push(psk);
        },
        !!old,
        [old?.key],
      );
    } catch (e) {
      wipe(psk.key);
      throw e;
    }
  }

  /** Deletes the external PSK with this identity (6A88 when there is none). */
  deletePsk(identity: Uint8Array): void {
    const i = this.store.state.psks.findIndex((p) => equalBytes(p.identity, identity));
    const old = i >= 0 ? this.store.state.psks[i] : undefined;
    if (!old) throw cardErr.notFound('no PSK with that identity');
    this.commit(
      (s) => {
        s.psks.splice(i, 1);
      },
      true,
      [old.key],
    );
  }

  /** The card's ticket key, generated (from the card RNG) and sealed at first need. */
  ticketKey(): TicketKey {
    if (!this.store.state.ticketKey) {
      const id = this.rng.random(4);
      const key = this.rng.random(32);
      this.store.transaction((s) => {
        s.ticketKey = { id, key };
      });
    }
    return this.store.state.ticketKey!;
  }
}
