/**
 * operator/pki/enrolment: Mode A enrolment as the operator decides it, independent of transport —
 * issue a single-use nonce for a card, then, given what the card returned (attestation evidence and
 * a CSR), check everything and issue a certificate persisted in the same transaction, or refuse
 * with one code and issue nothing. imports pki/*, store/types, store/micro-batch, store/enrol-batch
 * (types), errors, bytes/.
 *
 * Checks, in order (each its own code):
 *   UID in a manifest (ERR_OP_UNKNOWN_UID), not terminated (ERR_OP_CARD_TERMINATED);
 *   attestation chain to a trusted manufacturer CA (ERR_OP_ATTESTATION_CHAIN), statement signed by
 *   the attestation key (ERR_OP_ATTESTATION_SIGNATURE), statement well formed (…_FORMAT);
 *   attestation certificate = the manifest's for this UID (…_CERT_MISMATCH), statement UID = card
 *   (…_UID); nonce issued for this card (ERR_OP_NONCE_UNKNOWN), still open (ERR_OP_NONCE_REPLAY),
 *   not expired (ERR_OP_NONCE_EXPIRED); CSR parses (ERR_OP_CSR_INVALID), key policy
 *   (ERR_OP_KEY_POLICY), self-signature (ERR_OP_CSR_SIGNATURE); CSR key = attested key
 *   (ERR_OP_CSR_KEY_MISMATCH); key not bound to another card (ERR_OP_KEY_BOUND_ELSEWHERE).
 * A refusal after the nonce was found consumes it (status refused), so the same evidence never
 * gets a second try. The certificate is signed before the transaction (WebCrypto is async), then
 * the transaction re-checks the nonce and the key binding and inserts identity + certificate; if
 * it fails, the signed certificate is dropped unseen: nothing is issued. Concurrent enrolments share
 * that transaction, and concurrent nonce issues one statement (store/micro-batch.ts over
 * store/enrol-batch.ts: a few statements and one COMMIT for many; each gets its own answer; a batch
 * that cannot be decided as one is replayed one by one), and so do the reads of the cards and of the
 * nonces' enrolments (store/enrol-reads.ts cardsAndEnrolments: one statement for both on PostgreSQL).
 * Those two are read together, started before the attestation is verified with the nonce its
 * statement claims (AttestationVerifier.claimedNonce, unverified: the rows are used only once the
 * attestation verified and only if its verified nonce is the one read; else read again). The card
 * row read so carries what manifest import verified about its attestation certificate (attestFacts):
 * the attestation is checked from it (AttestationVerifier.verifyKnown: no certificate parse, no path
 * check, ~10 % of a first enrolment's CPU) when the evidence carries exactly that certificate. When the attestation fails,
 * an unknown or terminated card is still refused with its own code first. The key's binding to another card is read
 * in the persist transaction only (not also before signing: a refused key costs a signature).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { ctEqual, equalBytes, toHex } from '../../bytes/index.js';
import { OpError, OpErrorCode } from '../errors.js';
import type { EnrolmentPersist, EnrolmentPersistOutcome, NewEnrolment } from '../store/enrol-batch.js';
import { MicroBatch, type BatchAnswer } from '../store/micro-batch.js';
import type { CardRow, CertificateRow, EnrolmentRow, IdentityRow, OperatorStore } from '../store/types.js';
import type { AttestationEvidence, AttestationVerifier, KnownAttestation, VerifiedAttestation } from './attestation.js';
import type { CheckedCsr } from './csr.js';
import { checkCsrDer } from './csr-check.js';
import type { LeafRequest, OperatorCa } from './issuing-ca.js';
import { DAY_MS, randomSerial, sha256 } from './x509.js';

export const DEFAULT_NONCE_TTL_MS = 10 * 60 * 1000;

export interface IssuedNonce {
  readonly enrolmentId: string;
  /** 32 random bytes for AttestKey / CreateCSR; only its SHA-256 is stored. */
  readonly nonce: Uint8Array;
  readonly expiresAt: number;
}

