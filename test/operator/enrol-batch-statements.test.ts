/**
 * How many statements the batched persist step (store/enrol-batch.ts persistEnrolments) sends for a
 * batch, whatever its size: on PostgreSQL three — the identities holding the keys, the guarded nonce
 * UPDATE, then the new identities, certificates, cards → enrolled and events as ONE statement of
 * data-modifying CTEs (foreign keys checked at its end) — and on SQLite six (one each). Every row is
 * written as before (certificates, identities, cards enrolled, events). Counted on the real drivers.
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

async function persistCounting(d: SqlDriver, pg: boolean): Promise<number> {
  const s = await SqlStore.open(d, pg ? PG_SQL : SQLITE_SQL);
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
  for (const c of cards) {
    const row = (await s.cardByUid(c.uid))!;
    assert.equal(row.lifecycle, 'enrolled');
    assert.equal((await s.certificatesOfCard(c.id)).length, 1);
    assert.equal((await s.identitiesOfCard(c.id)).length, 1);
  }
  assert.equal((await s.enrolmentByNonceHash(opened[0]!.nonceHash))?.status, 'succeeded');
  return statements;
}

test('persist of 5 enrolments on SQLite: six statements, every row written', async () => {
  const t = tempDir('setls-enrstmt-');
  const d = new SqliteDriver(join(t.dir, 'op.db'));
  try {
    assert.equal(await persistCounting(d, false), 6);
  } finally {
    await d.close();
    t.cleanup();
  }
});

const unavailable = await pgUnavailable();
test('persist of 5 enrolments on PostgreSQL: three statements (the writes as one), every row written', async (t) => {
  if (!skipOrFail(t, unavailable)) return;
  const db = await createTempDb();
  const d = new PgDriver(db.url);
  try {
    assert.equal(await persistCounting(d, true), 3);
  } finally {
    await d.close();
    await db.drop();
  }
});
