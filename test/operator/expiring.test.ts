/**
 * store/expiring.ts on SQLite and on PostgreSQL: good certificates ending in [from, before), in
 * (not_after, serial) order, keyset pages that neither repeat nor skip (ties on not_after included);
 * revoked ones and ones outside the window are not listed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { openPgStore, openSqliteStore } from '../../src/operator/store/index.js';
import type { OperatorStore } from '../../src/operator/store/types.js';
import { createTempDb, pgUnavailable } from './pg-helpers.js';
import { skipOrFail } from '../ci.js';
import { tempDir } from './helpers.js';

const T0 = 1_800_000_000_000;
const DAY = 86_400_000;

async function behaviour(s: OperatorStore): Promise<void> {
  const caId = randomUUID();
  await s.putCa({ id: caId, role: 'issuing', certDer: Uint8Array.of(0x30, 1), keyRef: 'file:ca.key', notAfter: T0 + 1e11, createdAt: T0 });
  const card = { id: randomUUID(), uid: new Uint8Array(16).fill(3), batchId: null, attestCertDer: Uint8Array.of(0x30), attestSpkiSha256: new Uint8Array(32), lifecycle: 'enrolled' as const, kvn: 0x30, transportKeyId: null, labels: {}, profile: {}, createdAt: T0 };
  await s.insertCard(card);
  const idn = { id: randomUUID(), cardId: card.id, slot: 1, alg: 'p256', spkiDer: Uint8Array.of(1), spkiSha256: new Uint8Array(32).fill(9), state: 'active' as const, attestedAt: T0, createdAt: T0 };
  await s.insertIdentity(idn);
  // days 1..20 after T0, two certificates on day 5 (a tie), one revoked on day 3, one already ended
  const days = [1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10, 20, -1];
  let k = 0;
  for (const d of days) {
    k++;
    await s.insertCertificate({
      serial: Uint8Array.of(0x40, 100 - k), identityId: idn.id, cardId: card.id, caId, jobId: null, enrolmentId: null, subject: 'CN=x', san: {},
      notBefore: T0 - DAY, notAfter: T0 + d * DAY, der: Uint8Array.of(0x30, k), status: k === 3 ? 'revoked' : 'good', revokedAt: k === 3 ? T0 : null, reason: null, createdAt: T0,
    });
  }
  const all = await s.listExpiringCertificates(T0, T0 + 7 * DAY, null, 100);
  assert.deepEqual(all.map((c) => (c.notAfter - T0) / DAY), [1, 2, 4, 5, 5, 6], 'in the window, good only, by not_after');
  assert.ok(all.every((c) => c.cardId === card.id));
  // pages of 2 give the same rows, in the same order, across the tie on day 5
  const paged: string[] = [];
  let after = null;
  for (;;) {
    const page = await s.listExpiringCertificates(T0, T0 + 7 * DAY, after, 2);
    if (page.length === 0) break;
    paged.push(...page.map((c) => Buffer.from(c.serial).toString('hex')));
    after = page[page.length - 1]!;
  }
  assert.deepEqual(paged, all.map((c) => Buffer.from(c.serial).toString('hex')));
  const tie = all.filter((c) => c.notAfter === T0 + 5 * DAY).map((c) => Buffer.from(c.serial).toString('hex'));
  assert.deepEqual(tie, [...tie].sort(), 'ties by serial');
}

test('expiring certificates on SQLite: window, order, keyset pages', async () => {
  const tmp = tempDir();
  const s = await openSqliteStore(`${tmp.dir}/op.db`);
  try {
    await behaviour(s);
  } finally {
    await s.close();
    tmp.cleanup();
  }
});

const unavailable = await pgUnavailable();
test('expiring certificates on PostgreSQL: the same', async (t) => {
  if (!skipOrFail(t, unavailable)) return;
  const db = await createTempDb();
  const s = await openPgStore(db.url);
  try {
    await behaviour(s);
  } finally {
    await s.close();
    await db.drop();
  }
});
