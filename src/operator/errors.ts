/**
 * operator/errors: the operator service's stable error codes (ERR_OP_…), the HTTP status each one
 * maps to, and `OpError`. imports bytes/ (SetlsError).
 *
 * A code never changes meaning once released; messages may. The REST API answers every refusal
 * with `{ "error": { "code": "ERR_OP_…", "message": "…" } }` and the status below.
 */
import { SetlsError } from '../bytes/index.js';

export const OpErrorCode = {
  // request / protocol
  badJson: 'ERR_OP_BAD_JSON',
  badRequest: 'ERR_OP_BAD_REQUEST',
  bodyTooLarge: 'ERR_OP_BODY_TOO_LARGE',
  unsupportedMediaType: 'ERR_OP_UNSUPPORTED_MEDIA_TYPE',
  notFound: 'ERR_OP_NOT_FOUND',
  methodNotAllowed: 'ERR_OP_METHOD_NOT_ALLOWED',
  notAcceptable: 'ERR_OP_NOT_ACCEPTABLE',
  requestTimeout: 'ERR_OP_REQUEST_TIMEOUT',
  unauthenticated: 'ERR_OP_UNAUTHENTICATED',
  forbidden: 'ERR_OP_FORBIDDEN',
  badCursor: 'ERR_OP_BAD_CURSOR',
  idempotencyMismatch: 'ERR_OP_IDEMPOTENCY_MISMATCH',
  idempotencyInProgress: 'ERR_OP_IDEMPOTENCY_IN_PROGRESS',
  internal: 'ERR_OP_INTERNAL',
  // registry
  unknownCard: 'ERR_OP_UNKNOWN_CARD',
  unknownJob: 'ERR_OP_UNKNOWN_JOB',
  unknownCertificate: 'ERR_OP_UNKNOWN_CERTIFICATE',
  cardTerminated: 'ERR_OP_CARD_TERMINATED',
  cardState: 'ERR_OP_CARD_STATE',
  alreadyRevoked: 'ERR_OP_ALREADY_REVOKED',
  manifestInvalid: 'ERR_OP_MANIFEST_INVALID',
  manifestConflict: 'ERR_OP_MANIFEST_CONFLICT',
  untrustedManufacturer: 'ERR_OP_UNTRUSTED_MANUFACTURER',
  // audits (issue #16): findings
  unknownFinding: 'ERR_OP_UNKNOWN_FINDING',
  /** A finding that is already resolved cannot be resolved again. */
  findingResolved: 'ERR_OP_FINDING_RESOLVED',
  /** An audit run holds the lease (on this or another node). */
  auditRunning: 'ERR_OP_AUDIT_RUNNING',
  // enrolment verification: each refusal its own code, nothing issued
  unknownUid: 'ERR_OP_UNKNOWN_UID',
  attestationFormat: 'ERR_OP_ATTESTATION_FORMAT',
  attestationChain: 'ERR_OP_ATTESTATION_CHAIN',
  attestationCertMismatch: 'ERR_OP_ATTESTATION_CERT_MISMATCH',
  attestationSignature: 'ERR_OP_ATTESTATION_SIGNATURE',
  attestationUid: 'ERR_OP_ATTESTATION_UID',
  nonceUnknown: 'ERR_OP_NONCE_UNKNOWN',
  nonceReplay: 'ERR_OP_NONCE_REPLAY',
  nonceExpired: 'ERR_OP_NONCE_EXPIRED',
  csrInvalid: 'ERR_OP_CSR_INVALID',
  csrSignature: 'ERR_OP_CSR_SIGNATURE',
  csrKeyMismatch: 'ERR_OP_CSR_KEY_MISMATCH',
  keyPolicy: 'ERR_OP_KEY_POLICY',
  keyBoundElsewhere: 'ERR_OP_KEY_BOUND_ELSEWHERE',
  // EST zero-touch enrolment (Mode B)
  /** No challengePassword, or not one of the operator's challenge texts. */
  estChallengeInvalid: 'ERR_OP_EST_CHALLENGE_INVALID',
  /** A challenge text whose MAC the operator's key does not confirm (forged or altered). */
  estChallengeForged: 'ERR_OP_EST_CHALLENGE_FORGED',
  /** A CSR without card attestation evidence (a software key): refused without an enrolment credential. */
  evidenceMissing: 'ERR_OP_EVIDENCE_MISSING',
  // EST for clients without a card (enrolment credentials, /simplereenroll)
  /** HTTP Basic enrolment credential missing, unknown, wrong, revoked, expired or used up (401). */
  estCredential: 'ERR_OP_EST_CREDENTIAL',
  /** A CSR subject / SAN the credential's profile does not allow, or not the renewed certificate's. */
  estName: 'ERR_OP_EST_NAME',
  /** /simplereenroll without a valid client certificate of the issuing CA (absent, foreign, expired, revoked, superseded). */
  estClientCertificate: 'ERR_OP_EST_CLIENT_CERTIFICATE',
  /** /simplereenroll with a card's certificate: card identities are renewed by the re-key job. */
  estCardCertificate: 'ERR_OP_EST_CARD_CERTIFICATE',
  /** Too many password checks in flight (scrypt is deliberately slow): retry later (503). */
  estBusy: 'ERR_OP_EST_BUSY',
  unknownCredential: 'ERR_OP_UNKNOWN_CREDENTIAL',
  // jobs
  noExecutor: 'ERR_OP_NO_EXECUTOR',
  leaseLost: 'ERR_OP_LEASE_LOST',
  jobTimeout: 'ERR_OP_JOB_TIMEOUT',
  jobAbandoned: 'ERR_OP_JOB_ABANDONED',
  integrity: 'ERR_OP_INTEGRITY',
  // executors (SCP03 scripts through the device agent)
  /** The card's agent did not answer (absent, busy, restarted too often): retried. */
  agentUnavailable: 'ERR_OP_AGENT_UNAVAILABLE',
  /** The security domain refuses sessions for now (back-off after failed authentications): retried. */
  cardBusy: 'ERR_OP_CARD_BUSY',
  /** The card refused an operation for a reason of its own state (not tampering). */
  cardRefused: 'ERR_OP_CARD_REFUSED',
  /** The card answers no security domain (no ISD to administer). */
  noSecurityDomain: 'ERR_OP_NO_SECURITY_DOMAIN',
  /** The factory keys of a card are needed and the manufacturer's transport master is not here. */
  transportKey: 'ERR_OP_TRANSPORT_KEY',
  /** Audit log: entries missing between what was verified before and what the card returns, or a rewritten chain. */
  auditGap: 'ERR_OP_AUDIT_GAP',
  /** Audit log: the signed head does not verify with the card's attestation certificate. */
  auditSignature: 'ERR_OP_AUDIT_SIGNATURE',
  /** A job's secret (a new PIN) asked by another principal than the one who created the job, or gone. */
  secretUnavailable: 'ERR_OP_SECRET_UNAVAILABLE',
  // campaigns
  unknownCampaign: 'ERR_OP_UNKNOWN_CAMPAIGN',
  /** pause/resume/cancel not possible in the campaign's state (e.g. resume of a canceled one). */
  campaignState: 'ERR_OP_CAMPAIGN_STATE',
  // local state
  stateExists: 'ERR_OP_STATE_EXISTS',
  stateMissing: 'ERR_OP_STATE_MISSING',
  keyFile: 'ERR_OP_KEY_FILE',
  schemaVersion: 'ERR_OP_SCHEMA_VERSION',
  // web console (issue #16)
  /** A console session cookie without its X-CSRF-Token, or with another session's / a wrong one. */
  csrf: 'ERR_OP_CSRF',
  /** A destructive action from the console without `confirm` (true, or the card's UID) in its body. */
  confirmationRequired: 'ERR_OP_CONFIRMATION_REQUIRED',
  /** Too many failed console sign-ins in a short time. */
  rateLimited: 'ERR_OP_RATE_LIMITED',
  // scale (issue #17): the issuance worker pool's queue is full, or the pool is shut down
  overloaded: 'ERR_OP_OVERLOADED',
} as const;
export type OpErrorCode = (typeof OpErrorCode)[keyof typeof OpErrorCode];

