// The operator REST API over real HTTPS (node:https on port 0, the operator's own certificate,
// clients trusting D/tls-ca.crt): bearer tokens and roles, Idempotency-Key replay and mismatch,
// cursor pagination, one error shape with stable codes, bounded bodies, manifests, cards, jobs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { initOperator } from '../../src/operator/init.js';
import { startOperator, type RunningOperator } from '../../src/operator/service.js';
import { DefaultAttestationVerifier, SETLS_ATTESTATION_V1 } from '../../src/operator/pki/attestation.js';
import { createApiToken } from '../../src/operator/auth/tokens.js';
import { SCHEMA_VERSION } from '../../src/operator/store/index.js';
import { call, makeCsr, makeManufacturer, SoftCard, tempDir, type Manufacturer } from './helpers.js';

let m: Manufacturer;
let svc: RunningOperator;
let tmp: ReturnType<typeof tempDir>;
let ca: string;
let admin: string;
let operator: string;
let viewer: string;
const cards: SoftCard[] = [];

const api = (method: string, path: string, opts: Parameters<typeof call>[4] = {}) => call(svc.url, ca, method, path, opts);

before(async () => {
  m = await makeManufacturer();
  tmp = tempDir();
  const dir = join(tmp.dir, 'op');
  admin = (await initOperator({ dir, manufacturerCaPems: [m.caPem] })).adminToken;
  svc = await startOperator({ dir, port: 0, quiet: true, runJobs: false, writeServeInfo: false, verifier: new DefaultAttestationVerifier(SETLS_ATTESTATION_V1) });
  ca = svc.operator.paths.tlsCaCert;
  operator = (await createApiToken(svc.operator.store, 'operator', 'ops')).token;
  viewer = (await createApiToken(svc.operator.store, 'viewer', 'dashboard')).token;
  for (let i = 0; i < 25; i++) cards.push(await SoftCard.create(m));
});
after(async () => {
  await svc.stop();
  tmp.cleanup();
});

function assertError(r: Awaited<ReturnType<typeof api>>, status: number, code: string): void {
  assert.equal(r.status, status, r.body.toString());
  assert.match(String(r.headers['content-type']), /^application\/json/);
  const e = r.json().error;
  assert.equal(e.code, code);
  assert.equal(typeof e.message, 'string');
  assert.ok(e.message.length > 0);
}

test('public endpoints: /healthz, the CA certificate as PEM or DER, the CRL as application/pkix-crl', async () => {
  const h = await api('GET', '/healthz');
  assert.equal(h.status, 200);
  assert.deepEqual(h.json(), { status: 'ok', schema: SCHEMA_VERSION, store: 'sqlite' });
  const pem = await api('GET', '/v1/ca/cert');
  assert.equal(pem.headers['content-type'], 'application/x-pem-file');
  assert.match(pem.body.toString(), /^-----BEGIN CERTIFICATE-----/);
  const der = await api('GET', '/v1/ca/cert', { headers: { accept: 'application/pkix-cert' } });
  assert.equal(der.headers['content-type'], 'application/pkix-cert');
  assert.deepEqual(new Uint8Array(der.body), svc.operator.ca.certDer);
  const crl = await api('GET', '/v1/ca/crl');
  assert.equal(crl.status, 200);
  assert.equal(crl.headers['content-type'], 'application/pkix-crl');
  assert.equal(crl.body[0], 0x30);
});

