/**
 * card/applets/registry: which applets a card hosts. The setls applet (the default applet: it
 * answers on channels where nothing is selected), the TLS-SE applet and the security domain (GP
 * ISD, SCP03) are always there, in that order; applets registered here with `registerDefaultApplet`
 * are added to every card made afterwards, in registration order, then those a card is opened with
 * (`EmulatedCardOpenOptions.applets`). imports card/.
 */
import type { Applet } from '../os/applet.js';
import type { CardServices } from '../services/services.js';
import type { IsdOptions, ManagedApplet } from './isd/index.js';
import { SecurityDomainApplet } from './security-domain.js';
import { SetlsApplet } from './setls/applet.js';
import { TlsSeApplet } from './tls-se/applet.js';

/** Makes an applet for one card, from that card's services. */
export type AppletFactory = (services: CardServices) => Applet;

const registered: AppletFactory[] = [];

/** Adds an applet to every card created or opened from now on. */
export function registerDefaultApplet(factory: AppletFactory): void {
  registered.push(factory);
}

/**
 * The applets of one card: setls, TLS-SE, the security domain (with `isd` options), the registered
 * ones, then `extra`. The security domain manages the others (GET STATUS, SET STATUS); the setls
 * applet is the one whose AID ‖ slot addresses an identity.
 */
export function cardApplets(services: CardServices, extra: readonly AppletFactory[] = [], isd: IsdOptions = {}): Applet[] {
  const all: Applet[] = [];
  const setls = new SetlsApplet(services);
  const managed = (): readonly ManagedApplet[] => all.filter((a) => a !== sd).map((a) => ({ aid: a.aid, ...(a === setls ? { hasIdentities: true } : {}) }));
  const sd = new SecurityDomainApplet(services, managed, isd);
  all.push(setls, new TlsSeApplet(services), sd, ...registered.map((f) => f(services)), ...extra.map((f) => f(services)));
  return all;
}