/** HTTP status per code; codes absent here are 500 (they are not meant to reach a client). */
export const HTTP_STATUS: Readonly<Partial<Record<OpErrorCode, number>>> = {
  ERR_OP_BAD_JSON: 400,
  ERR_OP_OVERLOADED: 503,
  ERR_OP_BAD_REQUEST: 400,
  ERR_OP_BAD_CURSOR: 400,
  ERR_OP_BODY_TOO_LARGE: 413,
  ERR_OP_UNSUPPORTED_MEDIA_TYPE: 415,
  ERR_OP_NOT_FOUND: 404,
  ERR_OP_METHOD_NOT_ALLOWED: 405,
  ERR_OP_NOT_ACCEPTABLE: 406,
  ERR_OP_REQUEST_TIMEOUT: 408,
  ERR_OP_UNAUTHENTICATED: 401,
  ERR_OP_FORBIDDEN: 403,
  ERR_OP_IDEMPOTENCY_MISMATCH: 422,
  ERR_OP_IDEMPOTENCY_IN_PROGRESS: 409,
  ERR_OP_INTERNAL: 500,
  ERR_OP_UNKNOWN_CARD: 404,
  ERR_OP_UNKNOWN_JOB: 404,
  ERR_OP_UNKNOWN_CERTIFICATE: 404,
  ERR_OP_CARD_TERMINATED: 409,
  ERR_OP_CARD_STATE: 409,
  ERR_OP_ALREADY_REVOKED: 409,
  ERR_OP_MANIFEST_INVALID: 422,
  ERR_OP_MANIFEST_CONFLICT: 409,
  ERR_OP_UNTRUSTED_MANUFACTURER: 422,
  ERR_OP_UNKNOWN_FINDING: 404,
  ERR_OP_FINDING_RESOLVED: 409,
  ERR_OP_AUDIT_RUNNING: 409,
  ERR_OP_UNKNOWN_UID: 422,
  ERR_OP_ATTESTATION_FORMAT: 422,
  ERR_OP_ATTESTATION_CHAIN: 422,
  ERR_OP_ATTESTATION_CERT_MISMATCH: 422,
  ERR_OP_ATTESTATION_SIGNATURE: 422,
  ERR_OP_ATTESTATION_UID: 422,
  ERR_OP_NONCE_UNKNOWN: 422,
  ERR_OP_NONCE_REPLAY: 422,
  ERR_OP_NONCE_EXPIRED: 422,
  ERR_OP_CSR_INVALID: 422,
  ERR_OP_CSR_SIGNATURE: 422,
  ERR_OP_CSR_KEY_MISMATCH: 422,
  ERR_OP_KEY_POLICY: 422,
  ERR_OP_KEY_BOUND_ELSEWHERE: 409,
  ERR_OP_EST_CHALLENGE_INVALID: 400,
  ERR_OP_EST_CHALLENGE_FORGED: 403,
  ERR_OP_EVIDENCE_MISSING: 403,
  ERR_OP_EST_CREDENTIAL: 401,
  ERR_OP_EST_NAME: 403,
  ERR_OP_EST_CLIENT_CERTIFICATE: 403,
  ERR_OP_EST_CARD_CERTIFICATE: 403,
  ERR_OP_EST_BUSY: 503,
  ERR_OP_UNKNOWN_CREDENTIAL: 404,
  ERR_OP_SECRET_UNAVAILABLE: 404,
  ERR_OP_CSRF: 403,
  ERR_OP_CONFIRMATION_REQUIRED: 428,
  ERR_OP_RATE_LIMITED: 429,
  ERR_OP_UNKNOWN_CAMPAIGN: 404,
  ERR_OP_CAMPAIGN_STATE: 409,
};

export class OpError extends SetlsError {
  override readonly code: OpErrorCode;
  /** Extra machine-readable details for the JSON body (never secrets). */
  readonly details: Record<string, unknown> | undefined;
  constructor(code: OpErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(code, message, options);
    this.code = code;
    this.details = options?.details;
    this.name = 'OpError';
  }
  get status(): number {
    return HTTP_STATUS[this.code] ?? 500;
  }
}

export function isOpError(e: unknown): e is OpError {
  return e instanceof OpError;
}
