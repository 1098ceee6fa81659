/**
 * card/services/services: the card services every applet receives (docs/architecture.md "The card:
 * an OS and its applets"): the one persistent store with transactions, the RNG, PINs, identities,
 * the TLS configuration (policy, PSKs, ticket key), the time floor, the TLS engine service and the
 * security domain's rules (locks, identity slots, client CAs, deny-list, session audit).
 * Methods that change persistent state run in a store transaction (joining the caller's), so an
 * applet can compose several (e.g. generate a key, install a chain, set a policy) into one atomic
 * write with `store.transaction(() => …)`. imports card/.
 */
import type { MonotonicMs } from '../clock.js';
import type { CardState } from '../state.js';
import type { PersistentStore } from '../os/persistent-store.js';
import { ConfigService } from './config-service.js';
import { IdentityService } from './identity-service.js';
import { PinService } from './pin-service.js';
import type { CardRandom } from './random.js';
import { SecurityDomainService } from './security-domain.js';
import { TimeService } from './time-service.js';
import { TlsService, type TlsFactory } from './tls-service.js';

export interface CardServices {
  readonly store: PersistentStore<CardState>;
  readonly rng: CardRandom;
  readonly pins: PinService;
  readonly identities: IdentityService;
  readonly config: ConfigService;
  readonly time: TimeService;
  readonly tls: TlsService;
  /** The security domain's rules as the rest of the card applies them (locks, slots, deny-list, audit). */
  readonly securityDomain: SecurityDomainService;
}

export interface CardServicesOptions {
  readonly store: PersistentStore<CardState>;
  readonly rng: CardRandom;
  readonly tlsFactory?: TlsFactory;
  readonly monotonicMs?: MonotonicMs;
}

export function createCardServices(o: CardServicesOptions): CardServices {
  const config = new ConfigService(o.store, o.rng);
  const time = new TimeService(o.store, o.monotonicMs);
  return {
    store: o.store,
    rng: o.rng,
    pins: new PinService(o.store, o.rng),
    identities: new IdentityService(o.store, config, o.rng),
    config,
    time,
    tls: new TlsService(o.store, config, o.rng, o.tlsFactory),
    securityDomain: new SecurityDomainService(o.store, time),
  };
}
