/**
 * operator/store/types: the `OperatorStore` repository interface and its row types — what every
 * storage back end (SQLite now, PostgreSQL later: issue #17) implements, and the one thing the rest
 * of the operator may use to reach its data. imports store/expiring, store/expiring-cards, store/enrol-batch (types).
 *
 * Conventions, the same in every back end:
 * - ids are text (UUIDs from crypto.randomUUID); a card's UID and a certificate's serial are bytes;
 * - bytes are `Uint8Array` (never Buffer), JSON columns are plain objects;
 * - every timestamp is epoch milliseconds (a number); the API renders ISO strings;
 * - every method is async; `tx(fn)` runs `fn` with a store bound to one transaction that commits
 *   when `fn` resolves and rolls back when it throws (one writer at a time; keep `fn` short and
 *   never await network or signing inside it);
 * - list methods take an opaque-free keyset `after` (the last row's sort key) and a `limit`.
 */
import type { ExpiringCertificate, ExpiringCursor } from './expiring.js';
import type { EnrolmentPersist, EnrolmentPersistOutcome, NewEnrolment } from './enrol-batch.js';
import type { ExpiringCardsCursor, ExpiringCardsFilter } from './expiring-cards.js';

export const CardLifecycle = {
  manifest: 'manifest',
  enrolled: 'enrolled',
  active: 'active',
  locked: 'locked',
  terminated: 'terminated',
} as const;
export type CardLifecycle = (typeof CardLifecycle)[keyof typeof CardLifecycle];

export const JobStatus = {
  queued: 'queued',
  inProgress: 'in_progress',
  succeeded: 'succeeded',
  failed: 'failed',
  timedOut: 'timed_out',
  canceled: 'canceled',
} as const;
export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus];
export const FINAL_JOB_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'timed_out', 'canceled'];

export const CertificateStatus = { good: 'good', revoked: 'revoked', superseded: 'superseded' } as const;
export type CertificateStatus = (typeof CertificateStatus)[keyof typeof CertificateStatus];

export const Role = { viewer: 'viewer', operator: 'operator', admin: 'admin' } as const;
export type Role = (typeof Role)[keyof typeof Role];
export const ROLE_RANK: Readonly<Record<Role, number>> = { viewer: 1, operator: 2, admin: 3 };

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export interface ManufacturerCaRow {
  readonly id: string;
  readonly name: string;
  readonly certDer: Uint8Array;
  /** SHA-256 of the certificate DER, lower-case hex. */
  readonly fingerprint: string;
  readonly notAfter: number;
  readonly createdAt: number;
}

export interface CaRow {
  readonly id: string;
  /** 'issuing' (certifies cards) or 'tls' (the operator's own HTTPS). */
  readonly role: string;
  readonly certDer: Uint8Array;
  /** Where the private key lives (e.g. `file:ca.key`); never the key itself. */
  readonly keyRef: string;
  readonly notAfter: number;
  /** Highest cRLNumber allocated (a revocation allocates the next one in its transaction). */
  readonly crlNumber: number;
  /** The last CRL built, its number and validity (null before the first). */
  readonly crlDer: Uint8Array | null;
  readonly crlBuiltNumber: number;
  readonly crlThisUpdate: number | null;
  readonly crlNextUpdate: number | null;
  readonly createdAt: number;
}

export interface MasterKeyRow {
  readonly id: string;
  /** 'admin' (operator SCP03 keys, diversified per card) or 'transport' (a manufacturer's). */
  readonly purpose: string;
  readonly version: number;
  /** KCV of the master (hex), to spot a wrong key file; never the key. */
  readonly kcv: string;
  readonly source: string;
  readonly createdAt: number;
}

export interface ManifestBatchRow {
  readonly id: string;
  readonly manufacturerCaId: string;
  readonly name: string;
  readonly count: number;
  readonly importedBy: string;
  readonly importedAt: number;
}

/**
 * What manifest import verified about a card's attestation certificate (pki/manifest.ts): its key
 * (SubjectPublicKeyInfo, DER), the SHA-256 of the trusted manufacturer CA its path ended at, and the
 * intersection of the path's validity periods (ms). Enrolment re-uses it (pki/attestation.ts
 * KnownAttestation) for evidence carrying exactly attestCertDer.
 */
export interface CardAttestFacts {
  readonly keySpki: Uint8Array;
  readonly anchorSha256: Uint8Array;
  readonly validFrom: number;
  readonly validTo: number;
}