/** Facts the pure check needs, read from the store by the caller. */
export interface EnrolmentFacts {
  readonly uid: Uint8Array;
  readonly card: CardRow | null;
  readonly attestation: VerifiedAttestation;
  readonly csr: CheckedCsr;
  /** The enrolment whose nonce hash equals SHA-256(attested nonce), if any. */
  readonly enrolment: EnrolmentRow | null;
  /** When the executor knows which enrolment it started, it must be that one. */
  readonly expectedEnrolmentId?: string;
  /** An identity already holding the CSR's key (unique SPKI hash), if any. */
  readonly boundIdentity: IdentityRow | null;
  readonly now: number;
}

/**
 * The binding checks (everything after the attestation's own chain/signature/format and the CSR's
 * own parse/policy/signature). Pure: throws the refusal's OpError, or returns.
 */
export function checkEnrolmentBinding(f: EnrolmentFacts): void {
  const card = f.card;
  if (!card) throw new OpError(OpErrorCode.unknownUid, `card ${toHex(f.uid)} is in no imported manifest`);
  if (card.lifecycle === 'terminated') throw new OpError(OpErrorCode.cardTerminated, `card ${toHex(card.uid)} is terminated`);
  if (!equalBytes(f.attestation.attestCertDer, card.attestCertDer)) {
    throw new OpError(OpErrorCode.attestationCertMismatch, `the attestation certificate is not the one the manifest gives for card ${toHex(card.uid)}`);
  }
  if (!equalBytes(f.attestation.claims.uid, card.uid)) {
    throw new OpError(OpErrorCode.attestationUid, `the statement names card ${toHex(f.attestation.claims.uid)}, not ${toHex(card.uid)}`);
  }
  const e = f.enrolment;
  if (!e || e.cardId !== card.id) throw new OpError(OpErrorCode.nonceUnknown, 'the attested nonce was never issued for this card');
  // A nonce of this card that was used already is a replay, whichever enrolment asks.
  if (e.status !== 'open') throw new OpError(OpErrorCode.nonceReplay, `the attested nonce was already used (enrolment ${e.id}, ${e.status})`);
  if (f.expectedEnrolmentId !== undefined && e.id !== f.expectedEnrolmentId) {
    throw new OpError(OpErrorCode.nonceUnknown, 'the attested nonce was not issued for this enrolment');
  }
  if (f.now > e.expiresAt) throw new OpError(OpErrorCode.nonceExpired, `the nonce expired at ${new Date(e.expiresAt).toISOString()}`);
  if (!ctEqual(f.csr.spkiSha256, f.attestation.claims.spkiSha256)) {
    throw new OpError(OpErrorCode.csrKeyMismatch, 'the CSR key is not the attested key');
  }
  if (f.boundIdentity && f.boundIdentity.cardId !== card.id) {
    throw new OpError(OpErrorCode.keyBoundElsewhere, 'this key is already bound to another card');
  }
}

export interface EnrolmentRequest {
  readonly uid: Uint8Array;
  readonly evidence: AttestationEvidence;
  readonly csrDer: Uint8Array;
  readonly jobId?: string | null;
  readonly expectedEnrolmentId?: string;
  /** Validity in days (default: the service's). */
  readonly days?: number;
  /** SAN of the certificate (default: the card's profile, else the service's defaults). */
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly actor?: string;
}

/** A zero-touch (EST, Mode B) request: the operator's stateless challenge, already MAC- and expiry-checked. */
export interface EstEnrolmentRequest {
  /** The challenge's nonce (what the card must have attested over). */
  readonly challengeNonce: Uint8Array;
  readonly challengeExpiresAt: number;
  readonly evidence: AttestationEvidence;
  readonly csrDer: Uint8Array;
  readonly actor?: string;
}

