/**
 * operator/audits/: the fleet audits (issue #16, after AWS IoT Device Defender audits): one small
 * function per check over the store, and the runner that turns what they see into findings with
 * first/last seen and resolution. imports the files beside it.
 */
export * from './types.js';
export { AuditService, ALL_CHECKS, type AuditRunResult, type CheckCounts } from './runner.js';
export { findingView } from './views.js';
