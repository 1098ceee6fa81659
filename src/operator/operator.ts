/**
 * operator/operator: one opened operator state folder — the store, the issuing CA (key from its
 * file), the configuration, the trusted manufacturer CAs, and the services built on them
 * (enrolment, revocation/CRL, job runner, metrics). What `serve`, the CLI and tests open.
 * imports store/, pki/, jobs/, keys/, services/, metrics, paths, errors.
 */
import { IssuerPool } from './pki/issuer-pool.js';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditService, auditConfigOf } from './audits/index.js';
import { CampaignEngine } from './campaigns/engine.js';
import { OpError, OpErrorCode } from './errors.js';
import { JobRunner, type RunnerLog } from './jobs/runner.js';
import { readSecretFile } from './keys/secret-files.js';
import { OperatorMetrics } from './metrics.js';
import { crlUrlOf, operatorPaths, readConfig, storeTargetOf, type OperatorConfig, type OperatorPaths } from './paths.js';
import { DefaultAttestationVerifier, type AttestationVerifier } from './pki/attestation.js';
import { ISD_ATTESTATION_FORMAT } from './pki/isd-attestation.js';
import { verifyChain } from './pki/chain.js';
import { EnrolmentService } from './pki/enrolment.js';
import { OperatorCa } from './pki/issuing-ca.js';
import { RevocationService } from './pki/revocation.js';
import { DEFAULT_TRUST_TTL_MS, TrustedCasCache } from './pki/trust-cache.js';
import { fingerprintHex, fromPemAll, toPem } from './pki/x509.js';
import { isPgUrl, openStore, redactStoreUrl } from './store/index.js';
import type { ManufacturerCaRow, OperatorStore } from './store/types.js';
import { X509Certificate } from 'node:crypto';

export interface OpenOptions {
  readonly dir?: string;
  /** The store: a postgres:// URL or a SQLite file (default: paths.storeTargetOf). */
  readonly store?: string;
  readonly now?: () => number;
  /** Attestation verifier (default: the security domain's E0 statements, pki/isd-attestation.ts). */
  readonly verifier?: AttestationVerifier;
  /** Overrides the configured public URL (and so the CRL URL in new certificates). */
  readonly publicUrl?: string;
  readonly log?: RunnerLog;
  readonly runner?: { leaseMs?: number; pollMs?: number; concurrency?: number; owner?: string };
  /** Campaign driver tuning (campaigns/engine.ts). */
  readonly campaigns?: { tickMs?: number; pokeDelayMs?: number };
  readonly defaultMetrics?: boolean;
  /** Issuance worker threads (pki/issuer-pool.ts; default SETLS_OPERATOR_ISSUER_WORKERS, else 0 = in this thread). */
  readonly issuerWorkers?: number;
  /** How long the enrolment may reuse the trusted manufacturer CAs it read (pki/trust-cache.ts;
   *  default 1000 ms; 0 = read at every enrolment). Changes made through this process count at once. */
  readonly trustCacheMs?: number;
}

export class Operator {
  readonly enrolment: EnrolmentService;
  readonly revocation: RevocationService;
  readonly runner: JobRunner;
  /** Campaigns: the rollout driver (started by serve with the runner) and `on('progress', view)`. */
  readonly campaigns: CampaignEngine;
  readonly metrics: OperatorMetrics;
  /** The fleet audits (findings): run on demand (API, CLI) and periodically by `serve`. */
  readonly audits: AuditService;
  /** The URL the API listens on (set by the server), used when no public URL is configured. */
  listeningUrl: string | undefined;
  /** CSR checks and issuance in worker threads, when `issuerWorkers` > 0. */
  readonly issuerPool: IssuerPool | undefined;
  /** The trusted manufacturer CAs as the enrolment reads them (at most once per trustCacheMs). */
  readonly trustedCas: TrustedCasCache;
  private constructor(
    readonly paths: OperatorPaths,
    readonly config: OperatorConfig,
    readonly store: OperatorStore,
    readonly ca: OperatorCa,
    readonly caId: string,
    readonly now: () => number,
    opts: OpenOptions,
  ) {
    this.metrics = new OperatorMetrics(store, { defaultMetrics: opts.defaultMetrics });
    const workers = opts.issuerWorkers ?? Number(process.env['SETLS_OPERATOR_ISSUER_WORKERS'] ?? 0);
    if (Number.isInteger(workers) && workers > 0) {
      this.issuerPool = new IssuerPool({ size: workers, ...ca.templateMaterial(), fallbackIssue: (req) => ca.issue(req) });
    }
    this.trustedCas = new TrustedCasCache(async () => (await store.listManufacturerCas()).map((m) => m.certDer), opts.trustCacheMs ?? DEFAULT_TRUST_TTL_MS, now);
    this.enrolment = new EnrolmentService({
      ...(this.issuerPool ? { pki: this.issuerPool } : {}),
      store,
      ca,
      caId,
      verifier: opts.verifier ?? new DefaultAttestationVerifier(ISD_ATTESTATION_FORMAT),
      trustedManufacturerCas: () => this.trustedCas.get(),
      crlUrl: () => crlUrlOf(this.config, this.listeningUrl),
      defaultDays: config.certificateDays,
      defaultDnsNames: config.defaultDnsNames,
      defaultIpAddresses: config.defaultIpAddresses,
      now,
      onRefusal: (code) => this.metrics.enrolmentRefusals.inc({ code }),
      onAttestationVerified: (chain) => this.metrics.attestationsVerified.inc({ chain }),
    });
    this.revocation = new RevocationService({
      store,
      ca,
      caId,
      crlValidityMs: Math.min(24, config.crlHours) * 3600 * 1000,
      now,
      onCrl: (info) => {
        this.metrics.crlNumber.set(info.number);
        this.metrics.crlBuildSeconds.observe(Math.max(0, (now() - info.thisUpdate) / 1000));
      },
    });
    this.runner = new JobRunner({
      store,
      now,
      log: opts.log,
      ...opts.runner,
      onFinish: (job, status) => {
        this.metrics.jobsFinished.inc({ kind: job.kind, status });
        if (job.campaignId) this.campaigns.poke();
      },
      recordOutcome: (job, write, failed) => this.campaigns.recordOutcome(job, write, failed),
    });
    this.audits = new AuditService({ store, now, config: auditConfigOf((config as { audits?: unknown }).audits), ...(opts.log ? { log: opts.log } : {}) });
    this.campaigns = new CampaignEngine({ store, now, log: opts.log, ...opts.campaigns, onRelease: () => this.runner.poke() });
  }

