/**
 * The job executors end to end against the real security domain (the ISD applet on its in-memory
 * test platform, inside a mini card OS), a real device agent over HTTPS and a real operator
 * (startOperator: API, relay, executors, runner): every kind's SCP03 script, what the card holds
 * afterwards, what the registry says, and the round trips each took.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { toHex, fromHex } from '../../src/bytes/index.js';
import { CardLifecycle, SlotStatus } from '../../src/gp/admin/constants.js';
import { sha256 } from '../../src/gp/admin/attestation.js';
import { appendAudit } from '../../src/card/applets/isd/audit-log.js';
import { TLS_AID } from '../card/isd/fake-platform.js';
import { makeBench, makeManufacturing, TestCard, type Bench, type Manufacturing } from './isd-fixture.js';
import { call } from './helpers.js';
import { createApiToken } from '../../src/operator/auth/tokens.js';
import { join } from 'node:path';
import { waitUntil } from '../wait.js';

let m: Manufacturing;
let bench: Bench;
let hosts = 0;
before(async () => {
  m = await makeManufacturing();
  bench = await makeBench(m, { sweepMs: 200 });
});
after(() => bench.close());

/** A fresh card, imported, behind its own agent. */
async function freshCard(): Promise<TestCard> {
  const card = await TestCard.create(m);
  await bench.importCards([card]);
  await bench.startAgent([card], `dev-${++hosts}`);
  return card;
}

async function run(card: TestCard, kind: string, body: Record<string, unknown> = {}): Promise<Record<string, any>> {
  const job = await bench.job(card.uidHex, kind, body);
  return bench.wait(job.id);
}

async function ok(card: TestCard, kind: string, body: Record<string, unknown> = {}): Promise<Record<string, any>> {
  const done = await run(card, kind, body);
  assert.equal(done.status, 'succeeded', `${kind}: ${JSON.stringify(done)}`);
  return done;
}

async function enrolled(body: Record<string, unknown> = {}): Promise<TestCard> {
  const card = await freshCard();
  await ok(card, 'enrol', body);
  return card;
}

const cardJson = async (card: TestCard): Promise<Record<string, any>> => (await bench.api('GET', `/v1/cards/${card.uidHex}`)).json();

test('enrol: ownership (PUT KEY 30→31), key generated and attested in the card, certificate issued, chain installed and activated', async () => {
  const card = await freshCard();
  const done = await ok(card, 'enrol', { dnsNames: ['device.example'] });
  const r = card.platform.record();
  assert.deepEqual(r.keySets.map((k) => k.kvn), [0x31], "the factory key set was replaced by the operator's");
  const slot = r.slots.find((s) => s.status === SlotStatus.active)!;
  assert.ok(slot, 'an active slot');
  const tls = card.platform.tls().identities[slot.slot]!;
  assert.equal(tls.chain.length, 2, 'leaf and issuing CA served');
  const leaf = new X509Certificate(Buffer.from(tls.chain[0]!, 'hex'));
  assert.equal(toHex(new Uint8Array(leaf.publicKey.export({ format: 'der', type: 'spki' }))), tls.spki, 'the served certificate is for the key in the card');
  assert.ok(leaf.checkIssued(new X509Certificate(Buffer.from(bench.svc.operator.ca.certDer))));
  assert.match(leaf.subjectAltName ?? '', /DNS:device\.example/);
  assert.equal(toHex(r.operatorRoot!), toHex(bench.svc.operator.ca.certDer), "the operator root is the card's anchor");
  assert.ok(r.timeAnchor && r.timeAnchor.counter === 1, 'a time anchor signed by the operator root');
  const v = await cardJson(card);
  assert.equal(v.state, 'active');
  assert.equal(v.kvn, '31');
  assert.deepEqual(v.certificates.map((c: any) => c.status), ['good']);
  assert.equal(BigInt(`0x${v.certificates[0].serial}`), BigInt(`0x${leaf.serialNumber}`), 'the registry knows the served certificate');
  assert.equal(v.identities[0].state, 'active');
  assert.equal(v.identities[0].spkiSha256, toHex(sha256(fromHex(tls.spki))));
  // A fresh card: the registry does not know its sequence counter yet, so INITIALIZE UPDATE goes first.
  assert.deepEqual([done.result.roundTrips, done.result.sessions, done.result.predictedSessions], [3, 1, 0], JSON.stringify(done.result));
  assert.equal(done.result.slot, slot.slot);
});

