/**
 * The OperatorStore contract of EST enrolment credentials and non-card certificates
 * (store/est-store.ts), run by store-suite.ts on every back end (SQLite and PostgreSQL): a use is
 * spent by one guarded UPDATE, so concurrent spenders on separate connections never overspend;
 * revoked, expired and used-up credentials spend nothing; certificates not bound to a card are
 * listed newest first, revocable once, superseded once, and the revoked ones are CRL entries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { EstCertificateRow, EstCredentialRow, OperatorStore } from '../../src/operator/store/types.js';
import { storeRunner, type StoreFactory } from './store-factory.js';


const T0 = 1_700_000_000_000;

function credential(extra: Partial<EstCredentialRow> = {}): EstCredentialRow {
  return {
    id: `estc-${randomUUID().replace(/-/g, '').slice(0, 16)}`,
    name: 'lab',
    secretHash: new Uint8Array(32).fill(7),
    salt: new Uint8Array(16).fill(1),
    kdf: 'scrypt:32768:8:1',
    usesLeft: 3,
    expiresAt: T0 + 1000,
    profile: { cn: ['a.example'], dns: [], ip: [] },
    createdBy: 'test',
    createdAt: T0,
    lastUsedAt: null,
    revokedAt: null,
    ...extra,
  };
}

function certificate(caId: string, n: number, extra: Partial<EstCertificateRow> = {}): EstCertificateRow {
  return {
    serial: Uint8Array.of(0x40, n),
    caId,
    credentialId: null,
    replaces: null,
    subject: `CN=c${n}`,
    san: { dnsNames: [], ipAddresses: [] },
    spkiSha256: new Uint8Array(32).fill(n),
    alg: 'p256',
    notBefore: T0,
    notAfter: T0 + 10_000,
    der: Uint8Array.of(0x30, n),
    status: 'good',
    revokedAt: null,
    reason: null,
    createdAt: T0 + n,
    ...extra,
  };
}

export function estStoreCases(f: StoreFactory): void {
  const withStore = storeRunner(f);

  test('EST credentials: stored and listed; a use is spent while uses are left, not after, nor when revoked or expired', async () => {
    await withStore(async (s) => {
      const c = credential({ usesLeft: 2 });
      await s.insertEstCredential(c);
      assert.deepEqual(await s.estCredentialById(c.id), c);
      assert.equal(await s.spendEstCredential(c.id, T0 + 1), true);
      assert.equal(await s.spendEstCredential(c.id, T0 + 2), true);
      assert.equal(await s.spendEstCredential(c.id, T0 + 3), false, 'no use left');
      const after = (await s.estCredentialById(c.id))!;
      assert.equal(after.usesLeft, 0);
      assert.equal(after.lastUsedAt, T0 + 2);
      const expired = credential();
      await s.insertEstCredential(expired);
      assert.equal(await s.spendEstCredential(expired.id, expired.expiresAt), false, 'expired');
      const revoked = credential();
      await s.insertEstCredential(revoked);
      assert.equal(await s.revokeEstCredential(revoked.id, T0 + 5), true);
      assert.equal(await s.revokeEstCredential(revoked.id, T0 + 6), false);
      assert.equal(await s.spendEstCredential(revoked.id, T0 + 7), false, 'revoked');
      assert.equal((await s.estCredentialById(revoked.id))!.usesLeft, 3);
      assert.deepEqual((await s.listEstCredentials()).map((x) => x.id).sort(), [c.id, expired.id, revoked.id].sort());
    });
  });

  test('EST credentials: 24 concurrent spenders on two connections spend exactly the 5 uses', async () => {
    await withStore(async (s, reopen) => {
      const other = reopen ? await reopen() : s;
      const c = credential({ usesLeft: 5 });
      await s.insertEstCredential(c);
      const caId = randomUUID();
      await s.putCa({ id: caId, role: 'issuing', certDer: Uint8Array.of(0x30, 1), keyRef: 'file:ca.key', notAfter: T0 + 1e10, createdAt: T0 });
      // the issuing transaction: spend, then record the certificate (as est/client-enrol.ts does)
      const attempt = (st: OperatorStore, n: number): Promise<boolean> =>
        st.tx(async (t) => {
          if (!(await t.spendEstCredential(c.id, T0 + 1))) return false;
          await t.insertEstCertificate(certificate(caId, n, { credentialId: c.id }));
          return true;
        });
      const results = await Promise.all(Array.from({ length: 24 }, (_, i) => attempt(i % 2 ? other : s, i + 1)));
      assert.equal(results.filter(Boolean).length, 5);
      assert.equal((await s.estCredentialById(c.id))!.usesLeft, 0);
      assert.equal((await s.listEstCertificates(null, 100)).length, 5, 'one certificate per use spent');
    });
  });

  test('EST certificates: listed newest first with a keyset, revoked once, superseded once, revoked ones are CRL entries until they expire', async () => {
    await withStore(async (s) => {
      const caId = randomUUID();
      await s.putCa({ id: caId, role: 'issuing', certDer: Uint8Array.of(0x30, 1), keyRef: 'file:ca.key', notAfter: T0 + 1e10, createdAt: T0 });
      for (let n = 1; n <= 5; n++) await s.insertEstCertificate(certificate(caId, n));
      const first = await s.listEstCertificates(null, 2);
      assert.deepEqual(first.map((c) => c.subject), ['CN=c5', 'CN=c4']);
      const next = await s.listEstCertificates({ createdAt: first[1]!.createdAt, serial: first[1]!.serial }, 10);
      assert.deepEqual(next.map((c) => c.subject), ['CN=c3', 'CN=c2', 'CN=c1']);
      assert.deepEqual(await s.estCertificateBySerial(Uint8Array.of(0x40, 3)), certificate(caId, 3));
      assert.equal(await s.setEstCertificateStatus(Uint8Array.of(0x40, 1), 'revoked', 'keyCompromise', T0 + 100), true);
      assert.equal(await s.setEstCertificateStatus(Uint8Array.of(0x40, 1), 'superseded', 'superseded', T0 + 101), false);
      assert.equal(await s.setEstCertificateStatus(Uint8Array.of(0x40, 2), 'superseded', 'superseded', T0 + 100), true);
      assert.equal(await s.setEstCertificateStatus(Uint8Array.of(0x40, 2), 'revoked', 'unspecified', T0 + 101), false);
      assert.deepEqual(await s.revokedEstCertificates(caId, T0 + 200), [{ serial: Uint8Array.of(0x40, 1), revokedAt: T0 + 100, reason: 'keyCompromise' }]);
      assert.deepEqual(await s.revokedEstCertificates(caId, T0 + 10_000), [], 'expired entries leave the CRL');
      assert.deepEqual(await s.revokedCertificates(caId, T0 + 200), [], 'card certificates are another table');
    });
  });
}
