/** transport/: the APDU channel to a card. imports bytes/, apdu/, protocol/ and transport/. */
export * from './card-transport.js';
export * from './in-process.js';
export * from './tracing.js';
export { commandName, isChainable, hasSecretData, hasSecretResponse } from '../protocol/index.js';
export * from './pcsc.js';
export * from './vpcd.js';
export * from './faulty.js';
