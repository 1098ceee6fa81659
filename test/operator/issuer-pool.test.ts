/**
 * pki/issuer-pool.ts: CSR checks and issuance in worker threads — results equal to the in-thread
 * path, refusals with their codes, a bounded queue that refuses with ERR_OP_OVERLOADED, a worker that
 * dies is replaced and fails only the task it held, close() finishes what was accepted and refuses
 * the rest; an operator opened with issuerWorkers enrols through the pool with its security checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { webcrypto, X509Certificate } from 'node:crypto';
import { OperatorCa, type LeafRequest } from '../../src/operator/pki/issuing-ca.js';
import { IssuerPool } from '../../src/operator/pki/issuer-pool.js';
import { checkCsrDer } from '../../src/operator/pki/csr-check.js';
import { derChildren } from '../../src/operator/pki/der.js';
import { randomSerial } from '../../src/operator/pki/x509.js';
import { importManifest } from '../../src/operator/services/manifests.js';
import { OpError } from '../../src/operator/errors.js';
import { makeCsr, makeManufacturer, makeOperator, SoftCard } from './helpers.js';

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

async function leafRequest(): Promise<LeafRequest> {
  const k = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const spkiDer = new Uint8Array(await webcrypto.subtle.exportKey('spki', k.publicKey));
  return { spkiDer, serial: randomSerial(), subject: 'CN=0011', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], notBefore: new Date(), notAfter: new Date(Date.now() + 86400_000), crlUrl: 'https://op/v1/ca/crl' };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return e instanceof OpError ? e.code : `not an OpError: ${String(e)}`;
  }
}

test('the pool issues the template certificate and checks CSRs like the in-thread path', async () => {
  const { ca } = await OperatorCa.generate('CN=Pool CA', 365);
  const pool = new IssuerPool({ size: 2, ...ca.templateMaterial() });
  try {
    const r = await leafRequest();
    const [a, b] = await Promise.all([pool.issue(r), ca.issueFast(r)]);
    assert.ok(a instanceof Uint8Array);
    assert.deepEqual(Buffer.from(derChildren(a)[0]!), Buffer.from(derChildren(b)[0]!), 'same TBSCertificate');
    assert.ok(new X509Certificate(a).verify(ca.nodeCert.publicKey));
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
    const other = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
    const csr = await makeCsr(keys);
    assert.deepEqual(await pool.checkCsr(csr), checkCsrDer(csr));
    assert.equal(await codeOf(pool.checkCsr(await makeCsr(keys, other))), 'ERR_OP_CSR_SIGNATURE');
    assert.equal(await codeOf(pool.checkCsr(Uint8Array.of(1, 2, 3))), 'ERR_OP_CSR_INVALID');
  } finally {
    await pool.close();
  }
});

test('a full queue refuses at once with ERR_OP_OVERLOADED; what was accepted completes', async () => {
  const { ca } = await OperatorCa.generate('CN=Pool CA', 365);
  const pool = new IssuerPool({ size: 1, maxQueue: 2, ...ca.templateMaterial() });
  try {
    const r = await leafRequest();
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => codeOf(pool.issue({ ...r, serial: randomSerial() }))));
    // one running + two queued accepted; the other seven refused
    assert.deepEqual(outcomes, ['ok', 'ok', 'ok', ...new Array(7).fill('ERR_OP_OVERLOADED')]);
    assert.equal(await codeOf(pool.issue(r)), 'ok', 'accepts again once the queue drained');
  } finally {
    await pool.close();
  }
});

test('a worker that dies is replaced; only the task it held can fail, and with ERR_OP_INTERNAL', async () => {
  const { ca } = await OperatorCa.generate('CN=Pool CA', 365);
  const restarted: string[] = [];
  const pool = new IssuerPool({ size: 2, ...ca.templateMaterial(), onRestart: (why) => restarted.push(why) });
  try {
    const r = await leafRequest();
    const held = codeOf(pool.issue(r));
    await pool.terminateWorker(0);
    assert.ok(['ok', 'ERR_OP_INTERNAL'].includes(await held), await held);
    const deadline = Date.now() + 60_000;
    while (pool.restarts < 1 && Date.now() < deadline) await new Promise((res) => setImmediate(res));
    assert.equal(pool.restarts, 1);
    assert.equal(restarted.length, 1);
    assert.equal(pool.size, 2);
    // both workers (the new one included) serve again
    const after = await Promise.all(Array.from({ length: 6 }, () => codeOf(pool.issue({ ...r, serial: randomSerial() }))));
    assert.deepEqual(after, new Array(6).fill('ok'));
  } finally {
    await pool.close();
  }
});

test('close() finishes the accepted tasks, then refuses new ones', async () => {
  const { ca } = await OperatorCa.generate('CN=Pool CA', 365);
  const pool = new IssuerPool({ size: 1, maxQueue: 8, ...ca.templateMaterial() });
  const r = await leafRequest();
  const accepted = Array.from({ length: 5 }, () => codeOf(pool.issue({ ...r, serial: randomSerial() })));
  const closed = pool.close();
  assert.equal(await codeOf(pool.issue(r)), 'ERR_OP_OVERLOADED');
  assert.deepEqual(await Promise.all(accepted), new Array(5).fill('ok'));
  await closed;
  assert.equal(pool.restarts, 0, 'the workers ended on close are not "restarted"');
});

test('an operator with issuer workers enrols through the pool and keeps the refusals (CSR key, replay)', async () => {
  const m = await makeManufacturer();
  const env = await makeOperator([m], { issuerWorkers: 2 });
  try {
    const op = env.op;
    assert.equal(op.issuerPool?.size, 2);
    const card = await SoftCard.create(m);
    await importManifest(op.store, { cards: [card.manifestEntry()] }, 'test');
    const k = await SoftCard.identityKey();
    const other = await SoftCard.identityKey();
    // a CSR for another key than the attested one: refused, nonce consumed
    let n = await op.enrolment.issueNonce(card.uid);
    const bad = { uid: card.uid, evidence: card.attest(k.spki, n.nonce), csrDer: await makeCsr(other.keys), expectedEnrolmentId: n.enrolmentId };
    assert.equal(await codeOf(op.enrolment.complete(bad)), 'ERR_OP_CSR_KEY_MISMATCH');
    assert.equal(await codeOf(op.enrolment.complete({ ...bad, csrDer: await makeCsr(k.keys) })), 'ERR_OP_NONCE_REPLAY');
    n = await op.enrolment.issueNonce(card.uid);
    const res = await op.enrolment.complete({ uid: card.uid, evidence: card.attest(k.spki, n.nonce), csrDer: await makeCsr(k.keys), expectedEnrolmentId: n.enrolmentId });
    const cert = new X509Certificate(res.certificate.der);
    assert.ok(cert.verify(op.ca.nodeCert.publicKey));
    assert.equal(cert.subject, `CN=${card.uidHex}`);
    assert.equal(await codeOf(op.enrolment.complete({ uid: card.uid, evidence: card.attest(k.spki, n.nonce), csrDer: await makeCsr(k.keys), expectedEnrolmentId: n.enrolmentId })), 'ERR_OP_NONCE_REPLAY');
  } finally {
    await env.cleanup();
  }
});
