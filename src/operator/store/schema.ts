/**
 * operator/store/schema: the versioned migrations of the operator database, written once with
 * dialect placeholders ({bytes}, {int64}, {json}, {text}, {serial_pk}: store/driver.ts) so SQLite
 * and PostgreSQL run the same schema. imports store/driver.
 *
 * Rules: a released migration never changes; a new one is appended with the next version. The
 * `schema_migrations` table records what ran; a database newer than this code is refused.
 * Data model: design brief §8.4 (the tables this issue needs; findings and campaigns: issue #16).
 */
import type { SqlDriver } from './driver.js';
import { ddl } from './driver.js';
import { OpError, OpErrorCode } from '../errors.js';

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'registry, pki, jobs, tokens',
    sql: `
CREATE TABLE meta (
  key {text} PRIMARY KEY,
  value {text} NOT NULL
);
CREATE TABLE manufacturer_ca (
  id {text} PRIMARY KEY,
  name {text} NOT NULL,
  cert_der {bytes} NOT NULL,
  fingerprint {text} NOT NULL UNIQUE,
  not_after {int64} NOT NULL,
  created_at {int64} NOT NULL
);
CREATE TABLE ca (
  id {text} PRIMARY KEY,
  role {text} NOT NULL UNIQUE,
  cert_der {bytes} NOT NULL,
  key_ref {text} NOT NULL,
  not_after {int64} NOT NULL,
  crl_number {int64} NOT NULL DEFAULT 0,
  crl_der {bytes},
  crl_built_number {int64} NOT NULL DEFAULT 0,
  crl_this_update {int64},
  crl_next_update {int64},
  created_at {int64} NOT NULL
);
CREATE TABLE master_key (
  id {text} PRIMARY KEY,
  purpose {text} NOT NULL,
  version {int64} NOT NULL,
  kcv {text} NOT NULL,
  source {text} NOT NULL,
  created_at {int64} NOT NULL,
  UNIQUE (purpose, version)
);
CREATE TABLE manifest_batch (
  id {text} PRIMARY KEY,
  manufacturer_ca_id {text} NOT NULL REFERENCES manufacturer_ca(id),
  name {text} NOT NULL,
  count {int64} NOT NULL,
  imported_by {text} NOT NULL,
  imported_at {int64} NOT NULL
);
CREATE TABLE card (
  id {text} PRIMARY KEY,
  uid {bytes} NOT NULL UNIQUE,
  batch_id {text} REFERENCES manifest_batch(id),
  attest_cert_der {bytes} NOT NULL,
  attest_spki_sha256 {bytes} NOT NULL,
  lifecycle {text} NOT NULL,
  kvn {int64} NOT NULL,
  transport_key_id {text},
  seq_counter {int64},
  labels {json} NOT NULL,
  profile {json} NOT NULL,
  host_id {text},
  last_seen_at {int64},
  created_at {int64} NOT NULL,
  updated_at {int64} NOT NULL
);
CREATE INDEX card_lifecycle_uid ON card (lifecycle, uid);
CREATE TABLE identity (
  id {text} PRIMARY KEY,
  card_id {text} NOT NULL REFERENCES card(id),
  slot {int64} NOT NULL,
  alg {text} NOT NULL,
  spki_der {bytes} NOT NULL,
  spki_sha256 {bytes} NOT NULL UNIQUE,
  state {text} NOT NULL,
  attested_at {int64},
  created_at {int64} NOT NULL
);
CREATE INDEX identity_card ON identity (card_id);
CREATE TABLE enrolment (
  id {text} PRIMARY KEY,
  card_id {text} NOT NULL REFERENCES card(id),
  job_id {text},
  mode {text} NOT NULL,
  nonce_hash {bytes} NOT NULL UNIQUE,
  status {text} NOT NULL,
  error_code {text},
  expires_at {int64} NOT NULL,
  started_at {int64} NOT NULL,
  finished_at {int64}
);
CREATE INDEX enrolment_card ON enrolment (card_id);
CREATE TABLE certificate (
  serial {bytes} PRIMARY KEY,
  identity_id {text} NOT NULL REFERENCES identity(id),
  card_id {text} NOT NULL REFERENCES card(id),
  ca_id {text} NOT NULL REFERENCES ca(id),
  job_id {text},
  enrolment_id {text} REFERENCES enrolment(id),
  subject {text} NOT NULL,
  san {json} NOT NULL,
  not_before {int64} NOT NULL,
  not_after {int64} NOT NULL,
  der {bytes} NOT NULL,
  status {text} NOT NULL,
  revoked_at {int64},
  reason {text},
  created_at {int64} NOT NULL
);
CREATE INDEX certificate_status_not_after ON certificate (status, not_after);
CREATE INDEX certificate_card ON certificate (card_id);
CREATE INDEX certificate_job ON certificate (job_id);
CREATE TABLE job (
  id {text} PRIMARY KEY,
  seq {int64} NOT NULL UNIQUE,
  card_id {text} NOT NULL REFERENCES card(id),
  campaign_id {text},
  kind {text} NOT NULL,
  params {json} NOT NULL,
  status {text} NOT NULL,
  attempt {int64} NOT NULL DEFAULT 0,
  max_attempts {int64} NOT NULL,
  lease_owner {text},
  lease_until {int64},
  not_before {int64} NOT NULL,
  deadline_at {int64},
  idempotency_key {text} UNIQUE,
  progress {json} NOT NULL,
  result {json},
  error_code {text},
  error_message {text},
  created_by {text},
  created_at {int64} NOT NULL,
  updated_at {int64} NOT NULL,
  started_at {int64},
  finished_at {int64}
);
CREATE INDEX job_status_seq ON job (status, seq);
CREATE INDEX job_card_seq ON job (card_id, seq);
CREATE TABLE admin_session (
  id {text} PRIMARY KEY,
  job_id {text} NOT NULL REFERENCES job(id),
  card_id {text} NOT NULL REFERENCES card(id),
  scp {text} NOT NULL,
  kvn {int64} NOT NULL,
  security_level {int64} NOT NULL,
  seq_counter {int64},
  step {int64} NOT NULL,
  transcript_sha256 {bytes},
  error_sw {text},
  started_at {int64} NOT NULL,
  finished_at {int64}
);
CREATE INDEX admin_session_job ON admin_session (job_id);
CREATE TABLE host (
  id {text} PRIMARY KEY,
  name {text} NOT NULL,
  credential_hash {bytes},
  last_ip {text},
  last_seen_at {int64},
  created_at {int64} NOT NULL
);
CREATE TABLE api_token (
  id {text} PRIMARY KEY,
  name {text} NOT NULL,
  role {text} NOT NULL,
  secret_hash {bytes} NOT NULL,
  created_at {int64} NOT NULL,
  last_used_at {int64},
  revoked_at {int64}
);
CREATE TABLE idempotency (
  principal {text} NOT NULL,
  key {text} NOT NULL,
  request_hash {bytes} NOT NULL,
  status {int64} NOT NULL,
  response {json},
  created_at {int64} NOT NULL,
  PRIMARY KEY (principal, key)
);
CREATE TABLE event (
  id {serial_pk},
  at {int64} NOT NULL,
  actor {text} NOT NULL,
  kind {text} NOT NULL,
  card_id {text},
  subject {text},
  details {json} NOT NULL
);
CREATE INDEX event_card ON event (card_id, id);
CREATE TABLE card_audit_entry (
  card_id {text} NOT NULL REFERENCES card(id),
  seq {int64} NOT NULL,
  type {text} NOT NULL,
  body {bytes} NOT NULL,
  prev_hash {bytes} NOT NULL,
  received_at {int64} NOT NULL,
  PRIMARY KEY (card_id, seq)
);
CREATE TABLE card_audit_head (
  card_id {text} PRIMARY KEY REFERENCES card(id),
  seq {int64} NOT NULL,
  head_hash {bytes} NOT NULL,
  signature {bytes} NOT NULL,
  verified {int64} NOT NULL,
  received_at {int64} NOT NULL
);
`,
  },
  {
    version: 2,
    name: 'executors: per-card counters, identity retirement, agent hosts, audit log columns',
    sql: `
ALTER TABLE card ADD COLUMN deny_list_number {int64} NOT NULL DEFAULT 0;
ALTER TABLE card ADD COLUMN time_anchor_counter {int64} NOT NULL DEFAULT 0;
ALTER TABLE identity ADD COLUMN delete_after {int64};
ALTER TABLE identity ADD COLUMN updated_at {int64};
CREATE INDEX identity_delete_after ON identity (delete_after);
ALTER TABLE host ADD COLUMN revoked_at {int64};
ALTER TABLE card_audit_head ADD COLUMN time {int64} NOT NULL DEFAULT 0;
`,
  },
  {
    // campaigns (issue #16): a campaign, its targets (one row per card, UNIQUE: a card is targeted
    // once and released — given its job — once; job_id is set in the transaction that creates the
    // job), the persisted rollout bucket (next_release_at) and the abort snapshot.
    version: 3,
    name: 'campaigns: campaign, campaign_target',
    sql: `
CREATE TABLE campaign (
  id {text} PRIMARY KEY,
  name {text} NOT NULL,
  kind {text} NOT NULL,
  job_kind {text} NOT NULL,
  selector {json} NOT NULL,
  params {json} NOT NULL,
  rate_per_minute {int64} NOT NULL,
  abort_rule {json} NOT NULL,
  state {text} NOT NULL,
  abort_reason {text},
  abort_stats {json},
  next_release_at {int64} NOT NULL,
  created_by {text} NOT NULL,
  created_at {int64} NOT NULL,
  updated_at {int64} NOT NULL,
  finished_at {int64}
);
CREATE INDEX campaign_state_created ON campaign (state, created_at);
CREATE INDEX campaign_created ON campaign (created_at, id);
CREATE TABLE campaign_target (
  campaign_id {text} NOT NULL REFERENCES campaign(id),
  card_id {text} NOT NULL REFERENCES card(id),
  ord {int64} NOT NULL,
  state {text} NOT NULL,
  job_id {text} UNIQUE,
  released_at {int64},
  note {text},
  PRIMARY KEY (campaign_id, card_id)
);
CREATE INDEX campaign_target_state_ord ON campaign_target (campaign_id, state, ord);
CREATE INDEX campaign_target_released ON campaign_target (campaign_id, released_at);
CREATE INDEX job_campaign_status ON job (campaign_id, status);
`,
  },
  {
    version: 4,
    name: 'audits: findings (one live finding per check and subject) and the audit run lease',
    sql: `
CREATE TABLE finding (
  id {text} PRIMARY KEY,
  check_name {text} NOT NULL,
  card_id {text} REFERENCES card(id),
  subject {text} NOT NULL,
  severity {text} NOT NULL,
  status {text} NOT NULL,
  detail {json} NOT NULL,
  first_seen_at {int64} NOT NULL,
  last_seen_at {int64} NOT NULL,
  resolved_at {int64},
  resolution {text},
  resolved_by {text},
  suppressing {int64} NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX finding_live ON finding (check_name, subject) WHERE status = 'open' OR suppressing = 1;
CREATE INDEX finding_status_check ON finding (status, check_name);
CREATE INDEX finding_card ON finding (card_id, first_seen_at);
CREATE INDEX finding_first_seen ON finding (first_seen_at, id);
CREATE TABLE audit_lease (
  name {text} PRIMARY KEY,
  owner {text} NOT NULL,
  lease_until {int64} NOT NULL,
  last_run_at {int64} NOT NULL DEFAULT 0
);
`,
  },
  {
    version: 5,
    name: 'EST enrolment credentials and certificates not bound to a card',
    sql: `
CREATE TABLE est_credential (
  id {text} PRIMARY KEY,
  name {text} NOT NULL,
  secret_hash {bytes} NOT NULL,
  salt {bytes} NOT NULL,
  kdf {text} NOT NULL,
  uses_left {int64} NOT NULL,
  expires_at {int64} NOT NULL,
  profile {json} NOT NULL,
  created_by {text} NOT NULL,
  created_at {int64} NOT NULL,
  last_used_at {int64},
  revoked_at {int64}
);
CREATE TABLE est_certificate (
  serial {bytes} PRIMARY KEY,
  ca_id {text} NOT NULL REFERENCES ca(id),
  credential_id {text} REFERENCES est_credential(id),
  replaces {bytes},
  subject {text} NOT NULL,
  san {json} NOT NULL,
  spki_sha256 {bytes} NOT NULL,
  alg {text} NOT NULL,
  not_before {int64} NOT NULL,
  not_after {int64} NOT NULL,
  der {bytes} NOT NULL,
  status {text} NOT NULL,
  revoked_at {int64},
  reason {text},
  created_at {int64} NOT NULL
);
CREATE INDEX est_certificate_status ON est_certificate (ca_id, status, not_after);
CREATE INDEX est_certificate_created ON est_certificate (created_at, serial);
`,
  },
  {
    version: 6,
    name: 'scale: good certificates by card and not_after (expiring-soon listings at 10^6 cards)',
    // listCards({ expiringBefore }) probes "a good certificate of this card ending before T" once per
    // card in uid order: a partial index on (card_id, not_after) answers each probe from the index
    // alone (docs/operator-scale.md, measured with bench/scale.ts).
    sql: `
CREATE INDEX certificate_good_card_not_after ON certificate (card_id, not_after) WHERE status = 'good';
`,
  },
  {
    version: 7,
    name: 'console: (uid, labels) index, so a label filter of the fleet page scans an index, not the card rows',
    sql: `
CREATE INDEX card_uid_labels ON card (uid, labels);
`,
  },
  {
    version: 8,
    name: 'agent routing: the operator node a device host polls',
    sql: `
ALTER TABLE host ADD COLUMN node_id {text};
ALTER TABLE host ADD COLUMN node_seen_at {int64};
`,
  },
  {
    version: 10,
    name: 'expiring cards: good certificates by (not_after, card_id), the order of the expiring-cards listing',
    // store/expiring-cards.ts walks this range soonest first and stops after a page: the order
    // (not_after, card_id) comes from the index itself, no sort; serial makes it covering (the
    // per-row "earlier certificate of this card" probe compares serials), which is also what makes
    // PostgreSQL's planner prefer it to (status, not_after) + a sort (docs/operator-scale.md).
    sql: `
CREATE INDEX certificate_good_not_after_card ON certificate (not_after, card_id, serial) WHERE status = 'good';
`,
  },
  {
    version: 11,
    name: 'cards: what manifest import verified about the attestation certificate (its key, the anchor, the path validity)',
    // pki/attestation.ts verifyKnown: an enrolment whose evidence carries exactly the card's
    // attestation certificate re-evaluates the anchor's trust and the validity from these instead of
    // parsing the certificate and checking its path again (issue #17, enrolments/s). NULL for cards
    // imported before: they take the full check.
    sql: `
ALTER TABLE card ADD COLUMN attest_key_spki {bytes};
ALTER TABLE card ADD COLUMN attest_anchor_sha256 {bytes};
ALTER TABLE card ADD COLUMN attest_valid_from {int64};
ALTER TABLE card ADD COLUMN attest_valid_to {int64};
`,
  },
];