test('a manifest that gives the card\'s sequence counter: the enrolment is precomputed from the first script — two round trips', async () => {
  const card = await TestCard.create(m);
  const r = await bench.api('POST', '/v1/manifests', { cards: [card.manifestEntry({}, true)] });
  assert.equal(r.status, 201, r.body.toString());
  await bench.startAgent([card], `dev-${++hosts}`);
  const done = await ok(card, 'enrol');
  assert.deepEqual([done.result.roundTrips, done.result.sessions, done.result.predictedSessions], [2, 1, 1], JSON.stringify(done.result));
});

test('lock and unlock: one precomputed round trip each; the TLS applet locked then unlocked in the card', async () => {
  const card = await enrolled();
  const lock = await ok(card, 'lock');
  assert.deepEqual([lock.result.roundTrips, lock.result.predictedSessions], [1, 1], 'IU, EA, SET STATUS, GET STATUS in one script');
  assert.deepEqual(card.platform.record().lockedApplets.map((a) => toHex(a)), [toHex(TLS_AID)]);
  assert.equal((await cardJson(card)).state, 'locked');
  const unlock = await ok(card, 'unlock');
  assert.equal(unlock.result.roundTrips, 1);
  assert.deepEqual(card.platform.record().lockedApplets, []);
  assert.equal((await cardJson(card)).state, 'active');
  // Card-level lock: CARD_LOCKED; unlock brings it back to SECURED (a second script).
  await ok(card, 'lock', { scope: 'card' });
  assert.equal(card.platform.record().lifecycle, CardLifecycle.cardLocked);
  const u2 = await ok(card, 'unlock');
  assert.equal(card.platform.record().lifecycle, CardLifecycle.secured);
  assert.equal(u2.result.roundTrips, 2);
  // Identity locks.
  await ok(card, 'lock', { scope: 'identities' });
  assert.ok(card.platform.record().slots.every((s) => s.locked));
  await ok(card, 'unlock');
  assert.ok(card.platform.record().slots.every((s) => !s.locked));
});

test('push-client-cas and push-deny-list: anchors and serials in the card; deny-list numbers only go up', async () => {
  const card = await enrolled();
  const ca = m.ca.cert;
  const pemCa = `-----BEGIN CERTIFICATE-----\n${Buffer.from(ca).toString('base64')}\n-----END CERTIFICATE-----\n`;
  const cas = await ok(card, 'push-client-cas', { certificates: [pemCa], clientAuth: 'optional' });
  assert.deepEqual(card.platform.record().clientCas.map((c) => toHex(c)), [toHex(ca)]);
  const active = card.platform.record().slots.find((s) => s.status === SlotStatus.active)!;
  assert.equal((active.policy & 0x06) >> 1, 1, 'client authentication optional');
  assert.equal(card.platform.tls().identities[active.slot]!.policy.clientAuth, 'optional');
  assert.equal(cas.result.roundTrips, 2);
  const d1 = await ok(card, 'push-deny-list', { serials: ['00ab', '0102'] });
  assert.equal(d1.result.number, 1);
  assert.equal(d1.result.roundTrips, 1);
  assert.deepEqual(card.platform.record().revokedSerials.map((s) => toHex(s)), ['ab', '0102']);
  const d2 = await ok(card, 'push-deny-list', { serials: ['cafe'] });
  assert.equal(d2.result.number, 2);
  assert.equal(card.platform.record().revocationNumber, 2);
  // The card holds a newer list than the registry (a restored database): numbered above the card's, once.
  card.platform.transaction((d) => {
    d.record.revocationNumber = 40;
  });
  const d3 = await ok(card, 'push-deny-list', { serials: ['beef'] });
  assert.equal(d3.result.number, 41);
  assert.equal(card.platform.record().revocationNumber, 41);
});

test('unblock-pin: a new PIN set in the card, handed out once to the token that asked, sealed in the store', async () => {
  const card = await enrolled();
  // Block the user PIN the way three wrong tries would.
  card.platform.transaction((d) => d.pins.reset('user', undefined));
  (card.platform.tls().pins.user as { tries: number }).tries = 0;
  const done = await ok(card, 'unblock-pin', { pin: 'user', newPin: true });
  assert.equal(done.result.sealedPin, undefined, 'the job view never shows the sealed PIN');
  const secret = await bench.api('GET', `/v1/jobs/${done.id}/secret`);
  assert.equal(secret.status, 200, secret.body.toString());
  const pin = secret.json().pin as string;
  assert.match(pin, /^\d{8}$/);
  assert.equal(card.platform.tls().pins.user.value, pin);
  assert.equal(card.platform.tls().pins.user.tries, 3);
  const row = await bench.svc.operator.store.jobById(done.id);
  assert.ok(!JSON.stringify(row).includes(pin), 'the store holds the PIN sealed only');
  const other = (await createApiToken(bench.svc.operator.store, 'admin', 'someone else')).token;
  const refused = await call(bench.url, join(bench.dir, 'tls-ca.crt'), 'GET', `/v1/jobs/${done.id}/secret`, { token: other });
  assert.equal(refused.status, 404);
  assert.equal(refused.json().error.code, 'ERR_OP_SECRET_UNAVAILABLE');
  // Without a new PIN: the retry counter only.
  const reset = await ok(card, 'unblock-pin', { pin: 'operator' });
  assert.equal(reset.result.newPin, false);
  assert.equal(card.platform.tls().pins.operator.tries, 3);
});

