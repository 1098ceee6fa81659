/**
 * operator/store/sql-store: `OperatorStore` written once over a `SqlDriver` — the one place that
 * holds the operator's SQL. The statements are portable (SQLite 3.24+ and PostgreSQL: `?`
 * placeholders, `ON CONFLICT … DO NOTHING / DO UPDATE … excluded`, keyset pagination, no RETURNING,
 * no SQLite functions); on PostgreSQL several nodes write at once, so a read-then-write is one
 * statement (upsert, guarded UPDATE) or holds the row / an advisory lock;
 * what differs per dialect (JSON field access) comes from `DialectSql`. imports store/types,
 * store/driver, store/schema, store/label-filter, store/rows, errors.
 *
 * Job claims run inside one transaction (a read, then a guarded UPDATE that re-checks the row), so
 * two claimers never get the same job; a PostgreSQL driver adds `FOR UPDATE SKIP LOCKED` to the
 * read through `DialectSql.lockSkip` to let several nodes claim concurrently.
 */
import { listExpiringCertificates, type ExpiringCertificate, type ExpiringCursor } from './expiring.js';
import * as enrolBatch from './enrol-batch.js';
import * as enrolBatchPg from './enrol-batch-pg.js';
import * as enrolReads from './enrol-reads.js';
import type { EnrolmentPersist, EnrolmentPersistOutcome, NewEnrolment } from './enrol-batch.js';
import { listExpiringCards, type ExpiringCardsCursor, type ExpiringCardsFilter } from './expiring-cards.js';
import type { SqlConn, SqlDriver, SqlRow, SqlValue } from './driver.js';
import { randomUUID } from 'node:crypto';
import { migrate } from './schema.js';
import { labelTerm } from './label-filter.js';
import { b, bn, identityRow, j, jn, n, nn, s, sn } from './rows.js';
import * as est from './est-store.js';
import type { EstCertificateRow, EstCredentialRow } from './types.js';
import { FindingsSql } from './findings.js';
import { fleetPage, type FleetFilter } from './fleet-sql.js';
import type {
  CardAttestFacts,
  AdminSessionRow,
  ApiTokenRow,
  AuditCardRow,
  AuditCertRow,
  AuditJobRow,
  AuditLogSummaryRow,
  AuditSharedKeyRow,
  FindingFilter,
  FindingRecorded,
  FindingReport,
  FindingResolution,
  FindingRow,
  AuditEntryRow,
  AuditHeadRow,
  CardCounter,
  HostRow,
  CaRow,
  CardFilter,
  CardRow,
  ExpiringCard,
  CertificateRow,
  ClaimOptions,
  EnrolmentRow,
  EventRow,
  IdempotencyRow,
  IdentityRow,
  JobFilter,
  JobFinish,
  JobRow,
  Json,
  JsonObject,
  ManifestBatchRow,
  ManufacturerCaRow,
  MasterKeyRow,
  NewCard,
  NewJob,
  OperatorStore,
  CampaignCounters,
  CampaignOutcomes,
  CampaignRow,
  CampaignState,
  CampaignTargetRow,
} from './types.js';
import * as campaignSql from './campaigns.js';

/** The dialect-specific SQL fragments. */
export interface DialectSql {
  /** A JSON text field of `column` whose key is bound as the following `?` (value given by `jsonKeyParam`). */
  jsonText(column: string): string;
  jsonKeyParam(key: string): string;
  /** Appended to the claim SELECT (PostgreSQL: ' FOR UPDATE OF j SKIP LOCKED'). */
  readonly lockSkip: string;
  /** Run in the transaction of insertJob before the sequence number is taken (PostgreSQL: an
   *  advisory transaction lock, so that two nodes never compute the same MAX(seq) + 1). */
  readonly jobSeqLock: string | null;
  /** Run in the transaction of a job change that may make a job claimable (PostgreSQL: NOTIFY,
   *  delivered at commit to every node's LISTEN session). */
  readonly notifyJobs: string | null;
}

/** The channel job changes are announced on (PostgreSQL). */
export const JOBS_CHANNEL = 'setls_jobs';

export const SQLITE_SQL: DialectSql = {
  jsonText: (col) => `json_extract(${col}, ?)`,
  jsonKeyParam: (key) => `$."${key.replace(/["\\]/g, '')}"`,
  lockSkip: '',
  jobSeqLock: null,
  notifyJobs: null,
};

export const PG_SQL: DialectSql = {
  jsonText: (col) => `(${col} ->> CAST(? AS text))`,
  jsonKeyParam: (key) => key,
  lockSkip: ' FOR UPDATE OF j SKIP LOCKED',
  // an arbitrary constant naming "the job sequence" among this database's advisory locks
  jobSeqLock: 'SELECT pg_advisory_xact_lock(1583963473)',
  notifyJobs: `SELECT pg_notify('${JOBS_CHANNEL}', '')`,
};

const json = (v: Json | undefined | null): string | null => (v === undefined || v === null ? null : JSON.stringify(v));

function cardRow(r: SqlRow): CardRow {
  return {
    id: s(r, 'id'),
    uid: b(r, 'uid'),
    batchId: sn(r, 'batch_id'),
    attestCertDer: b(r, 'attest_cert_der'),
    attestSpkiSha256: b(r, 'attest_spki_sha256'),
    lifecycle: s(r, 'lifecycle') as CardRow['lifecycle'],
    kvn: n(r, 'kvn'),
    transportKeyId: sn(r, 'transport_key_id'),
    seqCounter: nn(r, 'seq_counter'),
    labels: j(r, 'labels'),
    profile: j(r, 'profile'),
    hostId: sn(r, 'host_id'),
    lastSeenAt: nn(r, 'last_seen_at'),
    denyListNumber: n(r, 'deny_list_number'),
    timeAnchorCounter: n(r, 'time_anchor_counter'),
    createdAt: n(r, 'created_at'),
    updatedAt: n(r, 'updated_at'),
    attestFacts: attestFacts(r),
  };
}

function attestFacts(r: SqlRow): CardAttestFacts | null {
  const keySpki = bn(r, 'attest_key_spki');
  const anchorSha256 = bn(r, 'attest_anchor_sha256');
  const validFrom = nn(r, 'attest_valid_from');
  const validTo = nn(r, 'attest_valid_to');
  return keySpki && anchorSha256 && validFrom !== null && validTo !== null ? { keySpki, anchorSha256, validFrom, validTo } : null;
}

function caRow(r: SqlRow): CaRow {
  return {
    id: s(r, 'id'),
    role: s(r, 'role'),
    certDer: b(r, 'cert_der'),
    keyRef: s(r, 'key_ref'),
    notAfter: n(r, 'not_after'),
    crlNumber: n(r, 'crl_number'),
    crlDer: bn(r, 'crl_der'),
    crlBuiltNumber: n(r, 'crl_built_number'),
    crlThisUpdate: nn(r, 'crl_this_update'),
    crlNextUpdate: nn(r, 'crl_next_update'),
    createdAt: n(r, 'created_at'),
  };
}

