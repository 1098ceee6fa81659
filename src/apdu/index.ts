/** apdu/: ISO 7816-4 APDU codec, status words and chaining. imports bytes/. */
export * from './status.js';
export * from './command.js';
export * from './response.js';
export * from './chaining.js';