export interface CardRow {
  readonly id: string;
  readonly uid: Uint8Array;
  readonly batchId: string | null;
  readonly attestCertDer: Uint8Array;
  readonly attestSpkiSha256: Uint8Array;
  readonly lifecycle: CardLifecycle;
  /** KVN of the key set the operator must use now (factory 30 until ownership is taken). */
  readonly kvn: number;
  /** Which transport master the factory keys derive from (manifest), if any. */
  readonly transportKeyId: string | null;
  readonly seqCounter: number | null;
  readonly labels: JsonObject;
  /** Naming profile for issued certificates: { dnsNames?: string[], ipAddresses?: string[] }. */
  readonly profile: JsonObject;
  readonly hostId: string | null;
  readonly lastSeenAt: number | null;
  /** Number of the last deny-list (PutRevocationList) allocated for this card; only goes up. */
  readonly denyListNumber: number;
  /** Counter of the last time anchor (PutTimeAnchor) allocated for this card; only goes up. */
  readonly timeAnchorCounter: number;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** null: imported before schema 11, or registered without a manifest's path check. */
  readonly attestFacts: CardAttestFacts | null;
}

export interface IdentityRow {
  readonly id: string;
  readonly cardId: string;
  readonly slot: number;
  readonly alg: string;
  readonly spkiDer: Uint8Array;
  readonly spkiSha256: Uint8Array;
  /** generated / staged / active / retired / deleted */
  readonly state: string;
  readonly attestedAt: number | null;
  readonly createdAt: number;
  /** A retired identity whose key is to be deleted from the card after this time (re-key grace). */
  readonly deleteAfter?: number | null;
  readonly updatedAt?: number | null;
}

/** A device host (agent) allowed to poll the relay; its bearer token is kept as SHA-256 only. */
export interface HostRow {
  readonly id: string;
  readonly name: string;
  readonly credentialHash: Uint8Array | null;
  readonly lastIp: string | null;
  readonly lastSeenAt: number | null;
  readonly createdAt: number;
  readonly revokedAt: number | null;
  /** The operator node (its job runner's owner id) this host's agent last polled, and when. */
  readonly nodeId: string | null;
  readonly nodeSeenAt: number | null;
}

/** One verified entry of a card's audit log (the E2 TLV as the card returned it). */
export interface AuditEntryRow {
  readonly cardId: string;
  readonly seq: number;
  /** The audit event code (hex, e.g. '02'). */
  readonly type: string;
  readonly body: Uint8Array;
  /** Chain value before this entry. */
  readonly prevHash: Uint8Array;
  readonly receivedAt: number;
}

/** The last verified signed head of a card's audit log. */
export interface AuditHeadRow {
  readonly cardId: string;
  readonly seq: number;
  readonly headHash: Uint8Array;
  readonly signature: Uint8Array;
  readonly verified: boolean;
  /** The card's time in the head (Unix seconds; 0 = unknown). */
  readonly time: number;
  readonly receivedAt: number;
}

export interface CertificateRow {
  readonly serial: Uint8Array;
  readonly identityId: string;
  readonly cardId: string;
  readonly caId: string;
  readonly jobId: string | null;
  readonly enrolmentId: string | null;
  readonly subject: string;
  readonly san: JsonObject;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly der: Uint8Array;
  readonly status: CertificateStatus;
  readonly revokedAt: number | null;
  readonly reason: string | null;
  readonly createdAt: number;
}

export interface EnrolmentRow {
  readonly id: string;
  readonly cardId: string;
  readonly jobId: string | null;
  readonly mode: string;
  /** SHA-256 of the nonce given to the card; the nonce itself is not stored. */
  readonly nonceHash: Uint8Array;
  /** open / succeeded / refused */
  readonly status: string;
  readonly errorCode: string | null;
  readonly expiresAt: number;
  readonly startedAt: number;
  readonly finishedAt: number | null;
}

export interface JobRow {
  readonly id: string;
  /** Creation order (monotonic); jobs of one card run in this order. */
  readonly seq: number;
  readonly cardId: string;
  readonly campaignId: string | null;
  readonly kind: string;
  readonly params: JsonObject;
  readonly status: JobStatus;
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly leaseOwner: string | null;
  readonly leaseUntil: number | null;
  /** Not claimable before this time (retry back-off). */
  readonly notBefore: number;
  /** The job times out (timed_out) if not finished by then; null = no deadline. */
  readonly deadlineAt: number | null;
  readonly idempotencyKey: string | null;
  /** Executor checkpoints (resume after a crash). */
  readonly progress: JsonObject;
  readonly result: JsonObject | null;
  readonly errorCode: string | null;
  readonly errorMessage: string | null;
  readonly createdBy: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
}

export interface ApiTokenRow {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  /** SHA-256 of the token's secret part. */
  readonly secretHash: Uint8Array;
  readonly createdAt: number;
  readonly lastUsedAt: number | null;
  readonly revokedAt: number | null;
}

