// The audits against a REAL card (the security domain on its in-memory platform, test/operator/
// isd-fixture.ts) behind a real device agent and a real operator over HTTPS, through the REST API of
// CONTRACT-16 (POST /v1/audits/run, GET /v1/findings, /v1/findings/{id}, /v1/cards/{uid}/findings,
// POST /v1/findings/{id}/resolve) and /metrics: what the card itself does — an audit log that
// overflowed between two reads (a gap), a head signed by another key than the manifest's (a damaged
// card), TLS sessions it logged after its certificate was revoked, a lock script the card refused —
// becomes exactly one finding, is not duplicated, and is resolved (by hand, or auto once fixed);
// the metrics follow the fleet. Plus `serve`'s periodic run.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { appendAudit } from '../../src/card/applets/isd/audit-log.js';
import { createApiToken } from '../../src/operator/auth/tokens.js';
import { makeBench, makeManufacturing, TestCard, type Bench, type Manufacturing } from './isd-fixture.js';
import { call } from './helpers.js';
import { join } from 'node:path';
import { waitUntil } from '../wait.js';

let m: Manufacturing;
let bench: Bench;
let card: TestCard;

before(async () => {
  m = await makeManufacturing();
  bench = await makeBench(m);
  card = await TestCard.create(m);
  await bench.importCards([card]);
  await bench.startAgent([card], 'dev-audits');
});
after(() => bench.close());

async function ok(kind: string, body: Record<string, unknown> = {}): Promise<Record<string, any>> {
  const done = await bench.wait((await bench.job(card.uidHex, kind, body)).id);
  assert.equal(done.status, 'succeeded', `${kind}: ${JSON.stringify(done)}`);
  return done;
}
async function fails(kind: string, code: string): Promise<void> {
  const done = await bench.wait((await bench.job(card.uidHex, kind)).id);
  assert.equal(done.status, 'failed', JSON.stringify(done));
  assert.equal(done.errorCode, code);
}

async function auditRun(): Promise<Record<string, { open: number; new: number; resolved: number; error?: string }>> {
  const r = await bench.api('POST', '/v1/audits/run', {});
  assert.equal(r.status, 200, r.body.toString());
  const checks = r.json().checks;
  for (const [name, c] of Object.entries(checks)) assert.equal((c as { error?: string }).error, undefined, name);
  return checks;
}

async function open(): Promise<any[]> {
  const r = await bench.api('GET', '/v1/findings?status=open');
  assert.equal(r.status, 200);
  return r.json().items;
}

