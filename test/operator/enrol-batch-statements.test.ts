/**
 * How many statements the batched persist step sends for a batch, whatever its size: on SQLite six
 * (store/enrol-batch.ts: one each, in the store's transaction); on PostgreSQL ONE
 * (store/enrol-batch-pg.ts: the key lookup, the guarded nonce UPDATE, the new identities,
 * certificates, cards → enrolled and events as one statement of data-modifying CTEs) and no
 * transaction around it (no BEGIN/COMMIT: one round trip for the batch). Every row is written as
 * before (certificates, identities, cards enrolled, events). Counted on the real drivers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { SqliteDriver } from '../../src/operator/store/sqlite-driver.js';
import { PgDriver, PG_SQL, SqlStore, SQLITE_SQL, type SqlConn, type SqlDriver } from '../../src/operator/store/index.js';
import { persistEnrolments } from '../../src/operator/store/enrol-batch.js';
import { nonce, persist, setup } from './store-enrol-batch-suite.js';
import { createTempDb, pgUnavailable } from './pg-helpers.js';
import { skipOrFail } from '../ci.js';
import { tempDir } from './helpers.js';

/** Every enrolment of the batch written: each card enrolled with one certificate and one identity; the first nonce consumed. */
async function assertAllWritten(s: SqlStore, cards: readonly { uid: Uint8Array; id: string }[], opened: readonly ({ nonceHash: Uint8Array } | null)[]): Promise<void> {
  for (const c of cards) {
    const row = (await s.cardByUid(c.uid))!;
    assert.equal(row.lifecycle, 'enrolled');
    assert.equal((await s.certificatesOfCard(c.id)).length, 1);
    assert.equal((await s.identitiesOfCard(c.id)).length, 1);
  }
  assert.equal((await s.enrolmentByNonceHash(opened[0]!.nonceHash))?.status, 'succeeded');
}

async function persistCounting(d: SqlDriver): Promise<number> {
  const s = await SqlStore.open(d, SQLITE_SQL);
  const { caId, cards } = await setup(s, 5);
  const opened = await s.openEnrolments(cards.map((c) => nonce(c.uid)));
  const items = cards.map((c, i) => persist(caId, c, opened[i]!.id, new Uint8Array(randomBytes(32))));
  let statements = 0;
  const out = await d.tx(async (c) => {
    const counting: SqlConn = {
      all: (q, p) => (statements++, c.all(q, p)),
      get: (q, p) => (statements++, c.get(q, p)),
      run: (q, p) => (statements++, c.run(q, p)),
    };
    return persistEnrolments(counting, d.dialect, items);
  });
  assert.deepEqual(out.map((o) => o.ok), [true, true, true, true, true]);
  await assertAllWritten(s, cards, opened);
  return statements;
}

test('persist of 5 enrolments on SQLite: six statements, every row written', async () => {
  const t = tempDir('setls-enrstmt-');
  const d = new SqliteDriver(join(t.dir, 'op.db'));
  try {
    assert.equal(await persistCounting(d), 6);
  } finally {
    await d.close();
    t.cleanup();
  }
});

/** SqlStore.persistEnrolments over a driver that counts what reaches it (statements, transactions). */
async function storePersistCounting(d: SqlDriver): Promise<{ statements: number; txs: number }> {
  const seen = { statements: 0, txs: 0, on: false };
  const counting = new Proxy(d, {
    get(target, prop, recv) {
      const v = Reflect.get(target, prop, recv) as unknown;
      if (typeof v !== 'function') return v;
      if (prop === 'all' || prop === 'get' || prop === 'run') {
        return (...a: unknown[]) => (seen.on && seen.statements++, (v as (...x: unknown[]) => unknown).apply(target, a));
      }
      if (prop === 'tx') return (...a: unknown[]) => (seen.on && seen.txs++, (v as (...x: unknown[]) => unknown).apply(target, a));
      return (v as (...x: unknown[]) => unknown).bind(target);
    },
  });
  const s = await SqlStore.open(counting, PG_SQL);
  const { caId, cards } = await setup(s, 5);
  const opened = await s.openEnrolments(cards.map((c) => nonce(c.uid)));
  const items = cards.map((c, i) => persist(caId, c, opened[i]!.id, new Uint8Array(randomBytes(32))));
  seen.on = true;
  const out = await s.persistEnrolments(items);
  seen.on = false;
  assert.deepEqual(out.map((o) => o.ok), [true, true, true, true, true]);
  await assertAllWritten(s, cards, opened);
  return { statements: seen.statements, txs: seen.txs };
}

const unavailable = await pgUnavailable();
test('persist of 5 enrolments on PostgreSQL: one statement, no transaction around it (no BEGIN/COMMIT), every row written', async (t) => {
  if (!skipOrFail(t, unavailable)) return;
  const db = await createTempDb();
  const d = new PgDriver(db.url);
  try {
    assert.deepEqual(await storePersistCounting(d), { statements: 1, txs: 0 });
  } finally {
    await d.close();
    await db.drop();
  }
});
