/**
 * operator/api/routes: the REST endpoints under /v1 (plus /healthz and /metrics) — what each does,
 * who may call it, whether it creates work (then `Idempotency-Key` applies). imports the operator's
 * services, api/http, api/views, api/pagination, errors.
 */
import { fromHex, toHex } from '../../bytes/index.js';
import { hasRole, type Principal } from '../auth/tokens.js';
import { OpError, OpErrorCode } from '../errors.js';
import { isJobKind, JOB_SPECS } from '../jobs/kinds.js';
import type { Operator } from '../operator.js';
import { toPem } from '../pki/x509.js';
import { importManifest } from '../services/manifests.js';
import { createCardJob } from '../services/jobs.js';
import { openJobSecret } from '../keys/job-secrets.js';
import { CardLifecycle, JobStatus, type CardRow, type JsonObject, type Role } from '../store/types.js';
import { queryInt, queryTime, type Reply } from './http.js';
import { estRoutes } from './est-routes.js';
import { decodeCursor, DEFAULT_LIMIT, encodeCursor, MAX_LIMIT } from './pagination.js';
import { cardView, certificateView, identityView, jobView } from './views.js';
import { findingRoutes } from './finding-routes.js';
import { consoleRoutes } from './console-routes.js';
import { campaignRoutes } from './campaign-routes.js';
import { expiringCardsPage } from './expiring-routes.js';

export interface RouteRequest {
  readonly params: readonly string[];
  readonly query: URLSearchParams;
  readonly body: JsonObject;
  readonly principal: Principal | null;
  readonly accept: string;
  /** Scoped idempotency key (principal/key) or null. */
  readonly idempotencyKey: string | null;
}

export interface Route {
  readonly method: 'GET' | 'POST';
  readonly pattern: RegExp;
  readonly name: string;
  /** null: public. A role: the least role. 'per-kind': checked by the handler. */
  readonly role: Role | null | 'per-kind';
  /** POST that creates work: Idempotency-Key honoured. */
  readonly createsWork?: boolean;
  readonly bodyLimit?: number;
  /** An array body is accepted as `{ [arrayBodyKey]: array }`. */
  readonly arrayBodyKey?: string;
  readonly handler: (r: RouteRequest) => Promise<Reply>;
}

const UID = '([0-9a-fA-F]{2,64})';

function uidParam(s: string): Uint8Array {
  if (s.length % 2 !== 0) throw new OpError(OpErrorCode.badRequest, `'${s}' is not a card UID (hex)`);
  return fromHex(s.toLowerCase());
}

