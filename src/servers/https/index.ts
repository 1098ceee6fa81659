/** servers/https: HTTPS whose TLS ends in the card. imports host/ and bytes/ only. */
export * from './server.js';
export * from './demo-plug.js';
