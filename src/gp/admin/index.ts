/**
 * gp/admin/: the setls administration protocol of the security domain (docs/admin-protocol.md):
 * constants, function request builders and response parsers, the attestation statement, the audit
 * log, the time anchor, and `AdminClient` (an off-card session over any transmit function).
 * imports bytes/ and gp/.
 */
export * from './constants.js';
export * from './fields.js';
export * from './attestation.js';
export * from './audit.js';
export * from './time-anchor.js';
export * from './requests.js';
export * from './client.js';