async function metric(name: string, label: string): Promise<number | undefined> {
  const text = (await bench.api('GET', '/metrics')).body.toString();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${label}}`));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

/** Runs twice: exactly one open finding of `check` about this card, the same one, last_seen moving. */
async function reportedOnce(check: string): Promise<any> {
  const r1 = await auditRun();
  assert.equal(r1[check]!.new, 1, JSON.stringify(r1));
  const o1 = await open();
  assert.deepEqual(o1.map((f) => [f.check, f.card]), [[check, card.uidHex]], JSON.stringify(o1));
  await new Promise((r) => setImmediate(r));
  const r2 = await auditRun();
  for (const [name, c] of Object.entries(r2)) assert.equal(c.new, 0, `${name} new on the second run`);
  const o2 = await open();
  assert.equal(o2.length, 1);
  assert.equal(o2[0].id, o1[0].id);
  assert.equal(o2[0].firstSeenAt, o1[0].firstSeenAt);
  assert.ok(Date.parse(o2[0].lastSeenAt) > Date.parse(o1[0].lastSeenAt), 'last_seen moves');
  const one = await bench.api('GET', `/v1/findings/${o1[0].id}`);
  assert.equal(one.status, 200);
  assert.equal(one.json().check, check);
  const ofCard = (await bench.api('GET', `/v1/cards/${card.uidHex}/findings?status=open`)).json();
  assert.deepEqual(ofCard.items.map((f: any) => f.id), [o1[0].id]);
  return o2[0];
}

test('a real card, enrolled and its log read: no finding; the metrics count it', async () => {
  await ok('enrol');
  await ok('read-audit');
  // the agent's heartbeats have marked the card seen
  await waitUntil(async () => (await bench.api('GET', `/v1/cards/${card.uidHex}`)).json().lastSeenAt !== null, 'a heartbeat');
  const r = await auditRun();
  assert.equal(Object.keys(r).length, 9);
  for (const c of Object.values(r)) assert.deepEqual(c, { open: 0, new: 0, resolved: 0 });
  assert.deepEqual(await open(), []);
  assert.equal(await metric('setls_operator_findings_open', 'check="audit-log-gap"'), 0);
  assert.equal(await metric('setls_operator_enrolments', 'mode="admin",result="succeeded"'), 1);
  assert.equal(await metric('setls_operator_cards', 'state="enrolled"') ?? await metric('setls_operator_cards', 'state="active"'), 1);
  assert.equal(await metric('setls_operator_jobs', 'status="succeeded"'), 2);
});

test('audit-log-gap: the card logged more than it keeps between two reads; one finding; accepted by hand, not reported again', async () => {
  card.platform.transaction((d) => {
    for (let i = 0; i < 80; i++) appendAudit(d.record, 0, 0x02, Uint8Array.of(0xbf, 0x20));
  });
  await fails('read-audit', 'ERR_OP_AUDIT_GAP');
  const f = await reportedOnce('audit-log-gap');
  const [[from, to]] = f.detail.missing;
  assert.ok(to - from + 1 >= 16, JSON.stringify(f.detail));
  assert.equal(f.detail.lastRead.errorCode, 'ERR_OP_AUDIT_GAP');
  assert.equal(await metric('setls_operator_findings_open', 'check="audit-log-gap"'), 1);
  // a viewer may look but not resolve; a bad resolution is refused
  const { token: viewer } = await createApiToken(bench.svc.operator.store, 'viewer', 'v');
  const asViewer = await call(bench.url, join(bench.dir, 'tls-ca.crt'), 'POST', `/v1/findings/${f.id}/resolve`, { token: viewer, body: { resolution: 'accepted' } });
  assert.equal(asViewer.status, 403);
  assert.equal((await bench.api('POST', `/v1/findings/${f.id}/resolve`, { resolution: 'whatever' })).json().error.code, 'ERR_OP_BAD_REQUEST');
  const done = await bench.api('POST', `/v1/findings/${f.id}/resolve`, { resolution: 'accepted' });
  assert.equal(done.status, 200);
  assert.equal(done.json().status, 'resolved');
  assert.equal(done.json().resolution, 'accepted');
  const again = await bench.api('POST', `/v1/findings/${f.id}/resolve`, { resolution: 'fixed' });
  assert.equal(again.status, 409);
  assert.equal(again.json().error.code, 'ERR_OP_FINDING_RESOLVED');
  // the hole is still there, but accepted: not reported again
  await ok('read-audit');
  const r = await auditRun();
  assert.equal(r['audit-log-gap']!.new, 0);
  assert.deepEqual(await open(), []);
  assert.equal(await metric('setls_operator_findings_open', 'check="audit-log-gap"'), 0);
});

test('audit-log-bad-signature: the card signs its log head with another key than its manifest certificate; resolved auto once it signs right again', async () => {
  const genuine = card.platform.record().attestation!;
  const k = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  card.platform.transaction((d) => {
    d.record.attestation = { ...genuine, pkcs8: new Uint8Array(k.privateKey.export({ format: 'der', type: 'pkcs8' })), spki: new Uint8Array(k.publicKey.export({ format: 'der', type: 'spki' })) };
  });
  await fails('read-audit', 'ERR_OP_AUDIT_SIGNATURE');
  const f = await reportedOnce('audit-log-bad-signature');
  assert.equal(f.severity, 'critical');
  card.platform.transaction((d) => {
    d.record.attestation = genuine;
  });
  await ok('read-audit');
  const r = await auditRun();
  assert.equal(r['audit-log-bad-signature']!.resolved, 1);
  const now = (await bench.api('GET', `/v1/findings/${f.id}`)).json();
  assert.equal(now.status, 'resolved');
  assert.equal(now.resolution, 'auto');
  assert.deepEqual(await open(), []);
});

test('revoked-cert-served: revoked with cardAction none, the card logs TLS sessions on that key afterwards; resolved auto by the re-key', async () => {
  const v = (await bench.api('GET', `/v1/cards/${card.uidHex}`)).json();
  const cert = v.certificates.find((c: any) => c.status === 'good');
  const slot = v.identities.find((i: any) => i.id === cert.identityId).slot;
  const rv = await bench.api('POST', `/v1/certificates/${cert.serial}/revoke`, { reason: 'keyCompromise', cardAction: 'none' });
  assert.equal(rv.status, 200, rv.body.toString());
  // three handshakes served with that key after the revocation (the TLS applet's session entries)
  const at = Math.floor(Date.now() / 1000) + 1;
  card.platform.transaction((d) => {
    for (let i = 0; i < 3; i++) {
      const detail = new Uint8Array(36);
      detail[0] = slot;
      appendAudit(d.record, at + i, 0x05, detail);
    }
  });
  await ok('read-audit');
  const f = await reportedOnce('revoked-cert-served');
  assert.equal(f.subject, cert.serial);
  assert.equal(f.detail.sessionsAfterRevocation, 3);
  assert.equal(f.detail.reason, 'keyCompromise');
  await ok('rekey');
  const r = await auditRun();
  assert.equal(r['revoked-cert-served']!.resolved, 1);
  assert.deepEqual(await open(), []);
});

test('lock-not-delivered: the lock script refused (an agent answering an error status word); resolved auto by a lock that is delivered', async () => {
  card.filter = (apdu, next) => (apdu[1] === 0xf0 ? Uint8Array.of(0x6a, 0x80) : next(apdu));
  await fails('lock', 'ERR_OP_INTEGRITY');
  const f = await reportedOnce('lock-not-delivered');
  assert.equal(f.detail.jobStatus, 'failed');
  assert.equal(await metric('setls_operator_findings_open', 'check="lock-not-delivered"'), 1);
  card.filter = undefined;
  await ok('lock');
  const r = await auditRun();
  assert.equal(r['lock-not-delivered']!.resolved, 1);
  assert.deepEqual(await open(), []);
  assert.equal(await metric('setls_operator_findings_open', 'check="lock-not-delivered"'), 0);
  assert.equal(await metric('setls_operator_cards', 'state="locked"'), 1);
  assert.equal(await metric('setls_operator_jobs', 'status="failed"'), 3);
});

test('serve runs the audits by itself every interval (auditIntervalMs), one node at a time', async () => {
  const other = await makeBench(m, { auditIntervalMs: 200 });
  try {
    const c2 = await TestCard.create(m);
    await other.importCards([c2]);
    // a card imported and never enrolled is not audited for being unseen; a lock requested and failed is
    await other.svc.operator.store.insertJob({ id: randomUUID(), cardId: (await other.svc.operator.store.cardByUid(c2.uid))!.id, kind: 'lock', params: {}, maxAttempts: 1, deadlineAt: Date.now() - 1, idempotencyKey: null, createdBy: 't', createdAt: Date.now() - 3_600_000 });
    await waitUntil(async () => (await other.api('GET', '/v1/findings?check=lock-not-delivered')).json().items.length === 1, 'the periodic run reports the lock that was not delivered');
    const f = (await other.api('GET', '/v1/findings?check=lock-not-delivered')).json().items[0];
    await waitUntil(async () => (await other.api('GET', `/v1/findings/${f.id}`)).json().lastSeenAt !== f.lastSeenAt, 'a later periodic run sees it again');
    assert.equal((await other.api('GET', '/v1/findings')).json().items.length, 1, 'still one finding');
  } finally {
    await other.close();
  }
});
