// Revocation and the CRL, with openssl as the external oracle: after POST /v1/certificates/{serial}/
// revoke returns, GET /v1/ca/crl serves a CRL that `openssl crl -CAfile ca.crt` verifies, that lists
// the serial with its reason, whose cRLNumber is higher than before, with nextUpdate ≤ 24 h.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initOperator } from '../../src/operator/init.js';
import { importManifest } from '../../src/operator/services/manifests.js';
import { startOperator, type RunningOperator } from '../../src/operator/service.js';
import { call, makeCsr, makeManufacturer, SoftCard, tempDir } from './helpers.js';
import { requirePeer } from '../interop/peers.js';

let svc: RunningOperator;
let tmp: ReturnType<typeof tempDir>;
let token: string;
const serials: string[] = [];

before(async () => {
  const m = await makeManufacturer();
  tmp = tempDir();
  const dir = join(tmp.dir, 'op');
  token = (await initOperator({ dir, manufacturerCaPems: [m.caPem] })).adminToken;
  svc = await startOperator({ dir, port: 0, quiet: true, runJobs: false, writeServeInfo: false });
  const cards = [await SoftCard.create(m), await SoftCard.create(m), await SoftCard.create(m)];
  await importManifest(svc.operator.store, { cards: cards.map((c) => c.manifestEntry()) }, 'test');
  for (const c of cards) {
    const { keys, spki } = await SoftCard.identityKey();
    const n = await svc.operator.enrolment.issueNonce(c.uid);
    const r = await svc.operator.enrolment.complete({ uid: c.uid, evidence: c.attest(spki, n.nonce), csrDer: await makeCsr(keys) });
    serials.push(Buffer.from(r.certificate.serial).toString('hex'));
  }
});
after(async () => {
  await svc.stop();
  tmp.cleanup();
});

async function fetchCrl(name: string): Promise<{ file: string; text: string; number: number }> {
  const r = await call(svc.url, svc.operator.paths.tlsCaCert, 'GET', '/v1/ca/crl');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/pkix-crl');
  const file = join(tmp.dir, `${name}.crl`);
  writeFileSync(file, r.body);
  const v = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', file, '-CAfile', svc.operator.paths.caCert, '-noout', '-text'], { encoding: 'utf8' });
  assert.equal(v.status, 0, v.stderr);
  assert.match(v.stderr + v.stdout, /verify OK/, 'openssl verifies the CRL signature with ca.crt');
  const number = Number(/X509v3 CRL Number:\s*\n\s*(\d+)/.exec(v.stdout)![1]);
  return { file, text: v.stdout, number };
}

test('revoke → the next CRL verifies with openssl, lists the serial and reason, and has a higher cRLNumber', async (t) => {
  if (!requirePeer(t, 'openssl')) return;
  const before0 = await fetchCrl('before');
  assert.match(before0.text, /No Revoked Certificates/);
  const r = await call(svc.url, svc.operator.paths.tlsCaCert, 'POST', `/v1/certificates/${serials[0]}/revoke`, { token, body: { reason: 'keyCompromise' } });
  assert.equal(r.status, 200, r.body.toString());
  const body = r.json();
  assert.equal(body.certificate.status, 'revoked');
  assert.equal(body.certificate.reason, 'keyCompromise');
  const after1 = await fetchCrl('after1');
  assert.ok(after1.number > before0.number, `${after1.number} > ${before0.number}`);
  assert.equal(body.crl.number, after1.number, 'the CRL served is the one the revocation produced');
  assert.match(after1.text, new RegExp(`Serial Number: ${serials[0]!.toUpperCase()}\\s*\\n\\s*Revocation Date: [^\\n]+\\n\\s*CRL entry extensions:\\s*\\n\\s*X509v3 CRL Reason Code:\\s*\\n\\s*Key Compromise`));
  const last = Date.parse(/Last Update: (.*)/.exec(after1.text)![1]!);
  const next = Date.parse(/Next Update: (.*)/.exec(after1.text)![1]!);
  assert.ok(next - last <= 24 * 3600_000 && next > last, 'nextUpdate within 24 h');
  // A second revocation: both serials listed, number up again; the other certificate is not listed.
  assert.equal((await call(svc.url, svc.operator.paths.tlsCaCert, 'POST', `/v1/certificates/${serials[1]}/revoke`, { token })).status, 200);
  const after2 = await fetchCrl('after2');
  assert.ok(after2.number > after1.number);
  assert.match(after2.text, new RegExp(`Serial Number: ${serials[0]!.toUpperCase()}`));
  assert.match(after2.text, new RegExp(`Serial Number: ${serials[1]!.toUpperCase()}`));
  assert.doesNotMatch(after2.text, new RegExp(`Serial Number: ${serials[2]!.toUpperCase()}`));
  // openssl verify with CRL checking: the revoked leaf fails, the good one passes.
  for (const [serial, ok] of [[serials[1]!, false], [serials[2]!, true]] as const) {
    const cert = (await call(svc.url, svc.operator.paths.tlsCaCert, 'GET', `/v1/certificates/${serial}`, { token })).json().certificate;
    const pem = join(tmp.dir, `${serial}.pem`);
    writeFileSync(pem, cert.pem);
    const crlPem = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', after2.file], { encoding: 'utf8' }).stdout;
    writeFileSync(join(tmp.dir, 'crl.pem'), crlPem);
    const v = spawnSync('openssl', ['verify', '-crl_check', '-CAfile', svc.operator.paths.caCert, '-CRLfile', join(tmp.dir, 'crl.pem'), pem], { encoding: 'utf8' });
    if (ok) assert.equal(v.status, 0, v.stdout + v.stderr);
    else assert.match(v.stdout + v.stderr, /certificate revoked/);
  }
});

