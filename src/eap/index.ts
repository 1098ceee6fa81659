/** eap/: EAP and EAP-TLS packet codec, fragmentation and ACKs. imports bytes/. */
export * from './packet.js';
export * from './fragment.js';
