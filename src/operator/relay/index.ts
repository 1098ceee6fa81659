/**
 * operator/relay/: the operator's end of the device-agent relay (setls-remote-admin/1): RelayHub
 * (runScript for the job runner, handleRelay for the HTTPS server) and its store.
 * imports bytes/, apdu/, relay/.
 */
export * from './store.js';
export * from './hub.js';