test('rotate-admin-keys: PUT KEY to the next KVN; later jobs open with it', async () => {
  const card = await enrolled();
  const rot = await ok(card, 'rotate-admin-keys');
  assert.equal(rot.result.kvn, '32');
  assert.equal(rot.result.roundTrips, 1);
  assert.deepEqual(card.platform.record().keySets.map((k) => k.kvn), [0x32]);
  assert.equal((await cardJson(card)).kvn, '32');
  await ok(card, 'lock');
  await ok(card, 'unlock');
});

test('rekey: new key in another slot, activated, the old one retired and deleted (no grace) — two round trips', async () => {
  const card = await enrolled();
  const before = card.platform.record().slots.find((s) => s.status === SlotStatus.active)!.slot;
  const firstSerial = (await cardJson(card)).certificates[0].serial;
  const done = await ok(card, 'rekey');
  assert.equal(done.result.roundTrips, 2, JSON.stringify(done.result));
  const slots = card.platform.record().slots;
  assert.equal(slots.length, 1);
  assert.notEqual(slots[0]!.slot, before);
  assert.equal(slots[0]!.status, SlotStatus.active);
  assert.equal(card.platform.tls().identities[before], undefined, 'the old key is deleted');
  const v = await cardJson(card);
  const byserial = Object.fromEntries(v.certificates.map((c: any) => [c.serial, c.status]));
  assert.equal(byserial[firstSerial], 'superseded');
  assert.equal(Object.values(byserial).filter((s) => s === 'good').length, 1, 'exactly one good certificate');
  assert.deepEqual(v.identities.map((i: any) => i.state).sort(), ['active', 'deleted']);
});

test('rekey with a grace period: the old key retired at once, deleted by a follow-up job once the grace is over', async () => {
  const card = await enrolled();
  const old = card.platform.record().slots.find((s) => s.status === SlotStatus.active)!.slot;
  await ok(card, 'rekey', { graceSeconds: 1 });
  assert.equal(card.platform.record().slots.find((s) => s.slot === old)!.status, SlotStatus.retired, 'retired, not served, still in the card');
  assert.deepEqual(card.platform.tls().identities[old]!.chain, []);
  await waitUntil(async () => (await cardJson(card)).jobs.some((j: any) => j.kind === 'delete-retired' && j.status === 'succeeded'), 'the follow-up deletes the old key');
  assert.equal(card.platform.tls().identities[old], undefined);
  assert.ok(!card.platform.record().slots.some((s) => s.slot === old));
});

test('read-audit: the log verified against the attestation certificate and stored; the next read continues; a gap and a bad signature fail with their codes', async () => {
  const card = await enrolled();
  const first = await ok(card, 'read-audit');
  assert.equal(first.result.baseline, true);
  assert.ok(first.result.entries >= 9, JSON.stringify(first.result));
  const stored = await bench.svc.operator.store.auditEntriesOf((await cardJson(card)).id, 0, 1000);
  assert.equal(stored.length, first.result.entries);
  assert.equal(stored.at(-1)!.seq, first.result.headSeq);
  await ok(card, 'lock');
  const second = await ok(card, 'read-audit');
  assert.equal(second.result.baseline, false);
  assert.equal(second.result.firstSeq, first.result.headSeq + 1, 'continues where the last read stopped');
  // More than the 64 entries the card keeps happened since: a gap.
  card.platform.transaction((d) => {
    for (let i = 0; i < 80; i++) appendAudit(d.record, 0, 0x05, new Uint8Array(36));
  });
  const gap = await run(card, 'read-audit');
  assert.equal(gap.status, 'failed');
  assert.equal(gap.errorCode, 'ERR_OP_AUDIT_GAP');
  assert.match(gap.errorMessage, /entries \d+\.\.\d+ are missing/);
  // The card now signs with another attestation key than the manifest's: the head does not verify.
  const { generateKeyPairSync } = await import('node:crypto');
  const k = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  card.platform.transaction((d) => {
    d.record.attestation = { ...d.record.attestation!, pkcs8: new Uint8Array(k.privateKey.export({ format: 'der', type: 'pkcs8' })), spki: new Uint8Array(k.publicKey.export({ format: 'der', type: 'spki' })) };
  });
  const sig = await run(card, 'read-audit');
  assert.equal(sig.status, 'failed');
  assert.equal(sig.errorCode, 'ERR_OP_AUDIT_SIGNATURE');
});