export interface EnrolmentResult {
  readonly certificate: CertificateRow;
  readonly identity: IdentityRow;
  /** The issued certificate then the issuing CA (what InstallCertificateChain carries). */
  readonly chainDer: readonly Uint8Array[];
}

export interface EnrolmentServiceOptions {
  readonly store: OperatorStore;
  readonly ca: OperatorCa;
  readonly caId: string;
  readonly verifier: AttestationVerifier;
  /** The trusted manufacturer CAs (DER), per call (Operator: pki/trust-cache.ts, re-read at most once per second, at once after a change through it). */
  readonly trustedManufacturerCas: () => Promise<readonly Uint8Array[]>;
  /** The cRLDistributionPoints URL (read per issuance: known once the server listens). */
  readonly crlUrl: () => string;
  readonly defaultDays: number;
  readonly defaultDnsNames: readonly string[];
  readonly defaultIpAddresses: readonly string[];
  readonly nonceTtlMs?: number;
  readonly now?: () => number;
  /** Called for each refusal (metrics). */
  readonly onRefusal?: (code: string) => void;
  /** Called for each attestation verified: its chain from what manifest import verified, or checked in full (metrics). */
  readonly onAttestationVerified?: (chain: 'manifest' | 'full') => void;
  /** Where CSR checks and issuance run (default: this thread, pki/csr-check + the CA's DER template; or an IssuerPool). */
  readonly pki?: EnrolmentPki;
}

/** The CPU-heavy steps of an enrolment: in this thread, or in a worker pool (pki/issuer-pool.ts). */
export interface EnrolmentPki {
  /** checkCsrDer's result or refusal (an OpError). */
  checkCsr(csrDer: Uint8Array): Promise<CheckedCsr>;
  /** The CA's leaf certificate (DER) for `req`. */
  issue(req: LeafRequest): Promise<Uint8Array>;
}

/**
 * Requests per shared batch of the enrolment path (nonce issue, reads, persist), by store.
 * PostgreSQL: 12. Its round trips and its work run outside the operator's thread; with batches of up
 * to 64, 32 enrolments in flight moved as one convoy (all issuing nonces, then all reading, then all
 * persisting, each stage waiting for the whole wave) and the event loop was only 0.74 busy. Batches of
 * 12 overlap the stages (0.85–0.9 busy): one node 754–899/s → 808–1 011/s (bench/scale.ts, 3
 * alternating runs each); two nodes, CPU-bound already, unchanged. SQLite works in the operator's
 * thread, where each batch's COMMIT costs CPU: the fewest batches win (64: 1 126–1 172/s, 12:
 * 966–1 096/s).
 */
export function enrolmentBatchMax(dialect: string): number {
  return dialect === 'postgres' ? 12 : 64;
}

export class EnrolmentService {
  private readonly now: () => number;
  private readonly pki: EnrolmentPki;
  /** Nonces issued concurrently: one statement for all (store/micro-batch.ts, store/enrol-batch.ts). */
  private readonly nonces: MicroBatch<NewEnrolment, EnrolmentRow | null>;
  /** Concurrent enrolments persist in one transaction of a few statements (the same). */
  private readonly persists: MicroBatch<EnrolmentPersist, EnrolmentPersistOutcome>;
  /** The card and the nonce's enrolment of concurrent enrolments, read together (store/enrol-reads.ts). */
  private readonly reads: MicroBatch<{ readonly uid: Uint8Array; readonly nonceHash: Uint8Array }, { card: CardRow | null; enrolment: EnrolmentRow | null }>;
  constructor(private readonly o: EnrolmentServiceOptions) {
    this.now = o.now ?? Date.now;
    const store = o.store;
    const answered = <T>(vs: readonly T[]): BatchAnswer<T>[] => vs.map((value) => ({ ok: true, value }));
    const maxBatch = enrolmentBatchMax(store.dialect);
    this.nonces = new MicroBatch(
      async (items) => answered(await store.openEnrolments(items)),
      async (item) => (await store.openEnrolments([item]))[0] ?? null,
      maxBatch,
    );
    this.persists = new MicroBatch(
      async (items) => answered(await store.persistEnrolments(items)),
      async (item) => (await store.persistEnrolments([item]))[0]!,
      maxBatch,
    );
    this.reads = new MicroBatch(
      async (keys) => answered(await store.cardsAndEnrolments(keys)),
      async (key) => (await store.cardsAndEnrolments([key]))[0]!,
      maxBatch,
    );
    this.pki = o.pki ?? { checkCsr: async (der) => checkCsrDer(der), issue: (req) => o.ca.issueFast(req) };
  }

