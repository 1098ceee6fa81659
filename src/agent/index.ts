/**
 * agent/: the device agent — relays operator admin scripts (setls-remote-admin/1) to the card on a
 * logical channel of its own. imports bytes/, apdu/, transport/, host/card-client, relay/.
 */
export * from './cla.js';
export * from './execute.js';
export * from './card-slot.js';
export * from './operator-client.js';
export * from './agent.js';
