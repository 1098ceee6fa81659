/**
 * What the expiring-cards listing (store/expiring-cards.ts) costs as a fleet grows, checked without
 * timing: the query plans of the statement it actually runs (a connection that answers with the
 * EXPLAIN of each statement on the real driver) over a filled, analysed registry of 20 000 cards,
 * on SQLite and on PostgreSQL. Each page must walk the index range certificate_good_not_after_card
 * (migration 10) in its own order — no full scan of certificate or card, no sort of the expiring
 * certificates — and probe the card's other good certificates through an index. imports
 * src/operator/store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { SqliteDriver } from '../../src/operator/store/sqlite-driver.js';
import { PgDriver, PG_SQL, SqlStore, SQLITE_SQL, type DialectSql, type SqlConn, type SqlDriver } from '../../src/operator/store/index.js';
import { listExpiringCards, type ExpiringCardsCursor, type ExpiringCardsFilter } from '../../src/operator/store/expiring-cards.js';
import { createTempDb, pgUnavailable } from './pg-helpers.js';
import { skipOrFail } from '../ci.js';
import { tempDir } from './helpers.js';

const T0 = 1_800_000_000_000;
const DAY = 86_400_000;
const N = 20_000;

/** N cards, one identity each, a good certificate each ending within a year (every 50th card a
 *  second good one, every 20th a revoked one), then statistics. */
async function fill(d: SqlDriver, pg: boolean): Promise<void> {
  const store = await SqlStore.open(d, pg ? PG_SQL : SQLITE_SQL);
  const caId = randomUUID();
  await store.putCa({ id: caId, role: 'issuing', certDer: Uint8Array.of(0x30, 1), keyRef: 'file:ca.key', notAfter: T0 + 1e11, createdAt: T0 });
  const seq = `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${N})`;
  const bytes = (n: number, salt: string): string => (pg ? `substr(decode(md5('${salt}' || i) || md5('${salt}x' || i), 'hex'), 1, ${n})` : `randomblob(${n})`);
  const labels = pg ? `('{"site":"s' || (i % 16) || '"}')::jsonb` : `'{"site":"s' || (i % 16) || '"}'`;
  await d.run(
    `INSERT INTO card (id, uid, attest_cert_der, attest_spki_sha256, lifecycle, kvn, labels, profile, created_at, updated_at)
     ${seq} SELECT 'card-' || i, ${bytes(16, 'u')}, ${bytes(1, 'a')}, ${bytes(32, 'k')}, CASE WHEN i % 10 = 0 THEN 'manifest' ELSE 'enrolled' END, 48, ${labels}, ${pg ? `'{}'::jsonb` : `'{}'`}, ${T0}, ${T0} FROM s`,
  );
  await d.run(
    `INSERT INTO identity (id, card_id, slot, alg, spki_der, spki_sha256, state, attested_at, created_at)
     ${seq} SELECT 'id-' || i, 'card-' || i, 1, 'p256', ${bytes(8, 'p')}, ${bytes(32, 'h')}, 'active', ${T0}, ${T0} FROM s`,
  );
  const cert = (where: string, salt: string, notAfter: string, status: string): string =>
    `INSERT INTO certificate (serial, identity_id, card_id, ca_id, subject, san, not_before, not_after, der, status, created_at)
     ${seq} SELECT ${bytes(16, salt)}, 'id-' || i, 'card-' || i, '${caId}', 'CN=x', ${pg ? `'{}'::jsonb` : `'{}'`}, ${T0 - DAY}, ${notAfter}, ${bytes(4, salt + 'd')}, '${status}', ${T0} FROM s WHERE ${where}`;
  await d.run(cert('1 = 1', 'c1', `${T0} + ((i * 7919) % 365) * CAST(${DAY} AS BIGINT) + i`, 'good'));
  await d.run(cert('i % 50 = 0', 'c2', `${T0} + ((i * 31) % 365) * CAST(${DAY} AS BIGINT) + i`, 'good'));
  await d.run(cert('i % 20 = 0', 'c3', `${T0} + ((i * 13) % 365) * CAST(${DAY} AS BIGINT)`, 'revoked'));
  await d.run(pg ? 'VACUUM ANALYZE' : 'ANALYZE');
}