test('revoking twice (409 ERR_OP_ALREADY_REVOKED), an unknown serial (404), an unknown reason (400)', async () => {
  const ca = svc.operator.paths.tlsCaCert;
  const again = await call(svc.url, ca, 'POST', `/v1/certificates/${serials[0]}/revoke`, { token });
  assert.equal(again.status, 409);
  assert.equal(again.json().error.code, 'ERR_OP_ALREADY_REVOKED');
  const unknown = await call(svc.url, ca, 'POST', '/v1/certificates/40aa/revoke', { token });
  assert.equal(unknown.status, 404);
  assert.equal(unknown.json().error.code, 'ERR_OP_UNKNOWN_CERTIFICATE');
  const bad = await call(svc.url, ca, 'POST', `/v1/certificates/${serials[2]}/revoke`, { token, body: { reason: 'bored' } });
  assert.equal(bad.status, 400);
  assert.equal(bad.json().error.code, 'ERR_OP_BAD_REQUEST');
});

test('concurrent revocations: every serial ends up in the CRL served last, numbers strictly increasing', async () => {
  const op = svc.operator;
  const m = await makeManufacturer('M2');
  await op.trustManufacturer(m.caPem);
  const cards = await Promise.all([0, 1, 2, 3, 4].map(() => SoftCard.create(m)));
  await importManifest(op.store, { cards: cards.map((c) => c.manifestEntry()) }, 'test');
  const mine: Uint8Array[] = [];
  for (const c of cards) {
    const { keys, spki } = await SoftCard.identityKey();
    const n = await op.enrolment.issueNonce(c.uid);
    mine.push((await op.enrolment.complete({ uid: c.uid, evidence: c.attest(spki, n.nonce), csrDer: await makeCsr(keys) })).certificate.serial);
  }
  const results = await Promise.all(mine.map((s) => op.revocation.revoke(s, 'superseded')));
  const numbers = results.map((r) => r.crl.number);
  assert.equal(new Set(numbers).size, numbers.length);
  const current = (await op.revocation.current())!;
  assert.equal(current.number, Math.max(...numbers));
  const { X509Crl } = await import('@peculiar/x509');
  const crl = new X509Crl(new Uint8Array(current.der));
  for (const s of mine) assert.ok(crl.findRevoked(Buffer.from(s).toString('hex')), `serial ${Buffer.from(s).toString('hex')} listed`);
});

test('a CRL of 3 000 entries (DER lengths in long form) verifies with openssl and lists them all', async (t) => {
  if (!requirePeer(t, 'openssl')) return;
  const op = svc.operator;
  const { randomSerial } = await import('../../src/operator/pki/x509.js');
  const now = Date.now();
  const card = (await op.store.listCards({}, null, 1))[0]!;
  const identity = (await op.store.identitiesOfCard(card.id))[0]!;
  await op.store.tx(async (tx) => {
    for (let i = 0; i < 3000; i++) {
      await tx.insertCertificate({
        serial: randomSerial(), identityId: identity.id, cardId: card.id, caId: op.caId, jobId: null, enrolmentId: null, subject: 'CN=x', san: {},
        notBefore: now, notAfter: now + 86400_000, der: Uint8Array.of(0x30), status: 'revoked', revokedAt: now, reason: i % 2 ? 'superseded' : null, createdAt: now,
      });
    }
  });
  const expected = (await op.store.revokedCertificates(op.caId, Date.now())).length;
  const r = await call(svc.url, svc.operator.paths.tlsCaCert, 'POST', `/v1/certificates/${serials[2]}/revoke`, { token, body: { reason: 'cessationOfOperation' } });
  assert.equal(r.status, 200);
  const crl = await fetchCrl('big');
  assert.equal([...crl.text.matchAll(/Serial Number: /g)].length, expected + 1);
  assert.match(crl.text, new RegExp(`Serial Number: ${serials[2]!.toUpperCase()}\\s*\\n[^\\n]*\\n[^\\n]*\\n[^\\n]*\\n\\s*Cessation Of Operation`));
  assert.equal([...crl.text.matchAll(/Superseded/g)].length, 1500 + 5, 'reasons kept per entry (5 from the concurrent test)');
});
