/**
 * Operator PKI measurements on this machine (one process, one core, SQLite on a temp folder):
 *   - certificate issuance with @peculiar/x509 (OperatorCa.issue) and with the DER template
 *     (OperatorCa.issueFast), certificates/s; CSR checks (csr.ts vs csr-check.ts), per second;
 *   - full enrolment verification (nonce issued, attestation chain + signature, CSR, binding checks,
 *     issue, persist in one transaction), enrolments/s — software attestations (test/operator/helpers);
 *   - revocation → CRL signed and stored (what `POST …/revoke` waits for), p50/p99 ms, with 0, 1 000
 *     and 5 000 revoked certificates on the CRL.
 *   node --import tsx bench/operator-pki.ts [--n 300] [--json]
 * Noisy shared box: read the numbers as orders of magnitude.
 */
import { parseArgs } from 'node:util';
import { randomBytes, webcrypto } from 'node:crypto';
import { makeCsr, makeManufacturer, makeOperator, SoftCard } from '../test/operator/helpers.js';
import { importManifest } from '../src/operator/services/manifests.js';
import { randomSerial } from '../src/operator/pki/x509.js';
import { checkCsr } from '../src/operator/pki/csr.js';
import { checkCsrDer } from '../src/operator/pki/csr-check.js';

const { values } = parseArgs({ options: { n: { type: 'string', default: '300' }, json: { type: 'boolean', default: false } } });
const N = Number(values.n);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

const m = await makeManufacturer();
const env = await makeOperator([m]);
const op = env.op;
const out: Record<string, unknown> = {};
try {
  // 1. issuance alone
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const spki = new Uint8Array(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  let t0 = performance.now();
  for (let i = 0; i < N; i++) {
    await op.ca.issue({ spkiDer: spki, serial: randomSerial(), subject: 'CN=bench', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], notBefore: new Date(), notAfter: new Date(Date.now() + 30 * 86400_000), crlUrl: 'https://op/v1/ca/crl' });
  }
  out['issuancePerSecond'] = Math.round((N / (performance.now() - t0)) * 1000);
  // the hot path: DER template + node:crypto (pki/leaf-template.ts)
  t0 = performance.now();
  for (let i = 0; i < N * 4; i++) {
    await op.ca.issueFast({ spkiDer: spki, serial: randomSerial(), subject: 'CN=bench', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], notBefore: new Date(), notAfter: new Date(Date.now() + 30 * 86400_000), crlUrl: 'https://op/v1/ca/crl' });
  }
  out['templateIssuancePerSecond'] = Math.round(((N * 4) / (performance.now() - t0)) * 1000);
  const csr = await makeCsr(keys);
  t0 = performance.now();
  for (let i = 0; i < N; i++) await checkCsr(csr);
  out['csrCheckX509PerSecond'] = Math.round((N / (performance.now() - t0)) * 1000);
  t0 = performance.now();
  for (let i = 0; i < N * 4; i++) checkCsrDer(csr);
  out['csrCheckDerPerSecond'] = Math.round(((N * 4) / (performance.now() - t0)) * 1000);

  // 2. full enrolment verification + issuance + persistence (inputs prepared beforehand)
  const cards: SoftCard[] = [];
  for (let i = 0; i < N; i++) cards.push(await SoftCard.create(m, new Uint8Array(randomBytes(16))));
  await importManifest(op.store, { cards: cards.map((c) => c.manifestEntry()) }, 'bench');
  const inputs = [];
  for (const c of cards) {
    const k = await SoftCard.identityKey();
    const n = await op.enrolment.issueNonce(c.uid);
    inputs.push({ uid: c.uid, evidence: c.attest(k.spki, n.nonce), csrDer: await makeCsr(k.keys), expectedEnrolmentId: n.enrolmentId });
  }
  t0 = performance.now();
  const serials: Uint8Array[] = [];
  for (const inp of inputs) serials.push((await op.enrolment.complete(inp)).certificate.serial);
  out['enrolmentsPerSecond'] = Math.round((N / (performance.now() - t0)) * 1000);

  // 3. revocation → CRL built and stored, by CRL size
  const crl: Record<string, { p50: number; p99: number; entries: number }> = {};
  let next = 0;
  for (const target of [0, 1000, 5000]) {
    // grow the revoked set directly in the store (fast), then time real revocations
    const now = Date.now();
    await op.store.tx(async (t) => {
      const existing = (await t.revokedCertificates(op.caId, now)).length;
      const card = (await t.cardByUid(cards[0]!.uid))!;
      const identity = (await t.identitiesOfCard(card.id))[0]!;
      for (let i = existing; i < target; i++) {
        await t.insertCertificate({
          serial: randomSerial(), identityId: identity.id, cardId: card.id, caId: op.caId, jobId: null, enrolmentId: null, subject: 'CN=x', san: {},
          notBefore: now, notAfter: now + 86400_000, der: Uint8Array.of(0x30), status: 'revoked', revokedAt: now, reason: 'superseded', createdAt: now,
        });
      }
    });
    const times: number[] = [];
    for (let i = 0; i < 20 && next < serials.length; i++) {
      const s = performance.now();
      await op.revocation.revoke(serials[next++]!, 'keyCompromise');
      times.push(performance.now() - s);
    }
    crl[String(target)] = { p50: Math.round(pct(times, 50) * 10) / 10, p99: Math.round(pct(times, 99) * 10) / 10, entries: (await op.store.revokedCertificates(op.caId, Date.now())).length };
  }
  out['revokeToCrlMs'] = crl;
} finally {
  await env.cleanup();
}
if (values.json) console.log(JSON.stringify(out, null, 2));
else {
  console.log(`issuance (@peculiar/x509, one core):          ${String(out['issuancePerSecond'])} certificates/s`);
  console.log(`issuance (DER template + node:crypto):       ${String(out['templateIssuancePerSecond'])} certificates/s`);
  console.log(`CSR check (@peculiar/x509 / der + node):     ${String(out['csrCheckX509PerSecond'])} / ${String(out['csrCheckDerPerSecond'])} per s`);
  console.log(`enrolment verify + issue + persist (SQLite):  ${String(out['enrolmentsPerSecond'])} /s`);
  for (const [k, v] of Object.entries(out['revokeToCrlMs'] as Record<string, { p50: number; p99: number; entries: number }>)) {
    console.log(`revoke → new CRL stored, ~${k} entries (${v.entries}): p50 ${v.p50} ms, p99 ${v.p99} ms`);
  }
}