// Versions strictly increase (the runner applies them in this order and skips those ≤ the database's).
for (let i = 1; i < MIGRATIONS.length; i++) {
  if (MIGRATIONS[i]!.version <= MIGRATIONS[i - 1]!.version) throw new Error(`schema: migration ${MIGRATIONS[i]!.version} listed after ${MIGRATIONS[i - 1]!.version}`);
}
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** Runs the migrations the database has not seen yet; returns the version now in force. */
export async function migrate(driver: SqlDriver, now = Date.now()): Promise<number> {
  const lock = driver.dialect.migrationLock;
  await driver.tx(async (c) => {
    // CREATE TABLE IF NOT EXISTS is not safe against a concurrent one on PostgreSQL: under the lock
    if (lock) await c.get(lock);
    await c.run(ddl(driver.dialect, 'CREATE TABLE IF NOT EXISTS schema_migrations (version {int64} PRIMARY KEY, name {text} NOT NULL, applied_at {int64} NOT NULL)'));
  });
  const row = await driver.get('SELECT MAX(version) AS v FROM schema_migrations');
  const current = Number(row?.['v'] ?? 0);
  if (current > SCHEMA_VERSION) {
    throw new OpError(OpErrorCode.schemaVersion, `the database has schema version ${current}, newer than this program's ${SCHEMA_VERSION}: upgrade setls`);
  }
  for (const m of MIGRATIONS) {
    if (m.version <= current) continue;
    await driver.tx(async (c) => {
      if (lock) await c.get(lock);
      // Another process may have run it meanwhile (the check and the DDL share this transaction).
      const again = await c.get('SELECT MAX(version) AS v FROM schema_migrations');
      if (Number(again?.['v'] ?? 0) >= m.version) return;
      // DDL statement by statement inside one transaction (SQLite and PostgreSQL both have transactional DDL).
      for (const stmt of ddl(driver.dialect, m.sql).split(';').map((s) => s.trim()).filter(Boolean)) await c.run(stmt);
      await c.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [m.version, m.name, now]);
    });
  }
  return SCHEMA_VERSION;
}