  /** Opens an initialised operator folder (ERR_OP_STATE_MISSING when `operator init` never ran). */
  static async open(opts: OpenOptions = {}): Promise<Operator> {
    const paths = operatorPaths(opts.dir);
    let config = readConfig(paths);
    const target = storeTargetOf(paths, config, opts.store);
    if ((!isPgUrl(target) && !existsSync(target)) || !existsSync(paths.caCert)) {
      throw new OpError(OpErrorCode.stateMissing, `no operator in ${paths.dir}: run 'setls operator init --dir ${paths.dir}' first`);
    }
    if (opts.publicUrl) config = { ...config, publicUrl: opts.publicUrl };
    // LISTEN needs a session: behind PgBouncer in transaction mode, a direct URL for it (docs/operator-scale.md);
    // PgBouncer < 1.21 in transaction mode also needs SETLS_OPERATOR_PG_PREPARE=off (no named prepared statements)
    const listenUrl = process.env['SETLS_OPERATOR_LISTEN_URL'];
    const prepare = process.env['SETLS_OPERATOR_PG_PREPARE'] !== 'off';
    const store = await openStore(target, { ...(listenUrl ? { listenUrl } : {}), prepare });
    try {
      const row = await store.caByRole('issuing');
      if (!row) throw new OpError(OpErrorCode.stateMissing, `the store ${redactStoreUrl(target)} has no issuing CA`);
      const ca = await OperatorCa.load(readFileSync(paths.caCert, 'utf8'), readSecretFile(paths.caKey).toString('utf8'));
      if (fingerprintHex(ca.certDer) !== fingerprintHex(row.certDer)) {
        throw new OpError(OpErrorCode.keyFile, `${paths.caCert} is not the issuing CA recorded in the store`);
      }
      const op = new Operator(paths, config, store, ca, row.id, opts.now ?? Date.now, opts);
      await op.syncManufacturerDir();
      return op;
    } catch (e) {
      await store.close();
      throw e;
    }
  }

  /** Adds a manufacturer CA certificate (PEM) to the trusted set (table + D/manufacturers/). */
  async trustManufacturer(pem: string, name?: string): Promise<{ row: ManufacturerCaRow; added: boolean }[]> {
    const ders = fromPemAll(pem);
    if (ders.length === 0) throw new OpError(OpErrorCode.badRequest, 'no PEM certificate found');
    const out = [];
    for (const der of ders) {
      const c = new X509Certificate(der);
      if (!c.ca) throw new OpError(OpErrorCode.badRequest, `${c.subject.replace(/\n/g, ', ')} is not a CA certificate`);
      // A trust anchor must at least verify itself when self-signed, and be valid now.
      try {
        if (c.checkIssued(c)) verifyChain(der, [], [der], this.now());
      } catch (e) {
        throw new OpError(OpErrorCode.badRequest, `manufacturer CA refused: ${(e as Error).message}`);
      }
      const fp = fingerprintHex(der);
      const row: ManufacturerCaRow = {
        id: randomUUID(),
        name: name ?? (c.subject.split('\n').find((l) => l.startsWith('CN='))?.slice(3) || fp.slice(0, 16)),
        certDer: der,
        fingerprint: fp,
        notAfter: Date.parse(c.validTo),
        createdAt: this.now(),
      };
      const added = await this.store.addManufacturerCa(row);
      this.trustedCas.invalidate();
      const file = join(this.paths.manufacturersDir, `${fp.slice(0, 32)}.pem`);
      if (!existsSync(file)) writeFileSync(file, toPem(der, 'CERTIFICATE'));
      const stored = (await this.store.listManufacturerCas()).find((m) => m.fingerprint === fp)!;
      out.push({ row: stored, added });
    }
    return out;
  }

  /** PEM files dropped into D/manufacturers/ are trusted too. */
  private async syncManufacturerDir(): Promise<void> {
    if (!existsSync(this.paths.manufacturersDir)) return;
    const known = new Set((await this.store.listManufacturerCas()).map((m) => m.fingerprint));
    for (const f of readdirSync(this.paths.manufacturersDir).filter((n) => n.endsWith('.pem') || n.endsWith('.crt'))) {
      const pem = readFileSync(join(this.paths.manufacturersDir, f), 'utf8');
      if (fromPemAll(pem).every((d) => known.has(fingerprintHex(d)))) continue;
      await this.trustManufacturer(pem);
    }
  }

  async close(): Promise<void> {
    await this.audits.stop();
    await this.campaigns.stop();
    await this.runner.stop();
    await this.issuerPool?.close();
    await this.store.close();
  }
}