test('terminate: every identity wiped, the card TERMINATED, its certificates revoked on a new CRL', async () => {
  const card = await enrolled();
  const done = await ok(card, 'terminate');
  assert.equal(card.platform.record().lifecycle, CardLifecycle.terminated);
  assert.deepEqual(card.platform.tls().identities, {});
  const v = await cardJson(card);
  assert.equal(v.state, 'terminated');
  assert.deepEqual(v.certificates.map((c: any) => [c.status, c.reason]), [['revoked', 'cessationOfOperation']]);
  assert.ok(done.result.crlNumber > 1);
  const again = await bench.api('POST', `/v1/cards/${card.uidHex}/lock`, {});
  assert.equal(again.json().error.code, 'ERR_OP_CARD_TERMINATED');
});

test('revoke a served certificate: CRL at once, and by default a re-key of the card', async () => {
  const card = await enrolled();
  const serial = (await cardJson(card)).certificates[0].serial;
  const r = await bench.api('POST', `/v1/certificates/${serial}/revoke`, { reason: 'keyCompromise' });
  assert.equal(r.status, 200, r.body.toString());
  assert.equal(r.json().cardAction, 'rekey');
  const job = r.json().job;
  const done = await bench.wait(job.id);
  assert.equal(done.status, 'succeeded', JSON.stringify(done));
  const v = await cardJson(card);
  assert.deepEqual(v.certificates.map((c: any) => c.status).sort(), ['good', 'revoked']);
  const none = await bench.api('POST', `/v1/certificates/${v.certificates.find((c: any) => c.status === 'good').serial}/revoke`, { cardAction: 'none' });
  assert.equal(none.json().job, null);
});

test("the agent's log and the wire of an enrolment, a re-key and a PIN reset carry no PIN, key or certificate bytes in clear", async () => {
  const card = await TestCard.create(m);
  await bench.importCards([card]);
  const log: string[] = [];
  const wire: Buffer[] = [];
  card.filter = async (apdu, next) => {
    const r = await next(apdu);
    wire.push(Buffer.from(apdu), Buffer.from(r));
    return r;
  };
  await bench.startAgent([card], `dev-${++hosts}`, (l) => log.push(l));
  await ok(card, 'enrol');
  await ok(card, 'rekey');
  const pinJob = await ok(card, 'unblock-pin', { newPin: true });
  const pin = (await bench.api('GET', `/v1/jobs/${pinJob.id}/secret`)).json().pin as string;
  card.filter = undefined;
  assert.ok(log.length >= 6, 'the agent logged its scripts');
  const text = log.join('\n');
  const all = Buffer.concat(wire);
  const v = await cardJson(card);
  const certs = await Promise.all(v.certificates.map(async (c: any) => Buffer.from((await bench.api('GET', `/v1/certificates/${c.serial}`)).json().certificate.pem.replace(/-----[^-]+-----|\s/g, ''), 'base64')));
  const { adminKeysForCard } = await import('../../src/operator/keys/master-keys.js');
  const keys = adminKeysForCard(join(bench.dir, 'keys'), 1, card.uid, 0x31);
  const secrets: [string, Buffer][] = [
    ['PIN', Buffer.from(pin, 'ascii')],
    ...certs.map((c, i) => [`certificate ${i}`, c] as [string, Buffer]),
    ['operator CA certificate', Buffer.from(bench.svc.operator.ca.certDer)],
    ...Object.values(card.platform.tls().identities).map((i, n) => [`identity key ${n} (SPKI)`, Buffer.from(i.spki, 'hex')] as [string, Buffer]),
    ['K-ENC', Buffer.from(keys.enc)],
    ['K-MAC', Buffer.from(keys.mac)],
    ['K-DEK', Buffer.from(keys.dek)],
  ];
  assert.ok(!text.includes(pin), 'no PIN in the agent log');
  for (const [what, s] of secrets) {
    for (let i = 0; i + 8 <= s.length; i += 4) {
      const w = s.subarray(i, i + 8);
      assert.ok(!all.includes(w), `${what}: bytes ${i}..${i + 8} appear on the wire`);
      assert.ok(!text.toLowerCase().includes(w.subarray(0, 4).toString('hex')), `${what}: bytes ${i}..${i + 4} in the agent log`);
    }
  }
});
