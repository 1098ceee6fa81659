/**
 * card/: the emulated secure element — a card OS (os/) hosting the setls applet and the TLS-SE
 * applet (applets/) over the card services (services/). Wires the TLS engine of src/tls as the
 * default engine. imports card/ siblings, protocol/ and tls/.
 */
import { createTlsServer } from '../tls/index.js';
import { setDefaultTlsFactory } from './services/tls-service.js';

setDefaultTlsFactory(createTlsServer);

export { EmulatedCard, type EmulatedCardCreateOptions, type EmulatedCardOpenOptions, type CardErrorInfo, type RandomSource, type SecurityDomainDiagnostics } from './card.js';
export type { TlsFactory } from './services/tls-service.js';
export type { StoreHooks, WriteStep } from './os/sealed-store.js';
export { APPLET_AID, APPLET_VERSION, CardStateCode, KeyType, PolicyTag, UnknownSniPolicy } from '../protocol/index.js';
export { DEFAULT_POLICY, encodePolicyTlv, type CardPolicy, type UnknownSni } from './policy.js';
// The platform, for applets registered by the card's integrator (docs/architecture.md "Registering an applet").
export type { Applet, AppletCommand, ChannelContext, CommandSpec, CommandTable, AccessRule, Reply } from './os/applet.js';
export type { CardServices } from './services/services.js';
export { registerDefaultApplet, type AppletFactory } from './applets/registry.js';