test('authentication: no token, a malformed or unknown token, a revoked token → 401 ERR_OP_UNAUTHENTICATED', async () => {
  const none = await api('GET', '/v1/cards');
  assertError(none, 401, 'ERR_OP_UNAUTHENTICATED');
  assert.match(String(none.headers['www-authenticate']), /^Bearer/);
  assertError(await api('GET', '/v1/cards', { token: 'nonsense' }), 401, 'ERR_OP_UNAUTHENTICATED');
  const forged = admin.slice(0, -4) + (admin.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  assertError(await api('GET', '/v1/cards', { token: forged }), 401, 'ERR_OP_UNAUTHENTICATED');
  const { token, row } = await createApiToken(svc.operator.store, 'viewer', 'short-lived');
  assert.equal((await api('GET', '/v1/cards', { token })).status, 200);
  await svc.operator.store.revokeApiToken(row.id, Date.now());
  assertError(await api('GET', '/v1/cards', { token }), 401, 'ERR_OP_UNAUTHENTICATED');
  // only the hash is stored
  const stored = (await svc.operator.store.apiTokenById(row.id))!;
  // the secret is what follows `sop_<id>_` (base64url: it may itself hold '_', so no split)
  const secret = token.slice(`sop_${row.id}_`.length);
  assert.equal(secret.length, 43, 'a 32-byte secret in base64url');
  assert.ok(!Buffer.from(stored.secretHash).toString('latin1').includes(secret));
});

test('manifests: import (201), re-import (200, already present), all-or-nothing on an untrusted entry, conflict (409)', async () => {
  const first = cards.slice(0, 20);
  const r = await api('POST', '/v1/manifests', { token: operator, body: { name: 'batch-1', cards: first.map((c) => c.manifestEntry({ labels: { site: cards.indexOf(c) % 2 ? 'nice' : 'lyon' } })) } });
  assert.equal(r.status, 201, r.body.toString());
  assert.equal(r.json().imported.length, 20);
  const again = await api('POST', '/v1/manifests', { token: operator, body: { cards: [first[0]!.manifestEntry()] } });
  assert.equal(again.status, 200);
  assert.deepEqual(again.json(), { batchId: null, imported: [], alreadyPresent: [first[0]!.uidHex], factsAdded: [] });
  // One untrusted entry: nothing of the batch is imported.
  const rogue = await SoftCard.create(await makeManufacturer('Rogue'));
  const mixed = await api('POST', '/v1/manifests', { token: operator, body: { cards: [cards[20]!.manifestEntry(), rogue.manifestEntry()] } });
  assertError(mixed, 422, 'ERR_OP_MANIFEST_INVALID');
  assert.equal(mixed.json().error.details.problems[0].code, 'ERR_OP_ATTESTATION_CHAIN');
  assertError(await api('GET', `/v1/cards/${cards[20]!.uidHex}`, { token: viewer }), 404, 'ERR_OP_UNKNOWN_CARD');
  // A certificate naming another UID than the entry: refused.
  const liar = await SoftCard.create(m, undefined, { subjectUid: cards[21]!.uid });
  const lie = await api('POST', '/v1/manifests', { token: operator, body: [liar.manifestEntry()] });
  assertError(lie, 422, 'ERR_OP_MANIFEST_INVALID');
  assert.equal(lie.json().error.details.problems[0].code, 'ERR_OP_ATTESTATION_UID');
  // Same UID, another attestation certificate: conflict.
  const twin = await SoftCard.create(m, first[1]!.uid);
  assertError(await api('POST', '/v1/manifests', { token: operator, body: twin.manifestEntry() }), 409, 'ERR_OP_MANIFEST_CONFLICT');
  const rest = await api('POST', '/v1/manifests', { token: operator, body: { cards: cards.slice(20).map((c) => c.manifestEntry()) } });
  assert.equal(rest.status, 201);
  // viewers cannot import
  assertError(await api('POST', '/v1/manifests', { token: viewer, body: { cards: [] } }), 403, 'ERR_OP_FORBIDDEN');
});

test('cursor pagination: pages of `limit` in UID order, no duplicates; cursors bound to their filters; limit ≤ 1000', async () => {
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const r = await api('GET', `/v1/cards?limit=10${cursor ? `&cursor=${cursor}` : ''}`, { token: viewer });
    assert.equal(r.status, 200);
    const body = r.json();
    seen.push(...body.items.map((c: { uid: string }) => c.uid));
    cursor = body.nextCursor;
    pages++;
  } while (cursor);
  assert.equal(pages, 3);
  assert.equal(seen.length, 25);
  assert.equal(new Set(seen).size, 25);
  assert.deepEqual(seen, [...seen].sort());
  const lyon = await api('GET', '/v1/cards?label=site=lyon&limit=3', { token: viewer });
  const lyonBody = lyon.json();
  assert.equal(lyonBody.items.length, 3);
  assert.ok(lyonBody.items.every((c: { labels: { site: string } }) => c.labels.site === 'lyon'));
  assertError(await api('GET', `/v1/cards?label=site=nice&limit=3&cursor=${lyonBody.nextCursor}`, { token: viewer }), 400, 'ERR_OP_BAD_CURSOR');
  assertError(await api('GET', '/v1/cards?cursor=!!notours', { token: viewer }), 400, 'ERR_OP_BAD_CURSOR');
  assertError(await api('GET', '/v1/cards?limit=1001', { token: viewer }), 400, 'ERR_OP_BAD_REQUEST');
  assertError(await api('GET', '/v1/cards?state=happy', { token: viewer }), 400, 'ERR_OP_BAD_REQUEST');
  assert.equal((await api('GET', '/v1/cards?state=manifest&limit=1000', { token: viewer })).json().items.length, 25);
});