  /** How many nonce issues and persist steps went in shared batches (metrics, tests). */
  batchStats(): { nonceBatches: number; nonceReplays: number; persistBatches: number; persistReplays: number; readBatches: number } {
    return {
      nonceBatches: this.nonces.batches,
      nonceReplays: this.nonces.replays,
      persistBatches: this.persists.batches,
      persistReplays: this.persists.replays,
      readBatches: this.reads.batches,
    };
  }

  /** A fresh single-use nonce for `uid` (stored as its hash); ERR_OP_UNKNOWN_UID / _CARD_TERMINATED. */
  async issueNonce(uid: Uint8Array, jobId: string | null = null, mode = 'admin'): Promise<IssuedNonce> {
    const nonce = new Uint8Array(randomBytes(32));
    const now = this.now();
    const item: NewEnrolment = {
      uid,
      row: {
        id: randomUUID(),
        jobId,
        mode,
        nonceHash: sha256(nonce),
        status: 'open',
        errorCode: null,
        expiresAt: now + (this.o.nonceTtlMs ?? DEFAULT_NONCE_TTL_MS),
        startedAt: now,
        finishedAt: null,
      },
    };
    // Written only for a card that is not terminated (one statement for all nonces issued meanwhile).
    let row = await this.nonces.run(item);
    if (!row) {
      const card = await this.o.store.cardByUid(uid);
      if (!card) throw new OpError(OpErrorCode.unknownUid, `card ${toHex(uid)} is in no imported manifest`);
      if (card.lifecycle === 'terminated') throw new OpError(OpErrorCode.cardTerminated, `card ${toHex(uid)} is terminated`);
      // imported (or un-terminated) between the two statements: once more, alone
      row = (await this.o.store.openEnrolments([item]))[0] ?? null;
      if (!row) throw new OpError(OpErrorCode.unknownUid, `card ${toHex(uid)} is in no imported manifest`);
    }
    return { enrolmentId: row.id, nonce, expiresAt: row.expiresAt };
  }

  /**
   * Zero-touch enrolment (EST /simpleenroll): the evidence is verified first (a forged one is
   * refused before anything is written, and does not use up the challenge); then the challenge
   * becomes an enrolment row of the attested card keyed by SHA-256(challenge nonce) — UNIQUE in the
   * store, so a second use of a challenge is ERR_OP_NONCE_REPLAY — and `complete` runs every Mode A
   * check against that row (the attested nonce must be the challenge's: else ERR_OP_NONCE_UNKNOWN).
   */
  async completeEst(req: EstEnrolmentRequest): Promise<EnrolmentResult> {
    const store = this.o.store;
    const now = this.now();
    let uid: Uint8Array;
    try {
      uid = this.o.verifier.verify(req.evidence, await this.o.trustedManufacturerCas(), now).claims.uid;
      const card = await store.cardByUid(uid);
      if (!card) throw new OpError(OpErrorCode.unknownUid, `card ${toHex(uid)} is in no imported manifest`);
      if (card.lifecycle === 'terminated') throw new OpError(OpErrorCode.cardTerminated, `card ${toHex(uid)} is terminated`);
      const nonceHash = sha256(req.challengeNonce);
      const row: EnrolmentRow = {
        id: randomUUID(),
        cardId: card.id,
        jobId: null,
        mode: 'est',
        nonceHash,
        status: 'open',
        errorCode: null,
        expiresAt: req.challengeExpiresAt,
        startedAt: now,
        finishedAt: null,
      };
      try {
        await store.insertEnrolment(row);
      } catch (e) {
        const used = await store.enrolmentByNonceHash(nonceHash);
        if (used) throw new OpError(OpErrorCode.nonceReplay, `the challenge was already used (enrolment ${used.id}, ${used.status})`);
        throw e;
      }
      return await this.complete({ uid, evidence: req.evidence, csrDer: req.csrDer, expectedEnrolmentId: row.id, actor: req.actor ?? 'est' });
    } catch (e) {
      if (e instanceof OpError && !this.refusalCounted.has(e)) this.o.onRefusal?.(e.code);
      throw e;
    }
  }

