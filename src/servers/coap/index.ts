/** servers/coap: CoAP over TLS whose TLS ends in the card, and the demo plug's CoAP resources. imports host/, coap/ and bytes/. */
export * from './tls.js';
export * from './demo-resources.js';
export * from './dtls.js';
