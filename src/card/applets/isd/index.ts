/**
 * card/applets/isd/: setls's security domain applet (GlobalPlatform ISD, SCP03) — self-contained:
 * it reaches the rest of the card only through `IsdPlatform` (platform.ts). Protocol:
 * docs/admin-protocol.md. imports bytes/, gp/ and gp/admin.
 */
export * from './applet.js';
export * from './platform.js';
export * from './record.js';
export * from './record-codec.js';
export * from './view.js';
export { IsdRefusal } from './errors.js';
export { appendAudit } from './audit-log.js';
