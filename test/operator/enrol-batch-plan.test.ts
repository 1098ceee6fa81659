/**
 * What the batched nonce issue (store/enrol-batch.ts openEnrolments: INSERT … SELECT FROM a VALUES
 * list joined to card) costs as the registry grows, checked without timing: its query plan over a
 * filled, analysed registry of 20 000 cards, on SQLite and on PostgreSQL. Each UID of the batch must
 * be looked up in card's uid index — never a scan of card (with statistics, SQLite preferred to scan
 * every card and probe an automatic index on the VALUES list: 0.3 ms per nonce at 20 000 cards, and
 * growing with the fleet). On PostgreSQL the statement is store/enrol-batch-pg.ts's (unnest of
 * arrays, a named prepared statement): its plan is checked both as planned for the batch's values
 * and as the generic plan a prepared statement may switch to after five executions
 * (plan_cache_mode = force_generic_plan). imports src/operator/store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { SqliteDriver } from '../../src/operator/store/sqlite-driver.js';
import { PgDriver, PG_SQL, SqlStore, SQLITE_SQL, type SqlConn, type SqlDriver } from '../../src/operator/store/index.js';
import { openEnrolments, type NewEnrolment } from '../../src/operator/store/enrol-batch.js';
import { openEnrolmentsPg } from '../../src/operator/store/enrol-batch-pg.js';
import { createTempDb, pgUnavailable } from './pg-helpers.js';
import { skipOrFail } from '../ci.js';
import { tempDir } from './helpers.js';

const T0 = 1_800_000_000_000;
const N = 20_000;

/** N cards (one in ten still `manifest`), N open enrolments, then statistics. */
async function fill(d: SqlDriver, pg: boolean): Promise<void> {
  await SqlStore.open(d, pg ? PG_SQL : SQLITE_SQL); // the schema
  const seq = `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${N})`;
  const bytes = (n: number, salt: string): string => (pg ? `substr(decode(md5('${salt}' || i) || md5('${salt}x' || i), 'hex'), 1, ${n})` : `randomblob(${n})`);
  const json = pg ? `'{}'::jsonb` : `'{}'`;
  await d.run(
    `INSERT INTO card (id, uid, attest_cert_der, attest_spki_sha256, lifecycle, kvn, labels, profile, created_at, updated_at)
     ${seq} SELECT 'card-' || i, ${bytes(16, 'u')}, ${bytes(400, 'a')}, ${bytes(32, 'k')}, CASE WHEN i % 10 = 0 THEN 'manifest' ELSE 'enrolled' END, 48, ${json}, ${json}, ${T0}, ${T0} FROM s`,
  );
  await d.run(
    `INSERT INTO enrolment (id, card_id, job_id, mode, nonce_hash, status, error_code, expires_at, started_at, finished_at)
     ${seq} SELECT 'enr-' || i, 'card-' || i, NULL, 'admin', ${bytes(32, 'n')}, 'succeeded', NULL, ${T0}, ${T0}, ${T0} FROM s`,
  );
  await d.run(pg ? 'VACUUM ANALYZE' : 'ANALYZE');
}

/** A PostgreSQL literal of an array parameter (EXECUTE takes no bind parameters). */
function literal(v: unknown): string {
  const el = (x: unknown): string =>
    x === null ? 'NULL' : x instanceof Uint8Array ? `"\\\\x${Buffer.from(x).toString('hex')}"` : `"${String(x).replace(/[\\"]/g, (m) => `\\${m}`)}"`;
  return `'${`{${(v as unknown[]).map(el).join(',')}}`.replace(/'/g, "''")}'`;
}

/** The plan lines of the statement openEnrolments runs for `n` nonces. */
async function planOf(d: SqlDriver, pg: boolean, n: number, generic = false): Promise<string[]> {
  const lines: string[] = [];
  const explaining: SqlConn = {
    all: async (q, p) => {
      let k = 0;
      const rows = !generic
        ? await d.all(`${pg ? 'EXPLAIN' : 'EXPLAIN QUERY PLAN'} ${q}`, p)
        : await d.tx(async (c) => {
            await c.run('SET LOCAL plan_cache_mode = force_generic_plan');
            await c.run(`PREPARE enrol_plan_probe AS ${q.replace(/\?/g, () => `$${++k}`)}`);
            const out = await c.all(`EXPLAIN EXECUTE enrol_plan_probe(${(p ?? []).map(literal).join(', ')})`);
            await c.run('DEALLOCATE enrol_plan_probe');
            return out;
          });
      for (const r of rows) lines.push(String(r[pg ? 'QUERY PLAN' : 'detail']));
      return [];
    },
    get: () => Promise.reject(new Error('unexpected get')),
    run: () => Promise.reject(new Error('unexpected run')),
  };
  const items: NewEnrolment[] = Array.from({ length: n }, (_, i) => ({
    uid: Uint8Array.from({ length: 16 }, (_, k) => (i * 31 + k) & 0xff),
    row: { id: randomUUID(), jobId: null, mode: 'admin', nonceHash: new Uint8Array(32).fill(i), status: 'open', errorCode: null, expiresAt: T0, startedAt: T0, finishedAt: null },
  }));
  await (pg ? openEnrolmentsPg(explaining, items) : openEnrolments(explaining, d.dialect, items));
  assert.ok(lines.length > 0);
  return lines;
}

test('batched nonce issue on SQLite: each UID looked up in the card index, no scan of card (query plans)', async () => {
  const t = tempDir('setls-enrplan-');
  const d = new SqliteDriver(join(t.dir, 'op.db'));
  try {
    await fill(d, false);
    for (const n of [2, 14, 64]) {
      const plan = await planOf(d, false, n);
      const all = plan.join(' | ');
      assert.ok(plan.some((l) => /^SEARCH card USING INDEX \S+ \(uid=\?\)/.test(l)), `${n} nonces: card by its uid: ${all}`);
      assert.ok(!plan.some((l) => /^SCAN card/.test(l)), `${n} nonces: no scan of card: ${all}`);
      assert.ok(!plan.some((l) => /AUTOMATIC/.test(l)), `${n} nonces: no automatic index: ${all}`);
    }
  } finally {
    await d.close();
    t.cleanup();
  }
});

const unavailable = await pgUnavailable();
test('batched nonce issue on PostgreSQL: the same (EXPLAIN)', async (t) => {
  if (!skipOrFail(t, unavailable)) return;
  const db = await createTempDb();
  const d = new PgDriver(db.url);
  try {
    await fill(d, true);
    for (const generic of [false, true]) {
      for (const n of [2, 14, 64]) {
        const plan = await planOf(d, true, n, generic);
        const all = `${generic ? 'generic plan' : 'custom plan'}:\n${plan.join('\n')}`;
        const probe = plan.findIndex((l) => /Index (Only )?Scan using \S+ on card/.test(l));
        assert.ok(probe >= 0 && /Index Cond: \(uid = /.test(plan[probe + 1]!), `${n} nonces: card by its uid:\n${all}`);
        assert.ok(!plan.some((l) => /Seq Scan on card|Bitmap Heap Scan on card/.test(l)), `${n} nonces: no scan of card:\n${all}`);
      }
    }
  } finally {
    await d.close();
    await db.drop();
  }
});
