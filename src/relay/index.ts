/** relay/: the setls-remote-admin/1 protocol shared by the operator and the device agent. imports bytes/. */
export * from './protocol.js';
export * from './errors.js';
export * from './headers.js';
export * from './codec.js';
