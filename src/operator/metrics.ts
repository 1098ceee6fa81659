/**
 * operator/metrics: the operator's Prometheus metrics (prom-client), one registry per operator
 * instance (so tests may run several). Gauges of cards by lifecycle, jobs by status, enrolments by
 * result and open findings by audit check are read from the store at scrape time (one GROUP BY
 * each), never on a request's path. imports store/types, audits/types and prom-client.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { OperatorStore } from './store/types.js';
import { CHECK_NAMES } from './audits/types.js';

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'route'>;
  readonly certificatesIssued: Counter;
  readonly enrolmentRefusals: Counter<'code'>;
  readonly attestationsVerified: Counter<'chain'>;
  readonly crlNumber: Gauge;
  readonly crlBuildSeconds: Histogram;
  readonly jobsFinished: Counter<'kind' | 'status'>;

  constructor(store: OperatorStore, opts: { defaultMetrics?: boolean } = {}) {
    const r = this.registry;
    if (opts.defaultMetrics) collectDefaultMetrics({ register: r, prefix: 'setls_operator_' });
    this.httpRequests = new Counter({ name: 'setls_operator_http_requests_total', help: 'API requests', labelNames: ['method', 'route', 'status'], registers: [r] });
    this.httpDuration = new Histogram({
      name: 'setls_operator_http_request_duration_seconds',
      help: 'API request duration',
      labelNames: ['route'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [r],
    });
    this.certificatesIssued = new Counter({ name: 'setls_operator_certificates_issued_total', help: 'card certificates issued', registers: [r] });
    this.enrolmentRefusals = new Counter({ name: 'setls_operator_enrolment_refusals_total', help: 'enrolments refused, by code', labelNames: ['code'], registers: [r] });
    this.attestationsVerified = new Counter({
      name: 'setls_operator_attestations_verified_total',
      help: "attestations verified at enrolment, by how the certificate's chain was established: manifest (what manifest import verified, re-evaluated) or full (parsed and checked again)",
      labelNames: ['chain'],
      registers: [r],
    });
    this.crlNumber = new Gauge({ name: 'setls_operator_crl_number', help: 'cRLNumber of the CRL served', registers: [r] });
    this.crlBuildSeconds = new Histogram({ name: 'setls_operator_crl_build_seconds', help: 'revocation to CRL stored', buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 2], registers: [r] });
    this.jobsFinished = new Counter({ name: 'setls_operator_jobs_finished_total', help: 'jobs finished, by kind and status', labelNames: ['kind', 'status'], registers: [r] });
    new Gauge({
      name: 'setls_operator_cards',
      help: 'cards by lifecycle state',
      labelNames: ['state'],
      registers: [r],
      async collect() {
        this.reset();
        for (const [state, n] of Object.entries(await store.countCardsByLifecycle())) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'setls_operator_jobs',
      help: 'jobs by status',
      labelNames: ['status'],
      registers: [r],
      async collect() {
        this.reset();
        for (const [status, n] of Object.entries(await store.countJobsByStatus())) this.set({ status }, n);
      },
    });
    new Gauge({
      name: 'setls_operator_enrolments',
      help: 'enrolments by mode (admin job / est) and result (open: nonce issued, not used yet; succeeded; refused)',
      labelNames: ['mode', 'result'],
      registers: [r],
      async collect() {
        this.reset();
        for (const e of await store.countEnrolments()) this.set({ mode: e.mode, result: e.status }, e.count);
      },
    });
    new Gauge({
      name: 'setls_operator_findings_open',
      help: 'open audit findings by check',
      labelNames: ['check'],
      registers: [r],
      async collect() {
        this.reset();
        const open = await store.countOpenFindingsByCheck();
        for (const check of new Set([...CHECK_NAMES, ...Object.keys(open)])) this.set({ check }, open[check] ?? 0);
      },
    });
  }
}
