/**
 * coap/: the CoAP codec (RFC 7252 UDP messages and RFC 8323 stream frames, signalling, options,
 * Block) and a node:http-shaped server API. imports bytes/ only.
 */
export * from './errors.js';
export * from './codes.js';
export * from './options.js';
export * from './message.js';
export * from './signals.js';
export * from './link-format.js';
export * from './server.js';
export * from './udp-messaging.js';