export interface IdempotencyRow {
  readonly principal: string;
  readonly key: string;
  readonly requestHash: Uint8Array;
  /** 0 while the first request is still being handled. */
  readonly status: number;
  readonly response: Json | null;
  readonly createdAt: number;
}

export interface EventRow {
  readonly id: number;
  readonly at: number;
  readonly actor: string;
  readonly kind: string;
  readonly cardId: string | null;
  readonly subject: string | null;
  readonly details: JsonObject;
}

export interface AdminSessionRow {
  readonly id: string;
  readonly jobId: string;
  readonly cardId: string;
  readonly scp: string;
  readonly kvn: number;
  readonly securityLevel: number;
  readonly seqCounter: number | null;
  readonly step: number;
  /** SHA-256 over the relayed APDUs (never the plaintext). */
  readonly transcriptSha256: Uint8Array | null;
  readonly errorSw: string | null;
  readonly startedAt: number;
  readonly finishedAt: number | null;
}

export interface CardFilter {
  readonly lifecycle?: CardLifecycle;
  /** `key` (label present) or `key=value`. */
  readonly label?: string;
  /** Cards holding a good certificate with not_after before this time. */
  readonly expiringBefore?: number;
}

export interface JobFilter {
  readonly cardId?: string;
  readonly status?: JobStatus;
  readonly kind?: string;
}

export type NewCard = Omit<CardRow, 'createdAt' | 'updatedAt' | 'lastSeenAt' | 'hostId' | 'seqCounter' | 'denyListNumber' | 'timeAnchorCounter' | 'attestFacts'> & {
  readonly createdAt: number;
  readonly seqCounter?: number | null;
  readonly attestFacts?: CardAttestFacts | null;
};
export type NewJob = Pick<JobRow, 'id' | 'cardId' | 'kind' | 'params' | 'maxAttempts' | 'deadlineAt' | 'idempotencyKey' | 'createdBy' | 'createdAt'> & {
  readonly campaignId?: string | null;
  /** Not claimable before (default: createdAt). */
  readonly notBefore?: number;
};

/** Per-card monotonic counters the operator allocates. */
export type CardCounter = 'denyListNumber' | 'timeAnchorCounter';

export interface ClaimOptions {
  readonly owner: string;
  readonly now: number;
  readonly leaseMs: number;
  /** Only these kinds (the runner's executors). */
  readonly kinds: readonly string[];
  /**
   * Agent routing (several nodes): this node's id; a job whose card's device host polled ANOTHER
   * node after `attachedAfter` is left to that node (only the node an agent polls can relay the
   * job's scripts to it).
   */
  readonly node?: { readonly id: string; readonly attachedAfter: number };
}

export interface JobFinish {
  readonly status: Exclude<JobStatus, 'queued' | 'in_progress'>;
  readonly result?: JsonObject | null;
  readonly errorCode?: string | null;
  readonly errorMessage?: string | null;
  readonly now: number;
}

// ---- campaigns (issue #16)
export const CampaignState = { running: 'running', paused: 'paused', canceled: 'canceled', aborted: 'aborted', completed: 'completed' } as const;
export type CampaignState = (typeof CampaignState)[keyof typeof CampaignState];
export const FINAL_CAMPAIGN_STATES: readonly CampaignState[] = ['canceled', 'aborted', 'completed'];

export interface CampaignRow {
  readonly id: string;
  readonly name: string;
  /** The campaign kind as the API names it (rekey, lock, push-anchors, push-deny-list, pin-reset). */
  readonly kind: string;
  /** The job kind each target gets (jobs/kinds.ts). */
  readonly jobKind: string;
  readonly selector: JsonObject;
  /** The job params (validated by the job kind). */
  readonly params: JsonObject;
  readonly ratePerMinute: number;
  /** { minExecuted, failurePercent } */
  readonly abortRule: JsonObject;
  readonly state: CampaignState;
  readonly abortReason: string | null;
  /** The counters when it aborted (what the decision saw). */
  readonly abortStats: JsonObject | null;
  /** Rollout bucket: the earliest time of the next release (persisted: a restart does not burst). */
  readonly nextReleaseAt: number;
  readonly createdBy: string;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly finishedAt: number | null;
}

/** pending: not released yet; released: its job exists (jobId); skipped: never released (note says why). */
export type CampaignTargetState = 'pending' | 'released' | 'skipped';

export interface CampaignTargetRow {
  readonly campaignId: string;
  readonly cardId: string;
  readonly ord: number;
  readonly state: CampaignTargetState;
  readonly jobId: string | null;
  readonly releasedAt: number | null;
  readonly note: string | null;
}

