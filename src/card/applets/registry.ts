/**
 * card/applets/registry: which applets a card hosts. The setls applet (the default applet: it
 * answers on channels where nothing is selected) and the TLS-SE applet are always there; applets
 * registered here with `registerDefaultApplet` (e.g. the security domain, by src/card/index.ts) are
 * added to every card made afterwards, in registration order, then those a card is opened with
 * (`EmulatedCardOpenOptions.applets`). imports card/.
 */
import type { Applet } from '../os/applet.js';
import type { CardServices } from '../services/services.js';
import { SetlsApplet } from './setls/applet.js';
import { TlsSeApplet } from './tls-se/applet.js';

/** Makes an applet for one card, from that card's services. */
export type AppletFactory = (services: CardServices) => Applet;

const registered: AppletFactory[] = [];

/** Adds an applet to every card created or opened from now on. */
export function registerDefaultApplet(factory: AppletFactory): void {
  registered.push(factory);
}

/** The applets of one card: setls, TLS-SE, the registered ones, then `extra`. */
export function cardApplets(services: CardServices, extra: readonly AppletFactory[] = []): Applet[] {
  return [new SetlsApplet(services), new TlsSeApplet(services), ...registered.map((f) => f(services)), ...extra.map((f) => f(services))];
}
