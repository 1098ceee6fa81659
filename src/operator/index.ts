/**
 * operator/: the setls operator service — registry, issuing CA and CRL, enrolment verification,
 * durable card jobs, the REST API. May import bytes/, gp/, pki/, registry/, protocol/ and packages;
 * never card/, host/ or tls/ (scripts/check-deps.ts). docs/operator.md describes it.
 * operator/relay/ (the device-agent endpoint) is a separate part with its own owner.
 */
export * from './errors.js';
export * from './paths.js';
export { Operator, type OpenOptions } from './operator.js';
export { initOperator, type InitOptions, type InitResult } from './init.js';
export { startOperator, type StartOptions, type RunningOperator } from './service.js';
export { OperatorServer, type MountHandler } from './api/server.js';
export { JobRunner, JobError, type JobExecutor, type JobContext } from './jobs/runner.js';
export { JobKind, JOB_KINDS, JOB_SPECS } from './jobs/kinds.js';
export { createApiToken, verifyApiToken, type Principal } from './auth/tokens.js';
export * from './pki/attestation.js';
export { EnrolmentService, checkEnrolmentBinding, type EnrolmentRequest, type EnrolmentResult, type IssuedNonce } from './pki/enrolment.js';
export { RevocationService, type CrlInfo } from './pki/revocation.js';
export { OperatorCa } from './pki/issuing-ca.js';
export { parseManifest, type ManifestEntry } from './pki/manifest.js';
export { importManifest } from './services/manifests.js';
export { adminKeysForCard, transportKeysForCard, FACTORY_KVN, FIRST_OPERATOR_KVN } from './keys/master-keys.js';
export * from './store/index.js';
