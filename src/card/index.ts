/**
 * card/: the emulated secure element running the setls TLS 1.3 server behind APDUs.
 * Wires the TLS engine of src/tls as the default engine. imports card/ siblings and tls/.
 */
import { createTlsServer } from '../tls/index.js';
import { setDefaultTlsFactory } from './card.js';

setDefaultTlsFactory(createTlsServer);

export { EmulatedCard, type EmulatedCardCreateOptions, type EmulatedCardOpenOptions, type CardErrorInfo, type RandomSource } from './card.js';
export type { TlsFactory } from './session.js';
export type { StoreHooks, WriteStep } from './store.js';
export { APPLET_AID, APPLET_VERSION, CardStateCode, KeyType, PolicyTag, UnknownSniPolicy } from '../protocol/index.js';
export { DEFAULT_POLICY, encodePolicyTlv, type CardPolicy, type UnknownSni } from './policy.js';