  /** Refusals `complete` already counted (completeEst must not count them twice). */
  private readonly refusalCounted = new WeakSet<object>();

  /** Verifies and issues, or throws the refusal (nothing issued). */
  async complete(req: EnrolmentRequest): Promise<EnrolmentResult> {
    const store = this.o.store;
    const now = this.now();
    let enrolment: EnrolmentRow | null = null;
    try {
      // The card and the enrolment of the nonce the statement claims (unverified), read with the other
      // enrolments' (one statement) while the attestation is verified (the trusted CAs are cached).
      const claimed = this.o.verifier.claimedNonce?.(req.evidence) ?? null;
      const claimedHash = claimed ? sha256(claimed) : null;
      const early = claimedHash ? this.reads.run({ uid: req.uid, nonceHash: claimedHash }) : null;
      early?.catch(() => undefined); // awaited below, or dropped when the attestation fails
      let attestation: VerifiedAttestation;
      try {
        const trusted = await this.o.trustedManufacturerCas();
        // The card row read ahead carries what manifest import verified about its attestation
        // certificate: evidence with exactly that certificate is checked from it (no parse, no path).
        const known = early && this.o.verifier.verifyKnown ? knownAttestation((await early).card) : null;
        attestation = known ? this.o.verifier.verifyKnown!(req.evidence, known, trusted, now) : this.o.verifier.verify(req.evidence, trusted, now);
        this.o.onAttestationVerified?.(attestation.fromManifest ? 'manifest' : 'full');
      } catch (e) {
        // An unknown or terminated card is refused with its own code before any attestation refusal.
        refuseCard(req.uid, early ? (await early).card : await store.cardByUid(req.uid));
        throw e;
      }
      // Only the verified nonce counts: read again if it is not the one read ahead.
      const nonceHash = sha256(attestation.claims.nonce);
      const read = early && equalBytes(claimedHash!, nonceHash) ? early : this.reads.run({ uid: req.uid, nonceHash });
      // Both settle before any refusal is thrown, so a CSR refusal still consumes the nonce found (as
      // when they ran one after the other).
      const [found, checked] = await Promise.allSettled([read, this.pki.checkCsr(req.csrDer)]);
      if (found.status === 'rejected') throw found.reason;
      const card = refuseCard(req.uid, found.value.card);
      enrolment = found.value.enrolment;
      if (enrolment && enrolment.cardId !== card.id) enrolment = null; // never consume another card's nonce
      if (checked.status === 'rejected') throw checked.reason;
      const csr = checked.value;
      // A key bound to another card is refused by the persist step (it reads the key's identity in
      // its transaction, as it always did): reading it here too was one more round trip each.
      checkEnrolmentBinding({ uid: req.uid, card, attestation, csr, enrolment, expectedEnrolmentId: req.expectedEnrolmentId, boundIdentity: null, now });
      const open = enrolment!;

      // Sign first (async), then persist under re-checks; a failed transaction drops the certificate.
      const serial = randomSerial();
      const named = (req.dnsNames?.length ?? 0) + (req.ipAddresses?.length ?? 0) > 0;
      const dnsNames = named ? (req.dnsNames ?? []) : (stringList(card.profile['dnsNames']) ?? this.o.defaultDnsNames);
      const ipAddresses = named ? (req.ipAddresses ?? []) : (stringList(card.profile['ipAddresses']) ?? this.o.defaultIpAddresses);
      const days = req.days ?? this.o.defaultDays;
      const notBefore = now - 5 * 60 * 1000;
      const notAfter = now + days * DAY_MS;
      const subject = `CN=${toHex(card.uid)}`;
      const der = await this.pki.issue({
        spkiDer: csr.spkiDer,
        serial,
        subject,
        dnsNames,
        ipAddresses,
        notBefore: new Date(notBefore),
        notAfter: new Date(notAfter),
        crlUrl: this.o.crlUrl(),
      });
      const identity: IdentityRow = {
        id: randomUUID(),
        cardId: card.id,
        slot: attestation.claims.slot,
        alg: csr.alg,
        spkiDer: csr.spkiDer,
        spkiSha256: csr.spkiSha256,
        state: 'generated',
        attestedAt: now,
        createdAt: now,
      };
      const outcome = await this.persists.run({
        enrolmentId: open.id,
        cardId: card.id,
        cardWasManifest: card.lifecycle === 'manifest',
        now,
        identity,
        certificate: {
          serial,
          cardId: card.id,
          caId: this.o.caId,
          jobId: req.jobId ?? null,
          enrolmentId: open.id,
          subject,
          san: { dnsNames: [...dnsNames], ipAddresses: [...ipAddresses] },
          notBefore,
          notAfter,
          der,
          status: 'good',
          revokedAt: null,
          reason: null,
          createdAt: now,
        },
        event: {
          at: now,
          actor: req.actor ?? 'operator',
          kind: 'certificate.issued',
          cardId: card.id,
          subject: toHex(serial),
          details: { enrolment: open.id, job: req.jobId ?? null, slot: attestation.claims.slot, counter: attestation.claims.counter },
        },
      });
      if (!outcome.ok) {
        if (outcome.refusal === 'key_bound_elsewhere') throw new OpError(OpErrorCode.keyBoundElsewhere, 'this key is already bound to another card');
        throw new OpError(OpErrorCode.nonceReplay, `the attested nonce was already used (enrolment ${open.id})`);
      }
      return { certificate: outcome.certificate, identity: outcome.identity, chainDer: [der, this.o.ca.certDer] };
    } catch (e) {
      const code = e instanceof OpError ? e.code : OpErrorCode.internal;
      this.o.onRefusal?.(code);
      if (typeof e === 'object' && e !== null) this.refusalCounted.add(e);
      // A refusal consumes a nonce that was found for this card (single use); log the refusal.
      if (enrolment && enrolment.status === 'open') {
        await store.tx(async (t) => {
          await t.finishEnrolment(enrolment!.id, 'refused', code, now);
          await t.addEvent({ at: now, actor: req.actor ?? 'operator', kind: 'enrolment.refused', cardId: enrolment!.cardId, subject: enrolment!.id, details: { code } });
        });
      }
      throw e;
    }
  }
}

/** The facts manifest import verified about the card's attestation certificate, if its row has them. */
function knownAttestation(card: CardRow | null): KnownAttestation | null {
  const f = card?.attestFacts;
  return card && f ? { certDer: card.attestCertDer, ...f } : null;
}

/** The card, or its refusal: not in any manifest (ERR_OP_UNKNOWN_UID), terminated (ERR_OP_CARD_TERMINATED). */
function refuseCard(uid: Uint8Array, card: CardRow | null): CardRow {
  if (!card) throw new OpError(OpErrorCode.unknownUid, `card ${toHex(uid)} is in no imported manifest`);
  if (card.lifecycle === 'terminated') throw new OpError(OpErrorCode.cardTerminated, `card ${toHex(card.uid)} is terminated`);
  return card;
}

function stringList(v: unknown): string[] | null {
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string') ? (v as string[]) : null;
}