function hostRow(r: SqlRow): HostRow {
  return {
    id: s(r, 'id'),
    name: s(r, 'name'),
    credentialHash: bn(r, 'credential_hash'),
    lastIp: sn(r, 'last_ip'),
    lastSeenAt: nn(r, 'last_seen_at'),
    createdAt: n(r, 'created_at'),
    revokedAt: nn(r, 'revoked_at'),
    nodeId: sn(r, 'node_id'),
    nodeSeenAt: nn(r, 'node_seen_at'),
  };
}

function auditEntryRow(r: SqlRow): AuditEntryRow {
  return { cardId: s(r, 'card_id'), seq: n(r, 'seq'), type: s(r, 'type'), body: b(r, 'body'), prevHash: b(r, 'prev_hash'), receivedAt: n(r, 'received_at') };
}

const COUNTER_COLUMN: Readonly<Record<CardCounter, string>> = { denyListNumber: 'deny_list_number', timeAnchorCounter: 'time_anchor_counter' };

function certificateRow(r: SqlRow): CertificateRow {
  return {
    serial: b(r, 'serial'),
    identityId: s(r, 'identity_id'),
    cardId: s(r, 'card_id'),
    caId: s(r, 'ca_id'),
    jobId: sn(r, 'job_id'),
    enrolmentId: sn(r, 'enrolment_id'),
    subject: s(r, 'subject'),
    san: j(r, 'san'),
    notBefore: n(r, 'not_before'),
    notAfter: n(r, 'not_after'),
    der: b(r, 'der'),
    status: s(r, 'status') as CertificateRow['status'],
    revokedAt: nn(r, 'revoked_at'),
    reason: sn(r, 'reason'),
    createdAt: n(r, 'created_at'),
  };
}

function enrolmentRow(r: SqlRow): EnrolmentRow {
  return {
    id: s(r, 'id'),
    cardId: s(r, 'card_id'),
    jobId: sn(r, 'job_id'),
    mode: s(r, 'mode'),
    nonceHash: b(r, 'nonce_hash'),
    status: s(r, 'status'),
    errorCode: sn(r, 'error_code'),
    expiresAt: n(r, 'expires_at'),
    startedAt: n(r, 'started_at'),
    finishedAt: nn(r, 'finished_at'),
  };
}

function jobRow(r: SqlRow): JobRow {
  return {
    id: s(r, 'id'),
    seq: n(r, 'seq'),
    cardId: s(r, 'card_id'),
    campaignId: sn(r, 'campaign_id'),
    kind: s(r, 'kind'),
    params: j(r, 'params'),
    status: s(r, 'status') as JobRow['status'],
    attempt: n(r, 'attempt'),
    maxAttempts: n(r, 'max_attempts'),
    leaseOwner: sn(r, 'lease_owner'),
    leaseUntil: nn(r, 'lease_until'),
    notBefore: n(r, 'not_before'),
    deadlineAt: nn(r, 'deadline_at'),
    idempotencyKey: sn(r, 'idempotency_key'),
    progress: j(r, 'progress'),
    result: jn(r, 'result'),
    errorCode: sn(r, 'error_code'),
    errorMessage: sn(r, 'error_message'),
    createdBy: sn(r, 'created_by'),
    createdAt: n(r, 'created_at'),
    updatedAt: n(r, 'updated_at'),
    startedAt: nn(r, 'started_at'),
    finishedAt: nn(r, 'finished_at'),
  };
}

function tokenRow(r: SqlRow): ApiTokenRow {
  return {
    id: s(r, 'id'),
    name: s(r, 'name'),
    role: s(r, 'role') as ApiTokenRow['role'],
    secretHash: b(r, 'secret_hash'),
    createdAt: n(r, 'created_at'),
    lastUsedAt: nn(r, 'last_used_at'),
    revokedAt: nn(r, 'revoked_at'),
  };
}

function manufacturerRow(r: SqlRow): ManufacturerCaRow {
  return { id: s(r, 'id'), name: s(r, 'name'), certDer: b(r, 'cert_der'), fingerprint: s(r, 'fingerprint'), notAfter: n(r, 'not_after'), createdAt: n(r, 'created_at') };
}

const UNFINISHED = `('queued','in_progress')`;

export class SqlStore implements OperatorStore {
  /** `conn` is set on a store bound to a transaction. */
  private constructor(
    private readonly driver: SqlDriver,
    private readonly sql: DialectSql,
    private readonly conn: SqlConn | null,
  ) {}

  /** Opens a store over `driver`, running pending migrations. */
  static async open(driver: SqlDriver, sql: DialectSql): Promise<SqlStore> {
    await migrate(driver);
    return new SqlStore(driver, sql, null);
  }

  get dialect(): string {
    return this.driver.dialect.name;
  }

  private get c(): SqlConn {
    return this.conn ?? this.driver;
  }

  async tx<T>(fn: (t: OperatorStore) => Promise<T>): Promise<T> {
    if (this.conn) return fn(this);
    return this.driver.tx((c) => fn(new SqlStore(this.driver, this.sql, c)));
  }

  /** Writes that read-then-write run in a transaction (the caller's, or their own). */
  private inTx<T>(fn: (t: SqlStore) => Promise<T>): Promise<T> {
    if (this.conn) return fn(this);
    return this.driver.tx((c) => fn(new SqlStore(this.driver, this.sql, c)));
  }

  async close(): Promise<void> {
    if (!this.conn) await this.driver.close();
  }

  /** Announces a job change (PostgreSQL NOTIFY inside the current transaction). */
  private async notify(): Promise<void> {
    if (this.sql.notifyJobs) await this.c.get(this.sql.notifyJobs);
  }

  /** A guarded job update that, when it changed the row, announces it in the same transaction. */
  private async jobChange(sql: string, params: readonly SqlValue[]): Promise<boolean> {
    if (!this.sql.notifyJobs) return (await this.c.run(sql, params)).changes === 1;
    return this.inTx(async (t) => {
      const { changes } = await t.c.run(sql, params);
      if (changes === 1) await t.notify();
      return changes === 1;
    });
  }

  async watchJobs(onChange: () => void): Promise<(() => Promise<void>) | null> {
    if (!this.driver.listen || this.conn) return null;
    return this.driver.listen(JOBS_CHANNEL, onChange);
  }

  async schemaVersion(): Promise<number> {
    const r = await this.c.get('SELECT MAX(version) AS v FROM schema_migrations');
    return Number(r?.['v'] ?? 0);
  }