test('roles: viewer reads, operator creates jobs, admin alone terminates; unknown card 404; wrong state 409', async () => {
  const uid = cards[0]!.uidHex;
  // enrol is allowed on a manifest card; lock needs an owned card
  assertError(await api('POST', `/v1/cards/${uid}/lock`, { token: operator }), 409, 'ERR_OP_CARD_STATE');
  assertError(await api('POST', `/v1/cards/${uid}/enrol`, { token: viewer }), 403, 'ERR_OP_FORBIDDEN');
  const enrol = await api('POST', `/v1/cards/${uid}/enrol`, { token: operator, body: { dnsNames: ['plug.example'], days: 7 } });
  assert.equal(enrol.status, 202, enrol.body.toString());
  const job = enrol.json().job;
  assert.equal(job.kind, 'enrol');
  assert.equal(job.status, 'queued');
  assert.equal(job.card, uid);
  assert.deepEqual(job.params, { dnsNames: ['plug.example'], days: 7 });
  assert.equal(enrol.headers['location'], `/v1/jobs/${job.id}`);
  assertError(await api('POST', `/v1/cards/${uid}/terminate`, { token: operator }), 403, 'ERR_OP_FORBIDDEN');
  assert.equal((await api('POST', `/v1/cards/${cards[24]!.uidHex}/terminate`, { token: admin })).status, 202);
  assertError(await api('POST', '/v1/cards/00112233445566778899aabbccddeeff/enrol', { token: operator }), 404, 'ERR_OP_UNKNOWN_CARD');
  assertError(await api('POST', `/v1/cards/${uid}/explode`, { token: admin }), 404, 'ERR_OP_NOT_FOUND');
  assertError(await api('POST', `/v1/cards/${uid}/enrol`, { token: operator, body: { dnsNames: ['bad name!'] } }), 400, 'ERR_OP_BAD_REQUEST');
  assertError(await api('POST', `/v1/cards/${uid}/enrol`, { token: operator, body: { colour: 'red' } }), 400, 'ERR_OP_BAD_REQUEST');
  // GET the job, list by card and status, the card with its jobs
  const got = await api('GET', `/v1/jobs/${job.id}`, { token: viewer });
  assert.equal(got.json().job.id, job.id);
  const listed = (await api('GET', `/v1/jobs?card=${uid}&status=queued`, { token: viewer })).json();
  assert.deepEqual(listed.items.map((j: { id: string }) => j.id), [job.id]);
  assert.equal((await api('GET', `/v1/jobs?card=${uid}&status=succeeded`, { token: viewer })).json().items.length, 0);
  assertError(await api('GET', '/v1/jobs?status=done', { token: viewer }), 400, 'ERR_OP_BAD_REQUEST');
  assertError(await api('GET', `/v1/jobs/${randomUUID()}`, { token: viewer }), 404, 'ERR_OP_UNKNOWN_JOB');
  const card = (await api('GET', `/v1/cards/${uid}`, { token: viewer })).json();
  assert.equal(card.uid, uid);
  assert.equal(card.state, 'manifest');
  assert.deepEqual(card.jobs.map((j: { id: string }) => j.id), [job.id]);
  // cancel a queued job
  const canceled = await api('POST', `/v1/jobs/${job.id}/cancel`, { token: operator });
  assert.equal(canceled.json().job.status, 'canceled');
  assertError(await api('POST', `/v1/jobs/${job.id}/cancel`, { token: operator }), 409, 'ERR_OP_CARD_STATE');
});

test('Idempotency-Key: same key + same body → the same job, replayed; same key + other body → 422; keys are per token', async () => {
  const uid = cards[1]!.uidHex;
  const key = `enrol-${randomUUID()}`;
  const a = await api('POST', `/v1/cards/${uid}/enrol`, { token: operator, body: { days: 10, dnsNames: ['a.example'] }, headers: { 'idempotency-key': key } });
  assert.equal(a.status, 202);
  // same body, keys in another order: same request
  const b = await api('POST', `/v1/cards/${uid}/enrol`, { token: operator, body: { dnsNames: ['a.example'], days: 10 }, headers: { 'idempotency-key': key } });
  assert.equal(b.status, 202);
  assert.equal(b.headers['idempotent-replayed'], 'true');
  assert.equal(b.json().job.id, a.json().job.id);
  assertError(await api('POST', `/v1/cards/${uid}/enrol`, { token: operator, body: { days: 11 }, headers: { 'idempotency-key': key } }), 422, 'ERR_OP_IDEMPOTENCY_MISMATCH');
  assertError(await api('POST', `/v1/cards/${cards[2]!.uidHex}/enrol`, { token: operator, body: { days: 10, dnsNames: ['a.example'] }, headers: { 'idempotency-key': key } }), 422, 'ERR_OP_IDEMPOTENCY_MISMATCH');
  const other = await api('POST', `/v1/cards/${uid}/enrol`, { token: admin, body: { days: 10, dnsNames: ['a.example'] }, headers: { 'idempotency-key': key } });
  assert.equal(other.status, 202);
  assert.notEqual(other.json().job.id, a.json().job.id);
  // a refusal is replayed as well (it is the answer to that request)
  const k2 = randomUUID();
  assertError(await api('POST', `/v1/cards/${uid}/lock`, { token: operator, headers: { 'idempotency-key': k2 } }), 409, 'ERR_OP_CARD_STATE');
  const replay = await api('POST', `/v1/cards/${uid}/lock`, { token: operator, headers: { 'idempotency-key': k2 } });
  assertError(replay, 409, 'ERR_OP_CARD_STATE');
  assert.equal(replay.headers['idempotent-replayed'], 'true');
  const jobs = (await api('GET', `/v1/jobs?card=${uid}`, { token: viewer })).json().items;
  assert.equal(jobs.length, 2, 'one job per distinct (token, key)');
});