/** Live counters of a campaign, derived from its targets and their jobs. */
export interface CampaignCounters {
  readonly targeted: number;
  readonly pending: number;
  readonly queued: number;
  readonly running: number;
  readonly succeeded: number;
  /** failed + timed_out */
  readonly failed: number;
  /** canceled jobs + targets skipped (never released) */
  readonly canceled: number;
}

/** A campaign's executed jobs (succeeded; failed or timed out), counted over at most a limit; `exact` when fewer. */
export interface CampaignOutcomes {
  readonly succeeded: number;
  readonly failed: number;
  readonly exact: boolean;
}

/** The repository. Methods on a store returned by `tx` run inside that transaction. */
export interface OperatorStore {
  readonly dialect: string;
  tx<T>(fn: (t: OperatorStore) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  schemaVersion(): Promise<number>;
  /**
   * Calls `onChange` when a job may have become claimable, also when another operator node changed
   * it (PostgreSQL LISTEN/NOTIFY); resolves with the stopper, or null where the back end has no
   * notifications (SQLite: one node; the runner's poke and polling suffice).
   */
  watchJobs(onChange: () => void): Promise<(() => Promise<void>) | null>;

  // meta (small key/value settings: public URL, defaults)
  getMeta(key: string): Promise<string | null>;
  setMeta(key: string, value: string): Promise<void>;

  // manufacturer CAs and the operator's CAs
  addManufacturerCa(row: ManufacturerCaRow): Promise<boolean>;
  listManufacturerCas(): Promise<ManufacturerCaRow[]>;
  putCa(row: Omit<CaRow, 'crlNumber' | 'crlDer' | 'crlBuiltNumber' | 'crlThisUpdate' | 'crlNextUpdate'>): Promise<void>;
  getCa(id: string): Promise<CaRow | null>;
  caByRole(role: string): Promise<CaRow | null>;
  /** Allocates the next cRLNumber (in the caller's transaction). */
  nextCrlNumber(caId: string): Promise<number>;
  /** Stores a built CRL unless a higher-numbered one is already stored; true when stored. */
  storeCrl(caId: string, number: number, der: Uint8Array, thisUpdate: number, nextUpdate: number): Promise<boolean>;
  putMasterKey(row: MasterKeyRow): Promise<void>;
  listMasterKeys(): Promise<MasterKeyRow[]>;

  // manifests and cards
  addManifestBatch(row: ManifestBatchRow): Promise<void>;
  insertCard(card: NewCard): Promise<void>;
  /** Adds what manifest import verified to a card row that has none (imported before schema 11); false if it had some. */
  addCardAttestFacts(cardId: string, facts: CardAttestFacts): Promise<boolean>;
  cardByUid(uid: Uint8Array): Promise<CardRow | null>;
  cardById(id: string): Promise<CardRow | null>;
  listCards(filter: CardFilter, after: Uint8Array | null, limit: number): Promise<CardRow[]>;
  updateCard(id: string, patch: Partial<Pick<CardRow, 'lifecycle' | 'kvn' | 'labels' | 'profile' | 'seqCounter' | 'hostId' | 'lastSeenAt'>>, now: number): Promise<void>;
  countCardsByLifecycle(): Promise<Record<string, number>>;
  /**
   * Allocates the next value of a per-card counter: max(current + 1, atLeast), stored before it is
   * returned (a crash after allocation only skips a number). Throws when the card does not exist.
   */
  allocateCardCounter(cardId: string, counter: CardCounter, atLeast?: number): Promise<number>;

  // identities and certificates
  insertIdentity(row: IdentityRow): Promise<void>;
  identityBySpkiHash(spkiSha256: Uint8Array): Promise<IdentityRow | null>;
  identitiesOfCard(cardId: string): Promise<IdentityRow[]>;
  updateIdentity(id: string, patch: Partial<Pick<IdentityRow, 'state' | 'slot' | 'deleteAfter'>>, now: number): Promise<void>;
  /** Retired identities whose deletion is due (deleteAfter ≤ now), oldest first. */
  identitiesDueForDeletion(now: number, limit: number): Promise<IdentityRow[]>;
  insertCertificate(row: CertificateRow): Promise<void>;
  certificateBySerial(serial: Uint8Array): Promise<CertificateRow | null>;
  certificatesOfCard(cardId: string): Promise<CertificateRow[]>;
  certificatesOfJob(jobId: string): Promise<CertificateRow[]>;
  /** good → revoked; false when the certificate was not good. */
  revokeCertificate(serial: Uint8Array, reason: string, now: number): Promise<boolean>;
  /** good → superseded (replaced by a newer certificate, not revoked); false when it was not good. */
  supersedeCertificate(serial: Uint8Array, now: number): Promise<boolean>;
  /** Revoked certificates of a CA that have not expired at `now` (the CRL's entries). */
  revokedCertificates(caId: string, now: number): Promise<Pick<CertificateRow, 'serial' | 'revokedAt' | 'reason'>[]>;

  // enrolment nonces
  insertEnrolment(row: EnrolmentRow): Promise<void>;
  enrolmentByNonceHash(nonceHash: Uint8Array): Promise<EnrolmentRow | null>;
  /** open → succeeded/refused; false when it was no longer open (single use). */
  finishEnrolment(id: string, status: 'succeeded' | 'refused', errorCode: string | null, now: number): Promise<boolean>;

  // jobs
  insertJob(job: NewJob): Promise<JobRow>;
  jobById(id: string): Promise<JobRow | null>;
  jobByIdempotencyKey(key: string): Promise<JobRow | null>;
  listJobs(filter: JobFilter, afterSeq: number | null, limit: number): Promise<JobRow[]>;
  /**
   * Claims the oldest claimable job: queued (not_before ≤ now), or in_progress whose lease has
   * expired; never a job whose card has an earlier unfinished job or another live lease. Sets
   * status in_progress, the lease, attempt + 1. Null when none.
   */
  claimJob(opts: ClaimOptions): Promise<JobRow | null>;
  /** Extends the lease if still held by owner/attempt; false when the lease was lost. */
  renewLease(id: string, owner: string, attempt: number, leaseUntil: number, now: number): Promise<boolean>;
  saveProgress(id: string, owner: string, attempt: number, progress: JsonObject, now: number): Promise<boolean>;
  /** Final state, only if still held by owner/attempt (fencing); false otherwise. */
  finishJob(id: string, owner: string, attempt: number, finish: JobFinish): Promise<boolean>;
  /** Back to queued for a retry at `notBefore`, only if still held by owner/attempt. */
  requeueJob(id: string, owner: string, attempt: number, notBefore: number, errorCode: string, errorMessage: string, now: number): Promise<boolean>;
  /** Final state for a job nobody holds (expired lease, out of attempts or past its deadline). */
  expireJob(id: string, expectedAttempt: number, finish: JobFinish): Promise<boolean>;
  /** queued → canceled; false when not queued. */
  cancelJob(id: string, now: number): Promise<boolean>;
  /** Expired leases whose job has no attempt left, and unfinished jobs past their deadline. */
  jobsToExpire(now: number, limit: number): Promise<JobRow[]>;
  countJobsByStatus(): Promise<Record<string, number>>;

  // admin sessions (transcript hashes only)
  insertAdminSession(row: AdminSessionRow): Promise<void>;
  adminSessionsOfJob(jobId: string): Promise<AdminSessionRow[]>;

  // device hosts (agents)
  /** Creates the host or replaces its credential (and clears a revocation). */
  putHostCredential(row: Pick<HostRow, 'id' | 'name' | 'credentialHash' | 'createdAt'>): Promise<void>;
  hostById(id: string): Promise<HostRow | null>;
  listHosts(): Promise<HostRow[]>;
  /** Records a poll of the host's agent (and, with `node`, that it polls that operator node). */
  touchHost(id: string, lastIp: string | null, now: number, node?: string): Promise<void>;

  // card audit logs (verified entries and heads)
  /** Inserts entries (ignores ones already stored with the same sequence number). */
  insertAuditEntries(rows: readonly AuditEntryRow[]): Promise<void>;
  auditEntriesOf(cardId: string, afterSeq: number, limit: number): Promise<AuditEntryRow[]>;
  auditHeadOf(cardId: string): Promise<AuditHeadRow | null>;
  putAuditHead(row: AuditHeadRow): Promise<void>;

  // API tokens and idempotency
  insertApiToken(row: ApiTokenRow): Promise<void>;
  apiTokenById(id: string): Promise<ApiTokenRow | null>;
  listApiTokens(): Promise<ApiTokenRow[]>;
  touchApiToken(id: string, now: number): Promise<void>;
  revokeApiToken(id: string, now: number): Promise<boolean>;
  /** Reserves (principal, key) for a request; returns the existing row when already present. */
  reserveIdempotency(row: Omit<IdempotencyRow, 'status' | 'response'>): Promise<IdempotencyRow | null>;
  completeIdempotency(principal: string, key: string, status: number, response: Json): Promise<void>;
  releaseIdempotency(principal: string, key: string): Promise<void>;

  // events
  addEvent(e: Omit<EventRow, 'id'>): Promise<void>;
  listEvents(cardId: string | null, limit: number): Promise<EventRow[]>;

  // EST enrolment credentials and certificates not bound to a card (store/est-store.ts)
  insertEstCredential(row: EstCredentialRow): Promise<void>;
  estCredentialById(id: string): Promise<EstCredentialRow | null>;
  listEstCredentials(): Promise<EstCredentialRow[]>;
  /** Sets revoked_at; false when unknown or already revoked. */
  revokeEstCredential(id: string, now: number): Promise<boolean>;
  /** One use: uses_left − 1 where uses_left > 0, not revoked, not expired at `now` — one guarded UPDATE; false when none was left. */
  spendEstCredential(id: string, now: number): Promise<boolean>;
  insertEstCertificate(row: EstCertificateRow): Promise<void>;
  estCertificateBySerial(serial: Uint8Array): Promise<EstCertificateRow | null>;
  /** Newest first; keyset on (created_at, serial) of the last row seen. */
  listEstCertificates(after: { createdAt: number; serial: Uint8Array } | null, limit: number): Promise<EstCertificateRow[]>;
  /** good → revoked / superseded; false when it was not good. */
  setEstCertificateStatus(serial: Uint8Array, status: 'revoked' | 'superseded', reason: string, now: number): Promise<boolean>;
  /** Revoked EST certificates of a CA not expired at `now` (added to the CRL). */
  revokedEstCertificates(caId: string, now: number): Promise<Pick<CertificateRow, 'serial' | 'revokedAt' | 'reason'>[]>;

  // ---- audits (issue #16): findings, the audit run lease, the checks' fleet queries (store/findings.ts)
  /** Opens a finding, or updates the live one of (check, subject): never two open at once, also across nodes. */
  recordFinding(r: FindingReport, seenAt: number): Promise<FindingRecorded>;
  /** Auto-resolves the open findings of `check` not seen since `seenSince` (and ends suppressions not seen); returns how many were resolved. */
  resolveUnseenFindings(check: string, seenSince: number, now: number): Promise<number>;
  /** open → resolved by a person; false when it was not open. */
  resolveFinding(id: string, resolution: Exclude<FindingResolution, 'auto'>, by: string, now: number): Promise<boolean>;
  findingById(id: string): Promise<FindingRow | null>;
  /** Newest first (first_seen_at, id), keyset after `after`. */
  listFindings(filter: FindingFilter, after: { firstSeenAt: number; id: string } | null, limit: number): Promise<FindingRow[]>;
  countOpenFindingsByCheck(): Promise<Record<string, number>>;
  /** Enrolments counted by mode (admin / est) and status (open / succeeded / refused). */
  countEnrolments(): Promise<{ mode: string; status: string; count: number }[]>;
  /** Takes the named run lease when free (expired) and the last run ended ≤ now − minIntervalMs; false otherwise. */
  acquireAuditLease(name: string, owner: string, now: number, leaseMs: number, minIntervalMs: number): Promise<boolean>;
  releaseAuditLease(name: string, owner: string, finishedAt: number): Promise<void>;
  auditCertificatesExpiring(before: number, limit: number): Promise<AuditCertRow[]>;
  auditRevokedCertificatesServed(now: number, limit: number): Promise<AuditCertRow[]>;
  auditSharedKeys(limit: number): Promise<AuditSharedKeyRow[]>;
  auditCardsWithKvn(kvn: number, enrolledBefore: number, limit: number): Promise<AuditCardRow[]>;
  auditCardsNotSeen(before: number, limit: number): Promise<AuditCardRow[]>;
  /** Per card, its last read-audit job that ended succeeded or failed with one of `codes`, when it failed. */
  auditLogReadFailures(codes: readonly string[], limit: number): Promise<AuditJobRow[]>;
  auditLogSummaries(limit: number): Promise<AuditLogSummaryRow[]>;
  /** Per card, its last lock/unlock/terminate job when it is a lock that failed, timed out, or is unfinished and created before `stuckBefore`. */
  auditLocksNotDelivered(stuckBefore: number, limit: number): Promise<AuditJobRow[]>;
  /** Cards not terminated, counted by the manufacturer CA of their manifest batch (by its id). */
  auditCardsByManufacturer(): Promise<Record<string, number>>;

  // console (issue #16): the fleet table's page (state, label, UID prefix; keyset on UID)
  fleetPage(filter: import('./fleet-sql.js').FleetFilter, after: Uint8Array | null, limit: number): Promise<CardRow[]>;

  // ---- campaigns (issue #16; SQL in store/campaigns.ts)
  insertCampaign(row: CampaignRow): Promise<void>;
  /** Adds targets (ord = position); a card already targeted by this campaign is ignored. */
  insertCampaignTargets(campaignId: string, cardIds: readonly string[], firstOrd: number): Promise<void>;
  campaignById(id: string): Promise<CampaignRow | null>;
  /** Newest first; `after` is the last row's (createdAt, id). */
  listCampaigns(state: CampaignState | undefined, after: { createdAt: number; id: string } | null, limit: number): Promise<CampaignRow[]>;
  /** Ids of the campaigns in these states. */
  campaignIdsInState(states: readonly CampaignState[]): Promise<string[]>;
  /**
   * Takes the campaign's row lock for the rest of the transaction (a no-op guarded UPDATE: PostgreSQL
   * holds the row until commit, SQLite has one writer) and returns the row as it is now.
   */
  lockCampaign(id: string): Promise<CampaignRow | null>;
  updateCampaign(id: string, patch: Partial<Pick<CampaignRow, 'state' | 'abortReason' | 'abortStats' | 'nextReleaseAt' | 'finishedAt'>>, now: number): Promise<void>;
  campaignCounters(id: string): Promise<CampaignCounters>;
  /** The campaign's executed jobs counted over at most `limit` of them (CampaignOutcomes). */
  campaignOutcomes(id: string, limit: number): Promise<CampaignOutcomes>;
  /** Targets released at or after `since` (the rollout window). */
  campaignReleasesSince(id: string, since: number): Promise<number>;
  /** The next pending targets in order. */
  pendingCampaignTargets(id: string, limit: number): Promise<CampaignTargetRow[]>;
  /** pending → released (with its job) or skipped; false when the target was no longer pending. */
  settleCampaignTarget(id: string, cardId: string, s: { state: 'released' | 'skipped'; jobId?: string | null; at: number; note?: string | null }): Promise<boolean>;
  /** Every still pending target → skipped; returns how many. */
  skipPendingCampaignTargets(id: string, note: string): Promise<number>;
  /** The campaign's queued jobs → canceled; returns how many. */
  cancelQueuedCampaignJobs(id: string, now: number): Promise<number>;
  /** Targets in order, after `afterOrd` (for reports and tests). */
  campaignTargets(id: string, afterOrd: number, limit: number): Promise<CampaignTargetRow[]>;
  /** The campaign's jobs, newest first (keyset on seq like listJobs). */
  campaignJobs(id: string, afterSeq: number | null, limit: number): Promise<JobRow[]>;

  // scale (issue #17, store/expiring.ts): good certificates ending in [from, before), by (not_after, serial)
  listExpiringCertificates(from: number, before: number, after: ExpiringCursor | null, limit: number): Promise<ExpiringCertificate[]>;

  // enrolment throughput (issue #17, store/enrol-batch.ts)
  /** Issues N nonces in one statement: each enrolment row, or null where the UID is no card or a
   *  terminated one (nothing written for it). */
  openEnrolments(items: readonly NewEnrolment[]): Promise<(EnrolmentRow | null)[]>;
  /** The persist step of N checked enrolments, in the caller's transaction or its own: each one's
   *  outcome; throws EnrolmentBatchConflict (nothing written) when they must run one by one. */
  persistEnrolments(items: readonly EnrolmentPersist[]): Promise<EnrolmentPersistOutcome[]>;

  // expiring cards (issue #17, store/expiring-cards.ts): cards whose earliest good certificate ends
  // before filter.before, by (that not_after, card id), each card once; keyset after `after`
  listExpiringCards(filter: ExpiringCardsFilter, after: ExpiringCardsCursor | null, limit: number): Promise<ExpiringCard[]>;

  // enrolment reads in batches (issue #17, enrolments/s; store/enrol-reads.ts)
  /** cardByUid for many UIDs in one statement: each UID's card or null, in order. */
  cardsByUids(uids: readonly Uint8Array[]): Promise<(CardRow | null)[]>;
  /** enrolmentByNonceHash for many hashes in one statement: each one's enrolment or null, in order. */
  enrolmentsByNonceHashes(hashes: readonly Uint8Array[]): Promise<(EnrolmentRow | null)[]>;

  // enrolment reads, third round (issue #17, enrolments/s; store/enrol-reads.ts)
  /** Both reads of many completions at once (one statement on PostgreSQL): for each, in order, the
   *  card of its UID and the enrolment of its nonce hash, each null when there is none. */
  cardsAndEnrolments(keys: readonly { readonly uid: Uint8Array; readonly nonceHash: Uint8Array }[]): Promise<{ card: CardRow | null; enrolment: EnrolmentRow | null }[]>;
}

/** A card of the expiring listing and the not_after of its earliest good certificate. */
export interface ExpiringCard {
  readonly card: CardRow;
  readonly notAfter: number;
}

/** An enrolment credential for EST clients without a card (RFC 7030 §3.2.3, HTTP Basic). */
export interface EstCredentialRow {
  /** The Basic user name (`estc-` + 16 hex). */
  readonly id: string;
  readonly name: string;
  /** scrypt(password, salt) with the parameters in `kdf` (`scrypt:N:r:p`); never the password. */
  readonly secretHash: Uint8Array;
  readonly salt: Uint8Array;
  readonly kdf: string;
  readonly usesLeft: number;
  readonly expiresAt: number;
  /** What a certificate enrolled with it may name: { cn?: string[], dns?: string[], ip?: string[], days?: number } (est/profile.ts). */
  readonly profile: JsonObject;
  readonly createdBy: string;
  readonly createdAt: number;
  readonly lastUsedAt: number | null;
  readonly revokedAt: number | null;
}

/** A certificate the issuing CA gave an EST client that is not a card. */
export interface EstCertificateRow {
  readonly serial: Uint8Array;
  readonly caId: string;
  /** The credential it was first enrolled with (renewals keep it). */
  readonly credentialId: string | null;
  /** The certificate it renewed (/simplereenroll), if any. */
  readonly replaces: Uint8Array | null;
  readonly subject: string;
  readonly san: JsonObject;
  readonly spkiSha256: Uint8Array;
  readonly alg: string;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly der: Uint8Array;
  readonly status: CertificateStatus;
  readonly revokedAt: number | null;
  readonly reason: string | null;
  readonly createdAt: number;
}

// ---- audits (issue #16): findings and the fleet queries of the audit checks (store/findings.ts)

export type FindingSeverity = 'low' | 'medium' | 'high' | 'critical';
export type FindingStatus = 'open' | 'resolved';
export type FindingResolution = 'fixed' | 'accepted' | 'false-positive' | 'auto';

/** What an audit check reports: one condition about one subject (a serial, a key hash, a CA, a card). */
export interface FindingReport {
  readonly check: string;
  readonly subject: string;
  readonly cardId: string | null;
  readonly severity: FindingSeverity;
  readonly detail: JsonObject;
}

export interface FindingRow extends FindingReport {
  readonly id: string;
  /** The card's UID (joined), null when the finding is about no card. */
  readonly cardUid: Uint8Array | null;
  readonly status: FindingStatus;
  readonly firstSeenAt: number;
  readonly lastSeenAt: number;
  readonly resolvedAt: number | null;
  readonly resolution: FindingResolution | null;
  readonly resolvedBy: string | null;
  /** Resolved as accepted / false-positive while the condition lasts: not reported again until a run no longer sees it. */
  readonly suppressing: boolean;
}

export interface FindingFilter {
  readonly check?: string;
  readonly status?: FindingStatus;
  readonly cardId?: string;
}

/** new: a finding was opened; seen: the open one was updated; suppressed: an accepted one was seen again. */
export type FindingRecorded = 'new' | 'seen' | 'suppressed';

/** Rows the audit checks read (each query bounded by a limit). */
export interface AuditCertRow {
  readonly serial: Uint8Array;
  readonly cardId: string;
  readonly uid: Uint8Array;
  readonly identityId: string;
  readonly slot: number;
  readonly notAfter: number;
  readonly revokedAt: number | null;
  readonly reason: string | null;
  readonly lifecycle: CardLifecycle;
}
export interface AuditSharedKeyRow {
  readonly spkiSha256: Uint8Array;
  readonly holders: readonly { readonly cardId: string; readonly uid: Uint8Array; readonly as: 'identity' | 'attestation' }[];
}
export interface AuditCardRow {
  readonly cardId: string;
  readonly uid: Uint8Array;
  readonly lifecycle: CardLifecycle;
  readonly kvn: number;
  readonly lastSeenAt: number | null;
  readonly hostId: string | null;
  readonly createdAt: number;
  /** When the card got its first certificate (null: none). */
  readonly enrolledAt: number | null;
}
export interface AuditJobRow {
  readonly cardId: string;
  readonly uid: Uint8Array;
  readonly lifecycle: CardLifecycle;
  readonly jobId: string;
  readonly kind: string;
  readonly status: JobStatus;
  readonly errorCode: string | null;
  readonly errorMessage: string | null;
  readonly createdAt: number;
  readonly finishedAt: number | null;
}
export interface AuditLogSummaryRow {
  readonly cardId: string;
  readonly uid: Uint8Array;
  readonly headSeq: number;
  readonly headHash: Uint8Array;
  readonly verified: boolean;
  readonly headReceivedAt: number;
  /** Stored entries: lowest and highest sequence number and how many (0 when none). */
  readonly minSeq: number | null;
  readonly maxSeq: number | null;
  readonly count: number;
}