  // ---- meta
  async getMeta(key: string): Promise<string | null> {
    const r = await this.c.get('SELECT value FROM meta WHERE key = ?', [key]);
    return r ? s(r, 'value') : null;
  }
  async setMeta(key: string, value: string): Promise<void> {
    // one statement (an upsert): two nodes setting the same key at once never collide
    await this.c.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);
  }

  // ---- CAs and keys
  async addManufacturerCa(row: ManufacturerCaRow): Promise<boolean> {
    const { changes } = await this.c.run(
      'INSERT INTO manufacturer_ca (id, name, cert_der, fingerprint, not_after, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint) DO NOTHING',
      [row.id, row.name, row.certDer, row.fingerprint, row.notAfter, row.createdAt],
    );
    return changes === 1;
  }
  async listManufacturerCas(): Promise<ManufacturerCaRow[]> {
    return (await this.c.all('SELECT * FROM manufacturer_ca ORDER BY created_at, id')).map(manufacturerRow);
  }
  async putCa(row: Omit<CaRow, 'crlNumber' | 'crlDer' | 'crlBuiltNumber' | 'crlThisUpdate' | 'crlNextUpdate'>): Promise<void> {
    await this.c.run('INSERT INTO ca (id, role, cert_der, key_ref, not_after, created_at) VALUES (?, ?, ?, ?, ?, ?)', [
      row.id,
      row.role,
      row.certDer,
      row.keyRef,
      row.notAfter,
      row.createdAt,
    ]);
  }
  async getCa(id: string): Promise<CaRow | null> {
    const r = await this.c.get('SELECT * FROM ca WHERE id = ?', [id]);
    return r ? caRow(r) : null;
  }
  async caByRole(role: string): Promise<CaRow | null> {
    const r = await this.c.get('SELECT * FROM ca WHERE role = ?', [role]);
    return r ? caRow(r) : null;
  }
  async nextCrlNumber(caId: string): Promise<number> {
    return this.inTx(async (t) => {
      await t.c.run('UPDATE ca SET crl_number = crl_number + 1 WHERE id = ?', [caId]);
      const r = await t.c.get('SELECT crl_number FROM ca WHERE id = ?', [caId]);
      if (!r) throw new Error(`no CA ${caId}`);
      return n(r, 'crl_number');
    });
  }
  async storeCrl(caId: string, number: number, der: Uint8Array, thisUpdate: number, nextUpdate: number): Promise<boolean> {
    const { changes } = await this.c.run(
      'UPDATE ca SET crl_der = ?, crl_built_number = ?, crl_this_update = ?, crl_next_update = ? WHERE id = ? AND crl_built_number < ?',
      [der, number, thisUpdate, nextUpdate, caId, number],
    );
    return changes === 1;
  }
  async putMasterKey(row: MasterKeyRow): Promise<void> {
    await this.c.run('INSERT INTO master_key (id, purpose, version, kcv, source, created_at) VALUES (?, ?, ?, ?, ?, ?)', [
      row.id,
      row.purpose,
      row.version,
      row.kcv,
      row.source,
      row.createdAt,
    ]);
  }
  async listMasterKeys(): Promise<MasterKeyRow[]> {
    return (await this.c.all('SELECT * FROM master_key ORDER BY purpose, version')).map((r) => ({
      id: s(r, 'id'),
      purpose: s(r, 'purpose'),
      version: n(r, 'version'),
      kcv: s(r, 'kcv'),
      source: s(r, 'source'),
      createdAt: n(r, 'created_at'),
    }));
  }

  // ---- manifests and cards
  async addManifestBatch(row: ManifestBatchRow): Promise<void> {
    await this.c.run('INSERT INTO manifest_batch (id, manufacturer_ca_id, name, count, imported_by, imported_at) VALUES (?, ?, ?, ?, ?, ?)', [
      row.id,
      row.manufacturerCaId,
      row.name,
      row.count,
      row.importedBy,
      row.importedAt,
    ]);
  }
  async insertCard(card: NewCard): Promise<void> {
    await this.c.run(
      `INSERT INTO card (id, uid, batch_id, attest_cert_der, attest_spki_sha256, lifecycle, kvn, transport_key_id, seq_counter, labels, profile, created_at, updated_at,
         attest_key_spki, attest_anchor_sha256, attest_valid_from, attest_valid_to)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        card.id,
        card.uid,
        card.batchId,
        card.attestCertDer,
        card.attestSpkiSha256,
        card.lifecycle,
        card.kvn,
        card.transportKeyId,
        card.seqCounter ?? null,
        json(card.labels),
        json(card.profile),
        card.createdAt,
        card.createdAt,
        card.attestFacts?.keySpki ?? null,
        card.attestFacts?.anchorSha256 ?? null,
        card.attestFacts?.validFrom ?? null,
        card.attestFacts?.validTo ?? null,
      ],
    );
  }
  async addCardAttestFacts(cardId: string, f: CardAttestFacts): Promise<boolean> {
    const r = await this.c.run(
      'UPDATE card SET attest_key_spki = ?, attest_anchor_sha256 = ?, attest_valid_from = ?, attest_valid_to = ? WHERE id = ? AND attest_key_spki IS NULL',
      [f.keySpki, f.anchorSha256, f.validFrom, f.validTo, cardId],
    );
    return r.changes > 0;
  }
  async cardByUid(uid: Uint8Array): Promise<CardRow | null> {
    const r = await this.c.get('SELECT * FROM card WHERE uid = ?', [uid]);
    return r ? cardRow(r) : null;
  }
  async cardById(id: string): Promise<CardRow | null> {
    const r = await this.c.get('SELECT * FROM card WHERE id = ?', [id]);
    return r ? cardRow(r) : null;
  }
  async listCards(filter: CardFilter, after: Uint8Array | null, limit: number): Promise<CardRow[]> {
    const where: string[] = [];
    const params: SqlValue[] = [];
    if (filter.lifecycle) {
      where.push('card.lifecycle = ?');
      params.push(filter.lifecycle);
    }
    if (filter.label) where.push(labelTerm(this.sql, 'card.labels', filter.label, params));
    if (filter.expiringBefore !== undefined) {
      where.push(`EXISTS (SELECT 1 FROM certificate c WHERE c.card_id = card.id AND c.status = 'good' AND c.not_after < ?)`);
      params.push(filter.expiringBefore);
    }
    if (after) {
      where.push('card.uid > ?');
      params.push(after);
    }
    params.push(limit);
    const sql = `SELECT * FROM card ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY card.uid LIMIT ?`;
    return (await this.c.all(sql, params)).map(cardRow);
  }
  async updateCard(
    id: string,
    patch: Partial<Pick<CardRow, 'lifecycle' | 'kvn' | 'labels' | 'profile' | 'seqCounter' | 'hostId' | 'lastSeenAt'>>,
    now: number,
  ): Promise<void> {
    const cols: Record<string, SqlValue> = {};
    if (patch.lifecycle !== undefined) cols['lifecycle'] = patch.lifecycle;
    if (patch.kvn !== undefined) cols['kvn'] = patch.kvn;
    if (patch.labels !== undefined) cols['labels'] = json(patch.labels);
    if (patch.profile !== undefined) cols['profile'] = json(patch.profile);
    if (patch.seqCounter !== undefined) cols['seq_counter'] = patch.seqCounter;
    if (patch.hostId !== undefined) cols['host_id'] = patch.hostId;
    if (patch.lastSeenAt !== undefined) cols['last_seen_at'] = patch.lastSeenAt;
    cols['updated_at'] = now;
    const names = Object.keys(cols);
    await this.c.run(`UPDATE card SET ${names.map((k) => `${k} = ?`).join(', ')} WHERE id = ?`, [...names.map((k) => cols[k]!), id]);
  }
  async countCardsByLifecycle(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of await this.c.all('SELECT lifecycle, COUNT(*) AS n FROM card GROUP BY lifecycle')) out[s(r, 'lifecycle')] = n(r, 'n');
    return out;
  }

  async allocateCardCounter(cardId: string, counter: CardCounter, atLeast = 0): Promise<number> {
    const col = COUNTER_COLUMN[counter];
    return this.inTx(async (t) => {
      const { changes } = await t.c.run(`UPDATE card SET ${col} = CASE WHEN ${col} + 1 > ? THEN ${col} + 1 ELSE ? END WHERE id = ?`, [atLeast, atLeast, cardId]);
      if (changes !== 1) throw new Error(`no card ${cardId}`);
      const r = await t.c.get(`SELECT ${col} AS v FROM card WHERE id = ?`, [cardId]);
      return n(r!, 'v');
    });
  }

  // ---- identities and certificates
  async insertIdentity(row: IdentityRow): Promise<void> {
    await this.c.run(
      'INSERT INTO identity (id, card_id, slot, alg, spki_der, spki_sha256, state, attested_at, created_at, delete_after, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [row.id, row.cardId, row.slot, row.alg, row.spkiDer, row.spkiSha256, row.state, row.attestedAt, row.createdAt, row.deleteAfter ?? null, row.updatedAt ?? null],
    );
  }
  async updateIdentity(id: string, patch: Partial<Pick<IdentityRow, 'state' | 'slot' | 'deleteAfter'>>, now: number): Promise<void> {
    const cols: Record<string, SqlValue> = {};
    if (patch.state !== undefined) cols['state'] = patch.state;
    if (patch.slot !== undefined) cols['slot'] = patch.slot;
    if (patch.deleteAfter !== undefined) cols['delete_after'] = patch.deleteAfter;
    cols['updated_at'] = now;
    const names = Object.keys(cols);
    await this.c.run(`UPDATE identity SET ${names.map((k) => `${k} = ?`).join(', ')} WHERE id = ?`, [...names.map((k) => cols[k]!), id]);
  }
  async identitiesDueForDeletion(now: number, limit: number): Promise<IdentityRow[]> {
    return (
      await this.c.all(`SELECT * FROM identity WHERE state = 'retired' AND delete_after IS NOT NULL AND delete_after <= ? ORDER BY delete_after, id LIMIT ?`, [now, limit])
    ).map(identityRow);
  }
  async identityBySpkiHash(h: Uint8Array): Promise<IdentityRow | null> {
    const r = await this.c.get('SELECT * FROM identity WHERE spki_sha256 = ?', [h]);
    return r ? identityRow(r) : null;
  }
  async identitiesOfCard(cardId: string): Promise<IdentityRow[]> {
    return (await this.c.all('SELECT * FROM identity WHERE card_id = ? ORDER BY created_at, id', [cardId])).map(identityRow);
  }
  async insertCertificate(row: CertificateRow): Promise<void> {
    await this.c.run(
      `INSERT INTO certificate (serial, identity_id, card_id, ca_id, job_id, enrolment_id, subject, san, not_before, not_after, der, status, revoked_at, reason, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        row.serial,
        row.identityId,
        row.cardId,
        row.caId,
        row.jobId,
        row.enrolmentId,
        row.subject,
        json(row.san),
        row.notBefore,
        row.notAfter,
        row.der,
        row.status,
        row.revokedAt,
        row.reason,
        row.createdAt,
      ],
    );
  }
  async certificateBySerial(serial: Uint8Array): Promise<CertificateRow | null> {
    const r = await this.c.get('SELECT * FROM certificate WHERE serial = ?', [serial]);
    return r ? certificateRow(r) : null;
  }
  async certificatesOfCard(cardId: string): Promise<CertificateRow[]> {
    return (await this.c.all('SELECT * FROM certificate WHERE card_id = ? ORDER BY created_at, serial', [cardId])).map(certificateRow);
  }
  async certificatesOfJob(jobId: string): Promise<CertificateRow[]> {
    return (await this.c.all('SELECT * FROM certificate WHERE job_id = ? ORDER BY created_at, serial', [jobId])).map(certificateRow);
  }
  async revokeCertificate(serial: Uint8Array, reason: string, now: number): Promise<boolean> {
    const { changes } = await this.c.run(`UPDATE certificate SET status = 'revoked', revoked_at = ?, reason = ? WHERE serial = ? AND status = 'good'`, [
      now,
      reason,
      serial,
    ]);
    return changes === 1;
  }
  async supersedeCertificate(serial: Uint8Array, now: number): Promise<boolean> {
    const { changes } = await this.c.run(`UPDATE certificate SET status = 'superseded', revoked_at = ?, reason = 'superseded' WHERE serial = ? AND status = 'good'`, [now, serial]);
    return changes === 1;
  }
  async revokedCertificates(caId: string, now: number): Promise<Pick<CertificateRow, 'serial' | 'revokedAt' | 'reason'>[]> {
    return (
      await this.c.all(`SELECT serial, revoked_at, reason FROM certificate WHERE ca_id = ? AND status = 'revoked' AND not_after > ? ORDER BY serial`, [caId, now])
    ).map((r) => ({ serial: b(r, 'serial'), revokedAt: nn(r, 'revoked_at'), reason: sn(r, 'reason') }));
  }

  // ---- enrolments
  async insertEnrolment(row: EnrolmentRow): Promise<void> {
    await this.c.run(
      'INSERT INTO enrolment (id, card_id, job_id, mode, nonce_hash, status, error_code, expires_at, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [row.id, row.cardId, row.jobId, row.mode, row.nonceHash, row.status, row.errorCode, row.expiresAt, row.startedAt, row.finishedAt],
    );
  }
  async enrolmentByNonceHash(h: Uint8Array): Promise<EnrolmentRow | null> {
    const r = await this.c.get('SELECT * FROM enrolment WHERE nonce_hash = ?', [h]);
    return r ? enrolmentRow(r) : null;
  }
  async finishEnrolment(id: string, status: 'succeeded' | 'refused', errorCode: string | null, now: number): Promise<boolean> {
    const { changes } = await this.c.run(`UPDATE enrolment SET status = ?, error_code = ?, finished_at = ? WHERE id = ? AND status = 'open'`, [
      status,
      errorCode,
      now,
      id,
    ]);
    return changes === 1;
  }

  // ---- jobs
  async insertJob(job: NewJob): Promise<JobRow> {
    return this.inTx(async (t) => {
      if (this.sql.jobSeqLock) await t.c.get(this.sql.jobSeqLock);
      await t.c.run(
        `INSERT INTO job (id, seq, card_id, campaign_id, kind, params, status, attempt, max_attempts, not_before, deadline_at, idempotency_key, progress, created_by, created_at, updated_at)
         SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?, '{}', ?, ?, ? FROM job`,
        [
          job.id,
          job.cardId,
          job.campaignId ?? null,
          job.kind,
          json(job.params),
          job.maxAttempts,
          job.notBefore ?? job.createdAt,
          job.deadlineAt,
          job.idempotencyKey,
          job.createdBy,
          job.createdAt,
          job.createdAt,
        ],
      );
      await t.notify();
      return (await t.jobById(job.id))!;
    });
  }
  async jobById(id: string): Promise<JobRow | null> {
    const r = await this.c.get('SELECT * FROM job WHERE id = ?', [id]);
    return r ? jobRow(r) : null;
  }
  async jobByIdempotencyKey(key: string): Promise<JobRow | null> {
    const r = await this.c.get('SELECT * FROM job WHERE idempotency_key = ?', [key]);
    return r ? jobRow(r) : null;
  }
  async listJobs(filter: JobFilter, afterSeq: number | null, limit: number): Promise<JobRow[]> {
    const where: string[] = [];
    const params: SqlValue[] = [];
    if (filter.cardId) {
      where.push('card_id = ?');
      params.push(filter.cardId);
    }
    if (filter.status) {
      where.push('status = ?');
      params.push(filter.status);
    }
    if (filter.kind) {
      where.push('kind = ?');
      params.push(filter.kind);
    }
    if (afterSeq !== null) {
      where.push('seq < ?');
      params.push(afterSeq);
    }
    params.push(limit);
    return (await this.c.all(`SELECT * FROM job ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`, params)).map(jobRow);
  }
  async claimJob(o: ClaimOptions): Promise<JobRow | null> {
    if (o.kinds.length === 0) return null;
    return this.inTx(async (t) => {
      const kinds = o.kinds.map(() => '?').join(', ');
      // A card whose agent polls another node (recently): that node relays its scripts, it claims.
      const routed = o.node
        ? `AND NOT EXISTS (SELECT 1 FROM card c JOIN host h ON h.id = c.host_id
                      WHERE c.id = j.card_id AND h.node_id <> ? AND h.node_seen_at > ?)`
        : '';
      // The oldest claimable job: a queued one due, or one whose lease expired with attempts left.
      // One query per status (each walks job_status_seq in seq order and stops at the first match)
      // and the lower seq of the two: a single query with `status = 'queued' OR status =
      // 'in_progress'` made SQLite collect and sort EVERY queued job at each claim (10 000 queued
      // by a campaign: tens of ms per claim). test/operator/store-plans.test.ts.
      const pick = (status: string): Promise<SqlRow | undefined> =>
        t.c.get(
          `SELECT j.* FROM job j
           WHERE j.status = ? AND j.kind IN (${kinds})
             AND ${status === 'queued' ? 'j.not_before <= ?' : 'j.lease_until <= ? AND j.attempt < j.max_attempts'}
             AND (j.deadline_at IS NULL OR j.deadline_at > ?)
             AND NOT EXISTS (SELECT 1 FROM job e WHERE e.card_id = j.card_id AND e.seq < j.seq AND e.status IN ${UNFINISHED})
             AND NOT EXISTS (SELECT 1 FROM job e WHERE e.card_id = j.card_id AND e.id <> j.id AND e.status = 'in_progress' AND e.lease_until > ?)
             ${routed}
           ORDER BY j.seq LIMIT 1${this.sql.lockSkip}`,
          [status, ...o.kinds, o.now, o.now, o.now, ...(o.node ? [o.node.id, o.node.attachedAfter] : [])],
        );
      const expired = await pick('in_progress');
      const queued = await pick('queued');
      const r = expired && (!queued || Number(expired['seq']) < Number(queued['seq'])) ? expired : queued;
      if (!r) return null;
      const prev = jobRow(r);
      const { changes } = await t.c.run(
        `UPDATE job SET status = 'in_progress', lease_owner = ?, lease_until = ?, attempt = attempt + 1,
                started_at = COALESCE(started_at, ?), updated_at = ?
         WHERE id = ? AND status = ? AND attempt = ?`,
        [o.owner, o.now + o.leaseMs, o.now, o.now, prev.id, prev.status, prev.attempt],
      );
      if (changes !== 1) return null;
      return t.jobById(prev.id);
    });
  }
  async renewLease(id: string, owner: string, attempt: number, leaseUntil: number, now: number): Promise<boolean> {
    const { changes } = await this.c.run(
      `UPDATE job SET lease_until = ?, updated_at = ? WHERE id = ? AND lease_owner = ? AND attempt = ? AND status = 'in_progress'`,
      [leaseUntil, now, id, owner, attempt],
    );
    return changes === 1;
  }
  async saveProgress(id: string, owner: string, attempt: number, progress: JsonObject, now: number): Promise<boolean> {
    const { changes } = await this.c.run(
      `UPDATE job SET progress = ?, updated_at = ? WHERE id = ? AND lease_owner = ? AND attempt = ? AND status = 'in_progress'`,
      [json(progress), now, id, owner, attempt],
    );
    return changes === 1;
  }
  async finishJob(id: string, owner: string, attempt: number, f: JobFinish): Promise<boolean> {
    return this.jobChange(
      `UPDATE job SET status = ?, result = ?, error_code = ?, error_message = ?, lease_owner = NULL, lease_until = NULL, finished_at = ?, updated_at = ?
       WHERE id = ? AND lease_owner = ? AND attempt = ? AND status = 'in_progress'`,
      [f.status, json(f.result ?? null), f.errorCode ?? null, f.errorMessage ?? null, f.now, f.now, id, owner, attempt],
    );
  }
  async requeueJob(id: string, owner: string, attempt: number, notBefore: number, errorCode: string, errorMessage: string, now: number): Promise<boolean> {
    return this.jobChange(
      `UPDATE job SET status = 'queued', lease_owner = NULL, lease_until = NULL, not_before = ?, error_code = ?, error_message = ?, updated_at = ?
       WHERE id = ? AND lease_owner = ? AND attempt = ? AND status = 'in_progress'`,
      [notBefore, errorCode, errorMessage, now, id, owner, attempt],
    );
  }
  async expireJob(id: string, expectedAttempt: number, f: JobFinish): Promise<boolean> {
    return this.jobChange(
      `UPDATE job SET status = ?, result = ?, error_code = ?, error_message = ?, lease_owner = NULL, lease_until = NULL, finished_at = ?, updated_at = ?
       WHERE id = ? AND attempt = ? AND status IN ${UNFINISHED} AND (lease_until IS NULL OR lease_until <= ?)`,
      [f.status, json(f.result ?? null), f.errorCode ?? null, f.errorMessage ?? null, f.now, f.now, id, expectedAttempt, f.now],
    );
  }
  async cancelJob(id: string, now: number): Promise<boolean> {
    return this.jobChange(
      `UPDATE job SET status = 'canceled', finished_at = ?, updated_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND status = 'queued'`,
      [now, now, id],
    );
  }
  async jobsToExpire(now: number, limit: number): Promise<JobRow[]> {
    return (
      await this.c.all(
        `SELECT * FROM job
         WHERE (status = 'in_progress' AND lease_until <= ? AND attempt >= max_attempts)
            OR (status = 'queued' AND deadline_at IS NOT NULL AND deadline_at <= ?)
            OR (status = 'in_progress' AND deadline_at IS NOT NULL AND deadline_at <= ? AND lease_until <= ?)
         ORDER BY seq LIMIT ?`,
        [now, now, now, now, limit],
      )
    ).map(jobRow);
  }
  async countJobsByStatus(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of await this.c.all('SELECT status, COUNT(*) AS n FROM job GROUP BY status')) out[s(r, 'status')] = n(r, 'n');
    return out;
  }

  // ---- admin sessions
  async insertAdminSession(row: AdminSessionRow): Promise<void> {
    await this.c.run(
      `INSERT INTO admin_session (id, job_id, card_id, scp, kvn, security_level, seq_counter, step, transcript_sha256, error_sw, started_at, finished_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [row.id, row.jobId, row.cardId, row.scp, row.kvn, row.securityLevel, row.seqCounter, row.step, row.transcriptSha256, row.errorSw, row.startedAt, row.finishedAt],
    );
  }
  async adminSessionsOfJob(jobId: string): Promise<AdminSessionRow[]> {
    return (await this.c.all('SELECT * FROM admin_session WHERE job_id = ? ORDER BY started_at, id', [jobId])).map((r) => ({
      id: s(r, 'id'),
      jobId: s(r, 'job_id'),
      cardId: s(r, 'card_id'),
      scp: s(r, 'scp'),
      kvn: n(r, 'kvn'),
      securityLevel: n(r, 'security_level'),
      seqCounter: nn(r, 'seq_counter'),
      step: n(r, 'step'),
      transcriptSha256: bn(r, 'transcript_sha256'),
      errorSw: sn(r, 'error_sw'),
      startedAt: n(r, 'started_at'),
      finishedAt: nn(r, 'finished_at'),
    }));
  }

  // ---- device hosts
  async putHostCredential(row: Pick<HostRow, 'id' | 'name' | 'credentialHash' | 'createdAt'>): Promise<void> {
    await this.c.run(
      `INSERT INTO host (id, name, credential_hash, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET name = excluded.name, credential_hash = excluded.credential_hash, revoked_at = NULL`,
      [row.id, row.name, row.credentialHash, row.createdAt],
    );
  }
  async hostById(id: string): Promise<HostRow | null> {
    const r = await this.c.get('SELECT * FROM host WHERE id = ?', [id]);
    return r ? hostRow(r) : null;
  }
  async listHosts(): Promise<HostRow[]> {
    return (await this.c.all('SELECT * FROM host ORDER BY id')).map(hostRow);
  }
  async touchHost(id: string, lastIp: string | null, now: number, node?: string): Promise<void> {
    if (node === undefined) await this.c.run('UPDATE host SET last_ip = ?, last_seen_at = ? WHERE id = ?', [lastIp, now, id]);
    else await this.c.run('UPDATE host SET last_ip = ?, last_seen_at = ?, node_id = ?, node_seen_at = ? WHERE id = ?', [lastIp, now, node, now, id]);
  }

  // ---- card audit logs
  async insertAuditEntries(rows: readonly AuditEntryRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.inTx(async (t) => {
      for (const r of rows) {
        await t.c.run(
          'INSERT INTO card_audit_entry (card_id, seq, type, body, prev_hash, received_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (card_id, seq) DO NOTHING',
          [r.cardId, r.seq, r.type, r.body, r.prevHash, r.receivedAt],
        );
      }
    });
  }
  async auditEntriesOf(cardId: string, afterSeq: number, limit: number): Promise<AuditEntryRow[]> {
    return (await this.c.all('SELECT * FROM card_audit_entry WHERE card_id = ? AND seq > ? ORDER BY seq LIMIT ?', [cardId, afterSeq, limit])).map(auditEntryRow);
  }
  async auditHeadOf(cardId: string): Promise<AuditHeadRow | null> {
    const r = await this.c.get('SELECT * FROM card_audit_head WHERE card_id = ?', [cardId]);
    if (!r) return null;
    return {
      cardId: s(r, 'card_id'),
      seq: n(r, 'seq'),
      headHash: b(r, 'head_hash'),
      signature: b(r, 'signature'),
      verified: n(r, 'verified') === 1,
      time: n(r, 'time'),
      receivedAt: n(r, 'received_at'),
    };
  }
  async putAuditHead(row: AuditHeadRow): Promise<void> {
    await this.c.run(
      `INSERT INTO card_audit_head (card_id, seq, head_hash, signature, verified, time, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (card_id) DO UPDATE SET seq = excluded.seq, head_hash = excluded.head_hash, signature = excluded.signature,
         verified = excluded.verified, time = excluded.time, received_at = excluded.received_at`,
      [row.cardId, row.seq, row.headHash, row.signature, row.verified ? 1 : 0, row.time, row.receivedAt],
    );
  }

  // ---- API tokens and idempotency
  async insertApiToken(row: ApiTokenRow): Promise<void> {
    await this.c.run('INSERT INTO api_token (id, name, role, secret_hash, created_at, last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)', [
      row.id,
      row.name,
      row.role,
      row.secretHash,
      row.createdAt,
      row.lastUsedAt,
      row.revokedAt,
    ]);
  }
  async apiTokenById(id: string): Promise<ApiTokenRow | null> {
    const r = await this.c.get('SELECT * FROM api_token WHERE id = ?', [id]);
    return r ? tokenRow(r) : null;
  }
  async listApiTokens(): Promise<ApiTokenRow[]> {
    return (await this.c.all('SELECT * FROM api_token ORDER BY created_at, id')).map(tokenRow);
  }
  async touchApiToken(id: string, now: number): Promise<void> {
    await this.c.run('UPDATE api_token SET last_used_at = ? WHERE id = ?', [now, id]);
  }
  async revokeApiToken(id: string, now: number): Promise<boolean> {
    const { changes } = await this.c.run('UPDATE api_token SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [now, id]);
    return changes === 1;
  }
  async reserveIdempotency(row: Omit<IdempotencyRow, 'status' | 'response'>): Promise<IdempotencyRow | null> {
    return this.inTx(async (t) => {
      const { changes } = await t.c.run(
        'INSERT INTO idempotency (principal, key, request_hash, status, response, created_at) VALUES (?, ?, ?, 0, NULL, ?) ON CONFLICT (principal, key) DO NOTHING',
        [row.principal, row.key, row.requestHash, row.createdAt],
      );
      if (changes === 1) return null;
      const r = await t.c.get('SELECT * FROM idempotency WHERE principal = ? AND key = ?', [row.principal, row.key]);
      if (!r) return null;
      return {
        principal: s(r, 'principal'),
        key: s(r, 'key'),
        requestHash: b(r, 'request_hash'),
        status: n(r, 'status'),
        response: r['response'] === null ? null : (JSON.parse(r['response'] as string) as Json),
        createdAt: n(r, 'created_at'),
      };
    });
  }
  async completeIdempotency(principal: string, key: string, status: number, response: Json): Promise<void> {
    await this.c.run('UPDATE idempotency SET status = ?, response = ? WHERE principal = ? AND key = ?', [status, json(response), principal, key]);
  }
  async releaseIdempotency(principal: string, key: string): Promise<void> {
    await this.c.run('DELETE FROM idempotency WHERE principal = ? AND key = ? AND status = 0', [principal, key]);
  }

  // ---- events
  async addEvent(e: Omit<EventRow, 'id'>): Promise<void> {
    await this.c.run('INSERT INTO event (at, actor, kind, card_id, subject, details) VALUES (?, ?, ?, ?, ?, ?)', [
      e.at,
      e.actor,
      e.kind,
      e.cardId,
      e.subject,
      json(e.details),
    ]);
  }
  async listEvents(cardId: string | null, limit: number): Promise<EventRow[]> {
    const rows = cardId
      ? await this.c.all('SELECT * FROM event WHERE card_id = ? ORDER BY id DESC LIMIT ?', [cardId, limit])
      : await this.c.all('SELECT * FROM event ORDER BY id DESC LIMIT ?', [limit]);
    return rows.map((r) => ({
      id: n(r, 'id'),
      at: n(r, 'at'),
      actor: s(r, 'actor'),
      kind: s(r, 'kind'),
      cardId: sn(r, 'card_id'),
      subject: sn(r, 'subject'),
      details: j(r, 'details'),
    }));
  }

  // ---- EST enrolment credentials and certificates not bound to a card (store/est-store.ts)
  insertEstCredential(row: EstCredentialRow): Promise<void> {
    return est.insertEstCredential(this.c, row);
  }
  estCredentialById(id: string): Promise<EstCredentialRow | null> {
    return est.estCredentialById(this.c, id);
  }
  listEstCredentials(): Promise<EstCredentialRow[]> {
    return est.listEstCredentials(this.c);
  }
  revokeEstCredential(id: string, now: number): Promise<boolean> {
    return est.revokeEstCredential(this.c, id, now);
  }
  spendEstCredential(id: string, now: number): Promise<boolean> {
    return est.spendEstCredential(this.c, id, now);
  }
  insertEstCertificate(row: EstCertificateRow): Promise<void> {
    return est.insertEstCertificate(this.c, row);
  }
  estCertificateBySerial(serial: Uint8Array): Promise<EstCertificateRow | null> {
    return est.estCertificateBySerial(this.c, serial);
  }
  listEstCertificates(after: { createdAt: number; serial: Uint8Array } | null, limit: number): Promise<EstCertificateRow[]> {
    return est.listEstCertificates(this.c, after, limit);
  }
  setEstCertificateStatus(serial: Uint8Array, status: 'revoked' | 'superseded', reason: string, now: number): Promise<boolean> {
    return est.setEstCertificateStatus(this.c, serial, status, reason, now);
  }
  revokedEstCertificates(caId: string, now: number): Promise<Pick<CertificateRow, 'serial' | 'revokedAt' | 'reason'>[]> {
    return est.revokedEstCertificates(this.c, caId, now);
  }

  // ---- audits (issue #16): findings, run lease, the checks' queries — SQL in store/findings.ts
  private get findings(): FindingsSql {
    return new FindingsSql(this.c);
  }
  recordFinding(r: FindingReport, seenAt: number): Promise<FindingRecorded> {
    return this.findings.record(r, seenAt, randomUUID());
  }
  resolveUnseenFindings(check: string, seenSince: number, now: number): Promise<number> {
    return this.findings.resolveUnseen(check, seenSince, now);
  }
  resolveFinding(id: string, resolution: Exclude<FindingResolution, 'auto'>, by: string, now: number): Promise<boolean> {
    return this.findings.resolve(id, resolution, by, now);
  }
  findingById(id: string): Promise<FindingRow | null> {
    return this.findings.byId(id);
  }
  listFindings(filter: FindingFilter, after: { firstSeenAt: number; id: string } | null, limit: number): Promise<FindingRow[]> {
    return this.findings.list(filter, after, limit);
  }
  countOpenFindingsByCheck(): Promise<Record<string, number>> {
    return this.findings.countOpenByCheck();
  }
  countEnrolments(): Promise<{ mode: string; status: string; count: number }[]> {
    return this.findings.countEnrolments();
  }
  acquireAuditLease(name: string, owner: string, now: number, leaseMs: number, minIntervalMs: number): Promise<boolean> {
    return this.findings.acquireLease(name, owner, now, leaseMs, minIntervalMs);
  }
  releaseAuditLease(name: string, owner: string, finishedAt: number): Promise<void> {
    return this.findings.releaseLease(name, owner, finishedAt);
  }
  auditCertificatesExpiring(before: number, limit: number): Promise<AuditCertRow[]> {
    return this.findings.certificatesExpiring(before, limit);
  }
  auditRevokedCertificatesServed(now: number, limit: number): Promise<AuditCertRow[]> {
    return this.findings.revokedServed(now, limit);
  }
  auditSharedKeys(limit: number): Promise<AuditSharedKeyRow[]> {
    return this.findings.sharedKeys(limit);
  }
  auditCardsWithKvn(kvn: number, enrolledBefore: number, limit: number): Promise<AuditCardRow[]> {
    return this.findings.cardsWithKvn(kvn, enrolledBefore, limit);
  }
  auditCardsNotSeen(before: number, limit: number): Promise<AuditCardRow[]> {
    return this.findings.cardsNotSeen(before, limit);
  }
  auditLogReadFailures(codes: readonly string[], limit: number): Promise<AuditJobRow[]> {
    return this.findings.logReadFailures(codes, limit);
  }
  auditLogSummaries(limit: number): Promise<AuditLogSummaryRow[]> {
    return this.findings.logSummaries(limit);
  }
  auditLocksNotDelivered(stuckBefore: number, limit: number): Promise<AuditJobRow[]> {
    return this.findings.locksNotDelivered(stuckBefore, limit);
  }
  auditCardsByManufacturer(): Promise<Record<string, number>> {
    return this.findings.cardsByManufacturer();
  }

  // ---- console (issue #16)
  async fleetPage(filter: FleetFilter, after: Uint8Array | null, limit: number): Promise<CardRow[]> {
    return (await fleetPage(this.c, this.sql, filter, after, limit)).map(cardRow);
  }

  // ---- campaigns (issue #16): SQL in store/campaigns.ts
  async insertCampaign(row: CampaignRow): Promise<void> {
    await campaignSql.insertCampaign(this.c, row);
  }
  async insertCampaignTargets(campaignId: string, cardIds: readonly string[], firstOrd: number): Promise<void> {
    await this.inTx((t) => campaignSql.insertCampaignTargets(t.c, campaignId, cardIds, firstOrd));
  }
  campaignById(id: string): Promise<CampaignRow | null> {
    return campaignSql.campaignById(this.c, id);
  }
  listCampaigns(state: CampaignState | undefined, after: { createdAt: number; id: string } | null, limit: number): Promise<CampaignRow[]> {
    return campaignSql.listCampaigns(this.c, state, after, limit);
  }
  campaignIdsInState(states: readonly CampaignState[]): Promise<string[]> {
    return campaignSql.campaignIdsInState(this.c, states);
  }
  lockCampaign(id: string): Promise<CampaignRow | null> {
    return campaignSql.lockCampaign(this.c, id);
  }
  async updateCampaign(id: string, patch: Partial<Pick<CampaignRow, 'state' | 'abortReason' | 'abortStats' | 'nextReleaseAt' | 'finishedAt'>>, now: number): Promise<void> {
    await campaignSql.updateCampaign(this.c, id, patch, now);
  }
  campaignCounters(id: string): Promise<CampaignCounters> {
    return campaignSql.campaignCounters(this.c, id);
  }
  campaignOutcomes(id: string, limit: number): Promise<CampaignOutcomes> {
    return campaignSql.campaignOutcomes(this.c, id, limit);
  }
  campaignReleasesSince(id: string, since: number): Promise<number> {
    return campaignSql.campaignReleasesSince(this.c, id, since);
  }
  pendingCampaignTargets(id: string, limit: number): Promise<CampaignTargetRow[]> {
    return campaignSql.pendingCampaignTargets(this.c, id, limit);
  }
  settleCampaignTarget(id: string, cardId: string, st: { state: 'released' | 'skipped'; jobId?: string | null; at: number; note?: string | null }): Promise<boolean> {
    return campaignSql.settleCampaignTarget(this.c, id, cardId, st);
  }
  skipPendingCampaignTargets(id: string, note: string): Promise<number> {
    return campaignSql.skipPendingCampaignTargets(this.c, id, note);
  }
  cancelQueuedCampaignJobs(id: string, now: number): Promise<number> {
    return campaignSql.cancelQueuedCampaignJobs(this.c, id, now);
  }
  campaignTargets(id: string, afterOrd: number, limit: number): Promise<CampaignTargetRow[]> {
    return campaignSql.campaignTargets(this.c, id, afterOrd, limit);
  }
  async campaignJobs(id: string, afterSeq: number | null, limit: number): Promise<JobRow[]> {
    return (await campaignSql.campaignJobRows(this.c, id, afterSeq, limit)).map(jobRow);
  }

  // scale (issue #17, store/expiring.ts)
  listExpiringCertificates(from: number, before: number, after: ExpiringCursor | null, limit: number): Promise<ExpiringCertificate[]> {
    return listExpiringCertificates(this.c, from, before, after, limit);
  }

  // enrolment throughput (issue #17, store/enrol-batch.ts)
  openEnrolments(items: readonly NewEnrolment[]): Promise<(EnrolmentRow | null)[]> {
    // One statement: PostgreSQL runs it on any pooled connection (store/enrol-batch-pg.ts: arrays, a
    // named prepared statement); SQLite's RETURNING must go to the writer.
    if (this.driver.dialect.name === 'postgres') return enrolBatchPg.openEnrolmentsPg(this.c, items);
    if (this.conn) return enrolBatch.openEnrolments(this.c, this.driver.dialect, items);
    return this.inTx((t) => enrolBatch.openEnrolments(t.c, this.driver.dialect, items));
  }
  persistEnrolments(items: readonly EnrolmentPersist[]): Promise<EnrolmentPersistOutcome[]> {
    // PostgreSQL: ONE statement, atomic by itself: no BEGIN/COMMIT round trips (store/enrol-batch-pg.ts)
    if (this.driver.dialect.name === 'postgres') return enrolBatchPg.persistEnrolmentsPg(this.c, items);
    return this.inTx((t) => enrolBatch.persistEnrolments(t.c, this.driver.dialect, items));
  }

  // expiring cards (issue #17, store/expiring-cards.ts)
  async listExpiringCards(filter: ExpiringCardsFilter, after: ExpiringCardsCursor | null, limit: number): Promise<ExpiringCard[]> {
    return (await listExpiringCards(this.c, this.sql, filter, after, limit)).map((r) => ({ card: cardRow(r.row), notAfter: r.notAfter }));
  }

  // enrolment reads in batches (issue #17, enrolments/s; store/enrol-reads.ts)
  async cardsByUids(uids: readonly Uint8Array[]): Promise<(CardRow | null)[]> {
    return (await enrolReads.cardsByUids(this.c, this.driver.dialect, uids)).map((r) => (r ? cardRow(r) : null));
  }
  async enrolmentsByNonceHashes(hashes: readonly Uint8Array[]): Promise<(EnrolmentRow | null)[]> {
    return (await enrolReads.enrolmentsByNonceHashes(this.c, this.driver.dialect, hashes)).map((r) => (r ? enrolmentRow(r) : null));
  }

  // enrolment reads, third round (issue #17, enrolments/s; store/enrol-reads.ts)
  async cardsAndEnrolments(keys: readonly { readonly uid: Uint8Array; readonly nonceHash: Uint8Array }[]): Promise<{ card: CardRow | null; enrolment: EnrolmentRow | null }[]> {
    return (await enrolReads.cardsAndEnrolments(this.c, this.driver.dialect, keys)).map((r) => ({ card: r.card ? cardRow(r.card) : null, enrolment: r.enrolment ? enrolmentRow(r.enrolment) : null }));
  }
}