test('request errors: bad JSON 400, wrong media type 415, oversized body 413, unknown path 404, wrong method 405', async () => {
  const uid = cards[3]!.uidHex;
  assertError(await api('POST', `/v1/cards/${uid}/enrol`, { token: operator, rawBody: '{"days": 3,' }), 400, 'ERR_OP_BAD_JSON');
  assertError(await api('POST', `/v1/cards/${uid}/enrol`, { token: operator, rawBody: '[1,2]' }), 400, 'ERR_OP_BAD_JSON');
  assertError(await api('POST', `/v1/cards/${uid}/enrol`, { token: operator, rawBody: 'days=3', contentType: 'application/x-www-form-urlencoded' }), 415, 'ERR_OP_UNSUPPORTED_MEDIA_TYPE');
  assertError(await api('POST', `/v1/cards/${uid}/enrol`, { token: operator, rawBody: JSON.stringify({ pad: 'x'.repeat(1024 * 1024 + 10) }) }), 413, 'ERR_OP_BODY_TOO_LARGE');
  assertError(await api('GET', '/v2/cards', { token: viewer }), 404, 'ERR_OP_NOT_FOUND');
  assertError(await api('DELETE', '/v1/cards', { token: admin }), 405, 'ERR_OP_METHOD_NOT_ALLOWED');
  assertError(await api('GET', '/v1/certificates/zz', { token: viewer }), 404, 'ERR_OP_NOT_FOUND');
  assertError(await api('GET', '/v1/certificates/4001', { token: viewer }), 404, 'ERR_OP_UNKNOWN_CERTIFICATE');
  // the server is still fine after all that
  assert.equal((await api('GET', '/healthz')).status, 200);
});

test('an enrolled card shows its identity and certificate; certificates by serial; /metrics for viewers', async () => {
  const c = cards[4]!;
  const { keys, spki } = await SoftCard.identityKey();
  const n = await svc.operator.enrolment.issueNonce(c.uid);
  const res = await svc.operator.enrolment.complete({ uid: c.uid, evidence: c.attest(spki, n.nonce), csrDer: await makeCsr(keys) });
  const serial = Buffer.from(res.certificate.serial).toString('hex');
  const card = (await api('GET', `/v1/cards/${c.uidHex}`, { token: viewer })).json();
  assert.equal(card.state, 'enrolled');
  assert.equal(card.identities.length, 1);
  assert.equal(card.certificates[0].serial, serial);
  // the certificate's CRL URL is the serving operator's own
  const cert = (await api('GET', `/v1/certificates/${serial}`, { token: viewer })).json().certificate;
  assert.equal(cert.card, c.uidHex);
  assert.match(cert.pem, /^-----BEGIN CERTIFICATE-----/);
  const { X509Certificate } = await import('node:crypto');
  assert.match(new X509Certificate(cert.pem).toString(), /./);
  const expiring = (await api('GET', `/v1/cards?expiring_before=${encodeURIComponent(new Date(Date.now() + 40 * 86400_000).toISOString())}`, { token: viewer })).json();
  assert.deepEqual(expiring.items.map((x: { uid: string }) => x.uid), [c.uidHex]);
  assertError(await api('GET', '/metrics'), 401, 'ERR_OP_UNAUTHENTICATED');
  const metrics = await api('GET', '/metrics', { token: viewer });
  assert.equal(metrics.status, 200);
  assert.match(metrics.body.toString(), /setls_operator_cards\{state="enrolled"\} 1/);
  assert.match(metrics.body.toString(), /setls_operator_http_requests_total\{/);
});