/** The plan lines of every statement listExpiringCards runs for these arguments. */
async function planOf(d: SqlDriver, sql: DialectSql, pg: boolean, f: ExpiringCardsFilter, after: ExpiringCardsCursor | null): Promise<string[]> {
  const lines: string[] = [];
  const explaining: SqlConn = {
    all: async (q, p) => {
      for (const r of await d.all(`${pg ? 'EXPLAIN' : 'EXPLAIN QUERY PLAN'} ${q}`, p)) lines.push(String(r[pg ? 'QUERY PLAN' : 'detail']));
      return [];
    },
    get: () => Promise.reject(new Error('unexpected get')),
    run: () => Promise.reject(new Error('unexpected run')),
  };
  await listExpiringCards(explaining, sql, f, after, 51);
  assert.ok(lines.length > 0);
  return lines;
}

const CASES: [string, ExpiringCardsFilter, ExpiringCardsCursor | null][] = [
  ['first page', { before: T0 + 7 * DAY }, null],
  ['deep page', { before: T0 + 300 * DAY }, { notAfter: T0 + 150 * DAY, cardId: 'card-5000' }],
  ['lifecycle and label, deep page', { before: T0 + 300 * DAY, lifecycle: 'enrolled', label: 'site=s3' }, { notAfter: T0 + 150 * DAY, cardId: '' }],
];

test('expiring cards on SQLite: an index range in order, an index probe per row, no scan, no sort (query plans)', async () => {
  const t = tempDir('setls-expplan-');
  const d = new SqliteDriver(join(t.dir, 'op.db'));
  try {
    await fill(d, false);
    for (const [name, f, after] of CASES) {
      const plan = await planOf(d, SQLITE_SQL, false, f, after);
      const all = plan.join(' | ');
      assert.ok(plan.some((l) => /^SEARCH x USING (COVERING )?INDEX certificate_good_not_after_card \(not_after[<>]/.test(l)), `${name}: the (not_after, card_id) range: ${all}`);
      assert.ok(plan.some((l) => /^SEARCH e USING (COVERING )?INDEX certificate_good_card_not_after \(card_id=\? AND not_after/.test(l)), `${name}: the earlier-certificate probe by card: ${all}`);
      assert.ok(plan.some((l) => /^SEARCH card USING INDEX .*\(id=\?\)/.test(l)), `${name}: the card by its id: ${all}`);
      assert.ok(!plan.some((l) => /^SCAN/.test(l)), `${name}: no full scan: ${all}`);
      assert.ok(!plan.some((l) => /TEMP B-TREE/.test(l)), `${name}: no sort: ${all}`);
    }
  } finally {
    await d.close();
    t.cleanup();
  }
});

const unavailable = await pgUnavailable();
test('expiring cards on PostgreSQL: the same (EXPLAIN)', async (t) => {
  if (!skipOrFail(t, unavailable)) return;
  const db = await createTempDb();
  const d = new PgDriver(db.url);
  try {
    await fill(d, true);
    for (const [name, f, after] of CASES) {
      const plan = await planOf(d, PG_SQL, true, f, after);
      const all = plan.join('\n');
      assert.ok(plan.some((l) => /Index (Only )?Scan using certificate_good_not_after_card on certificate x/.test(l)), `${name}: the (not_after, card_id) range:\n${all}`);
      // either index by card: the planner picks by cost (a card has one or two certificates)
      const probe = plan.findIndex((l) => /Index (Only )?Scan using certificate_(good_)?card(_not_after)? on certificate e/.test(l));
      assert.ok(probe >= 0 && /Index Cond: \(card_id = x\.card_id\)/.test(plan[probe + 1]!), `${name}: the earlier-certificate probe by card:\n${all}`);
      assert.ok(plan.some((l) => /Index Scan using card_pkey on card/.test(l)), `${name}: the card by its id:\n${all}`);
      assert.ok(!plan.some((l) => /Seq Scan|Bitmap Heap Scan/.test(l)), `${name}: no full scan:\n${all}`);
      assert.ok(!plan.some((l) => /Sort/.test(l)), `${name}: no sort (not even an incremental one):\n${all}`);
    }
  } finally {
    await d.close();
    await db.drop();
  }
});
