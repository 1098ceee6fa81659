/**
 * gp/: GlobalPlatform SCP03 (Card Specification 2.3 Amendment D) for both sides — the off-card
 * `Scp03Host` (operator, GP tools) and the card's `Scp03Card` (security domain applet) — plus the
 * primitives they share (AES-CMAC, the SP 800-108 KDF), PUT KEY key blocks, STORE DATA chaining and
 * per-card key diversification. Sans-I/O: bytes in, bytes out. imports bytes/ and node:crypto only.
 * Byte-level description: docs/gp-scp03.md.
 */
export * from './errors.js';
export * from './aes.js';
export * from './cmac.js';
export * from './kdf.js';
export * from './params.js';
export * from './cla.js';
export * from './command-apdu.js';
export * from './keys.js';
export * from './session-keys.js';
export * from './handshake.js';
export * from './secure-messaging.js';
export * from './host.js';
export * from './card.js';
export * from './put-key.js';
export * from './store-data.js';
export * from './diversify.js';
