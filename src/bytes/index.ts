/** bytes/: byte readers, writers, hex and small helpers. imports nothing else of the project. */
export * from './errors.js';
export * from './hex.js';
export * from './util.js';
export * from './reader.js';
export * from './writer.js';
export * from './tlv.js';