export function buildRoutes(op: Operator): Route[] {
  const store = op.store;
  const uidCache = async (ids: Iterable<string>): Promise<Map<string, Uint8Array>> => {
    const m = new Map<string, Uint8Array>();
    for (const id of new Set(ids)) {
      const c = await store.cardById(id);
      if (c) m.set(id, c.uid);
    }
    return m;
  };
  const cardOr404 = async (uidText: string): Promise<CardRow> => {
    const card = await store.cardByUid(uidParam(uidText));
    if (!card) throw new OpError(OpErrorCode.unknownCard, `no card ${uidText.toLowerCase()}`);
    return card;
  };

  return [
    ...campaignRoutes(op),
    {
      method: 'GET',
      pattern: /^\/healthz$/,
      name: 'healthz',
      role: null,
      handler: async () => ({ status: 200, body: { status: 'ok', schema: await store.schemaVersion(), store: store.dialect } }),
    },
    {
      method: 'GET',
      pattern: /^\/metrics$/,
      name: 'metrics',
      role: 'viewer',
      handler: async () => ({ status: 200, raw: { type: op.metrics.registry.contentType, data: await op.metrics.registry.metrics() } }),
    },
    {
      method: 'GET',
      pattern: /^\/v1\/ca\/cert$/,
      name: 'ca.cert',
      role: null,
      handler: async (r) => {
        const der = /application\/(pkix-cert|x-x509-ca-cert)/.test(r.accept);
        return der
          ? { status: 200, raw: { type: 'application/pkix-cert', data: Buffer.from(op.ca.certDer) }, headers: { 'cache-control': 'max-age=3600' } }
          : { status: 200, raw: { type: 'application/x-pem-file', data: toPem(op.ca.certDer, 'CERTIFICATE') }, headers: { 'cache-control': 'max-age=3600' } };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/ca\/crl$/,
      name: 'ca.crl',
      role: null,
      handler: async () => {
        const crl = (await op.revocation.current()) ?? (await op.revocation.regenerate());
        return {
          status: 200,
          raw: { type: 'application/pkix-crl', data: Buffer.from(crl.der) },
          headers: { 'cache-control': 'no-cache', 'last-modified': new Date(crl.thisUpdate).toUTCString(), 'x-crl-number': String(crl.number) },
        };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/manufacturers$/,
      name: 'manufacturers.list',
      role: 'viewer',
      handler: async () => ({
        status: 200,
        body: { items: (await store.listManufacturerCas()).map((m) => ({ id: m.id, name: m.name, sha256: m.fingerprint, notAfter: new Date(m.notAfter).toISOString() })) },
      }),
    },
    {
      method: 'POST',
      pattern: /^\/v1\/manifests$/,
      name: 'manifests.import',
      role: 'operator',
      createsWork: true,
      bodyLimit: 16 * 1024 * 1024,
      arrayBodyKey: 'cards',
      handler: async (r) => {
        const res = await importManifest(store, r.body, r.principal!.name, op.now());
        return { status: res.imported.length > 0 ? 201 : 200, body: { batchId: res.batchId, imported: res.imported, alreadyPresent: res.alreadyPresent, factsAdded: res.factsAdded } };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/cards$/,
      name: 'cards.list',
      role: 'viewer',
      handler: async (r) => {
        const state = r.query.get('state') ?? undefined;
        if (state !== undefined && !(Object.values(CardLifecycle) as string[]).includes(state)) {
          throw new OpError(OpErrorCode.badRequest, `state must be one of ${Object.values(CardLifecycle).join(', ')}`);
        }
        const label = r.query.get('label') ?? undefined;
        if (label !== undefined && !/^[A-Za-z0-9_.-]{1,64}(=.{0,256})?$/.test(label)) throw new OpError(OpErrorCode.badRequest, 'label must be key or key=value');
        const expiringBefore = queryTime(r.query, 'expiring_before');
        const limit = queryInt(r.query, 'limit', 1, MAX_LIMIT, DEFAULT_LIMIT);
        if (expiringBefore !== undefined) return { status: 200, body: await expiringCardsPage(store, { state, label, expiringBefore }, r.query.get('cursor'), limit) };
        const filter = { state, label, expiringBefore };
        const after = decodeCursor(r.query.get('cursor'), filter);
        if (after !== null && (typeof after !== 'string' || !/^([0-9a-f]{2})+$/.test(after))) throw new OpError(OpErrorCode.badCursor, 'invalid cursor');
        const rows = await store.listCards(
          { lifecycle: state as CardRow['lifecycle'] | undefined, label, expiringBefore },
          after === null ? null : fromHex(after as string),
          limit + 1,
        );
        const page = rows.slice(0, limit);
        const next = rows.length > limit ? encodeCursor(toHex(page[page.length - 1]!.uid), filter) : null;
        return { status: 200, body: { items: page.map(cardView), nextCursor: next } };
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/v1/cards/${UID}$`),
      name: 'cards.get',
      role: 'viewer',
      handler: async (r) => {
        const card = await cardOr404(r.params[0]!);
        const [identities, certificates, jobs, events] = await Promise.all([
          store.identitiesOfCard(card.id),
          store.certificatesOfCard(card.id),
          store.listJobs({ cardId: card.id }, null, 50),
          store.listEvents(card.id, 50),
        ]);
        return {
          status: 200,
          body: {
            ...cardView(card),
            identities: identities.map(identityView),
            certificates: certificates.map((c) => certificateView(c, card.uid)),
            jobs: jobs.map((j) => jobView(j, card.uid)),
            events: events.map((e) => ({ at: new Date(e.at).toISOString(), actor: e.actor, kind: e.kind, subject: e.subject, details: e.details })),
          },
        };
      },
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/v1/cards/${UID}/([a-z-]+)$`),
      name: 'cards.job',
      role: 'per-kind',
      createsWork: true,
      handler: async (r) => {
        const kind = r.params[1]!;
        if (!isJobKind(kind)) throw new OpError(OpErrorCode.notFound, `no action '${kind}' (actions: ${Object.keys(JOB_SPECS).join(', ')})`);
        const job = await createCardJob(store, { uid: uidParam(r.params[0]!), kind, body: r.body, principal: r.principal!, idempotencyKey: r.idempotencyKey, now: op.now() });
        op.runner.poke();
        const card = await store.cardById(job.cardId);
        return { status: 202, body: { job: jobView(job, card?.uid ?? null) }, headers: { location: `/v1/jobs/${job.id}` } };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/jobs\/([0-9a-f-]{36})$/,
      name: 'jobs.get',
      role: 'viewer',
      handler: async (r) => {
        const job = await store.jobById(r.params[0]!);
        if (!job) throw new OpError(OpErrorCode.unknownJob, `no job ${r.params[0]}`);
        const uids = await uidCache([job.cardId]);
        return { status: 200, body: { job: jobView(job, uids.get(job.cardId) ?? null) } };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/jobs\/([0-9a-f-]{36})\/secret$/,
      name: 'jobs.secret',
      role: 'operator',
      handler: async (r) => {
        const job = await store.jobById(r.params[0]!);
        if (!job) throw new OpError(OpErrorCode.unknownJob, `no job ${r.params[0]}`);
        const sealed = job.result?.['sealedPin'];
        if (job.status !== 'succeeded' || typeof sealed !== 'string') throw new OpError(OpErrorCode.secretUnavailable, `job ${job.id} holds no secret (${job.status})`);
        // Only the token that asked for the secret gets it; anyone else learns nothing more than "none".
        if (job.params['requestedBy'] !== r.principal!.tokenId) throw new OpError(OpErrorCode.secretUnavailable, `job ${job.id} holds no secret for this token`);
        return { status: 200, body: { job: job.id, pin: openJobSecret(op.paths.keysDir, job.id, sealed) }, headers: { 'cache-control': 'no-store' } };
      },
    },
    {
      method: 'POST',
      pattern: /^\/v1\/jobs\/([0-9a-f-]{36})\/cancel$/,
      name: 'jobs.cancel',
      role: 'operator',
      handler: async (r) => {
        const job = await store.jobById(r.params[0]!);
        if (!job) throw new OpError(OpErrorCode.unknownJob, `no job ${r.params[0]}`);
        if (!(await store.cancelJob(job.id, op.now()))) throw new OpError(OpErrorCode.cardState, `job ${job.id} is ${job.status}: only a queued job can be canceled`);
        const now = (await store.jobById(job.id))!;
        const uids = await uidCache([job.cardId]);
        return { status: 200, body: { job: jobView(now, uids.get(job.cardId) ?? null) } };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/jobs$/,
      name: 'jobs.list',
      role: 'viewer',
      handler: async (r) => {
        const cardText = r.query.get('card') ?? undefined;
        const status = r.query.get('status') ?? undefined;
        const kind = r.query.get('kind') ?? undefined;
        if (status !== undefined && !(Object.values(JobStatus) as string[]).includes(status)) {
          throw new OpError(OpErrorCode.badRequest, `status must be one of ${Object.values(JobStatus).join(', ')}`);
        }
        if (kind !== undefined && !isJobKind(kind)) throw new OpError(OpErrorCode.badRequest, `kind must be one of ${Object.keys(JOB_SPECS).join(', ')}`);
        let cardId: string | undefined;
        if (cardText !== undefined) {
          if (!/^([0-9a-fA-F]{2}){1,32}$/.test(cardText)) throw new OpError(OpErrorCode.badRequest, 'card must be a UID (hex)');
          cardId = (await cardOr404(cardText)).id;
        }
        const limit = queryInt(r.query, 'limit', 1, MAX_LIMIT, DEFAULT_LIMIT);
        const filter = { card: cardText?.toLowerCase(), status, kind };
        const after = decodeCursor(r.query.get('cursor'), filter);
        if (after !== null && typeof after !== 'number') throw new OpError(OpErrorCode.badCursor, 'invalid cursor');
        const rows = await store.listJobs({ cardId, status: status as JobStatus | undefined, kind }, after as number | null, limit + 1);
        const page = rows.slice(0, limit);
        const uids = await uidCache(page.map((j) => j.cardId));
        const next = rows.length > limit ? encodeCursor(page[page.length - 1]!.seq, filter) : null;
        return { status: 200, body: { items: page.map((j) => jobView(j, uids.get(j.cardId) ?? null)), nextCursor: next } };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/certificates\/([0-9a-fA-F:]{2,64})$/,
      name: 'certificates.get',
      role: 'viewer',
      handler: async (r) => {
        const serial = serialParam(r.params[0]!);
        const cert = await store.certificateBySerial(serial);
        if (!cert) throw new OpError(OpErrorCode.unknownCertificate, `no certificate with serial ${toHex(serial)}`);
        const uids = await uidCache([cert.cardId]);
        return { status: 200, body: { certificate: certificateView(cert, uids.get(cert.cardId) ?? null, true) } };
      },
    },
    {
      method: 'POST',
      pattern: /^\/v1\/certificates\/([0-9a-fA-F:]{2,64})\/revoke$/,
      name: 'certificates.revoke',
      role: 'operator',
      createsWork: true,
      handler: async (r) => {
        const serial = serialParam(r.params[0]!);
        for (const k of Object.keys(r.body)) if (k !== 'reason' && k !== 'cardAction') throw new OpError(OpErrorCode.badRequest, `unknown parameter '${k}' (allowed: reason, cardAction)`);
        const reason = r.body['reason'] ?? 'unspecified';
        if (typeof reason !== 'string') throw new OpError(OpErrorCode.badRequest, 'reason must be a string');
        const action = r.body['cardAction'];
        if (action !== undefined && action !== 'none' && action !== 'lock' && action !== 'rekey') throw new OpError(OpErrorCode.badRequest, 'cardAction must be none, lock or rekey');
        const { certificate, crl } = await op.revocation.revoke(serial, reason, r.principal!.name);
        const uids = await uidCache([certificate.cardId]);
        // What the card does about it (docs/operator.md, revocation policy): a certificate the card
        // serves (its identity is active) is replaced by a re-key unless told otherwise; `lock` stops
        // the card's TLS service instead; `none` leaves the card alone (relying parties read the CRL).
        const card = await store.cardById(certificate.cardId);
        const served = (await store.identitiesOfCard(certificate.cardId)).some((i) => i.id === certificate.identityId && i.state === 'active');
        let chosen: 'none' | 'lock' | 'rekey' = action ?? (served && card?.lifecycle === 'active' ? 'rekey' : 'none');
        if (chosen !== 'none' && (!card || !JOB_SPECS[chosen].states.includes(card.lifecycle))) chosen = 'none';
        let job = null;
        if (chosen !== 'none' && card) {
          const created = await createCardJob(store, {
            uid: card.uid,
            kind: chosen,
            body: chosen === 'lock' ? { reason: `certificate ${toHex(serial)} revoked (${reason})` } : {},
            principal: r.principal!,
            idempotencyKey: r.idempotencyKey ? `${r.idempotencyKey}/card` : null,
            now: op.now(),
          });
          op.runner.poke();
          job = jobView(created, card.uid);
        }
        return {
          status: 200,
          body: {
            certificate: certificateView(certificate, uids.get(certificate.cardId) ?? null),
            crl: { number: crl.number, thisUpdate: new Date(crl.thisUpdate).toISOString() },
            cardAction: chosen,
            job,
          },
        };
      },
    },
    ...estRoutes(op),
    ...findingRoutes(op),
    ...consoleRoutes(op),
  ];
}

function serialParam(s: string): Uint8Array {
  const hex = s.replace(/:/g, '').toLowerCase();
  if (hex.length % 2 !== 0 || hex.length === 0) throw new OpError(OpErrorCode.badRequest, `'${s}' is not a certificate serial (hex)`);
  return fromHex(hex);
}

export function allowed(principal: Principal, role: Role): boolean {
  return hasRole(principal, role);
}
