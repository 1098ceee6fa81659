/**
 * What the store's hot reads cost as a fleet grows, checked without timing: the SQLite query plans
 * of the statements a job claim and a campaign's counters actually run (recorded by a driver that
 * wraps the real one, then EXPLAIN QUERY PLAN on the same text and parameters).
 *  - claimJob: each statement walks an index in seq order and stops at the first claimable job —
 *    no "MULTI-INDEX OR" gathering every queued job and no temporary B-tree sorting them (that made
 *    a claim cost tens of ms with 10 000 queued campaign jobs: bench/campaign.ts --real);
 *  - campaignCounters: counts from covering indexes only — no job row looked up per target (the
 *    engine reads the counters at every decision, several times a second).
 * Behaviour (which job is claimed, counter values) stays covered by the shared store suite; here
 * the claim order is re-checked too. imports src/operator/store, campaigns/engine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { SqliteDriver } from '../../src/operator/store/sqlite-driver.js';
import { SqlStore, SQLITE_SQL, type SqlConn, type SqlDriver } from '../../src/operator/store/index.js';
import { CampaignEngine } from '../../src/operator/campaigns/engine.js';
import type { Principal } from '../../src/operator/auth/tokens.js';
import { tempDir } from './helpers.js';

type Stmt = { sql: string; params: readonly unknown[] };

/** The real SQLite driver, recording every statement (outside and inside transactions). */
function recording(inner: SqliteDriver): { driver: SqlDriver; log: Stmt[] } {
  const log: Stmt[] = [];
  const wrap = (c: SqlConn): SqlConn => ({
    all: (sql, p) => (log.push({ sql, params: p ?? [] }), c.all(sql, p)),
    get: (sql, p) => (log.push({ sql, params: p ?? [] }), c.get(sql, p)),
    run: (sql, p) => (log.push({ sql, params: p ?? [] }), c.run(sql, p)),
  });
  const outer = wrap(inner);
  const driver: SqlDriver = {
    dialect: inner.dialect,
    all: outer.all,
    get: outer.get,
    run: outer.run,
    tx: (fn) => inner.tx((c) => fn(wrap(c))),
    execScript: (s) => inner.execScript(s),
    close: () => inner.close(),
  };
  return { driver, log };
}

async function plans(inner: SqliteDriver, stmts: readonly Stmt[]): Promise<string[]> {
  const out: string[] = [];
  for (const s of stmts.filter((x) => /^\s*SELECT/i.test(x.sql))) {
    for (const r of await inner.all(`EXPLAIN QUERY PLAN ${s.sql}`, s.params as never)) out.push(String(r['detail']));
  }
  return out;
}

test('a job claim and a campaign\'s counters read index ranges, not every queued job or every target (SQLite query plans)', async () => {
  const t = tempDir('setls-plans-');
  const inner = new SqliteDriver(join(t.dir, 'op.db'));
  const { driver, log } = recording(inner);
  const store = await SqlStore.open(driver, SQLITE_SQL);
  try {
    const now = Date.now();
    for (let i = 0; i < 300; i++) {
      await store.insertCard({ id: randomUUID(), uid: new Uint8Array(randomBytes(16)), batchId: null, attestCertDer: new Uint8Array(64), attestSpkiSha256: new Uint8Array(randomBytes(32)), lifecycle: 'active', kvn: 0x31, transportKeyId: null, labels: { fleet: 'p' }, profile: {}, createdAt: now });
    }
    const engine = new CampaignEngine({ store, log: { info: () => undefined, error: () => undefined } });
    const { row } = await engine.create({ name: 'p', kind: 'rekey', selector: { labels: { fleet: 'p' } }, ratePerMinute: 600_000, abort: { minExecuted: 10, failurePercent: 50 } }, { tokenId: 't', name: 't', role: 'operator' } as unknown as Principal);
    while ((await engine.step(row.id)) > 0);
    const jobs = await store.campaignJobs(row.id, null, 1000);
    assert.equal(jobs.length, 300, 'every target released: 300 queued jobs');

    log.length = 0;
    const claimed = await store.claimJob({ owner: 'n1', now: Date.now(), leaseMs: 60_000, kinds: ['rekey'] });
    assert.equal(claimed?.seq, Math.min(...jobs.map((j) => j.seq)), 'the oldest queued job');
    const claimPlan = await plans(inner, log);
    assert.ok(claimPlan.length > 0);
    assert.ok(!claimPlan.some((l) => /TEMP B-TREE/.test(l)), `no sort of the queued jobs per claim: ${claimPlan.join(' | ')}`);
    assert.ok(!claimPlan.some((l) => /MULTI-INDEX OR/.test(l)), `no gathering of every queued job: ${claimPlan.join(' | ')}`);
    // an expired lease on an OLDER job than every queued one is taken over first (the lower seq)
    const second = await store.claimJob({ owner: 'n2', now: Date.now() + 120_000, leaseMs: 60_000, kinds: ['rekey'] });
    assert.equal(second?.id, claimed!.id, 'the expired lease, older than the queued jobs, is claimed first');
    assert.equal(second?.attempt, 2);

    log.length = 0;
    const k = await store.campaignCounters(row.id);
    assert.deepEqual(k, { targeted: 300, pending: 0, queued: 299, running: 1, succeeded: 0, failed: 0, canceled: 0 });
    const countPlan = await plans(inner, log);
    const reads = countPlan.filter((l) => /^(SEARCH|SCAN) /.test(l));
    assert.ok(reads.length > 0);
    assert.ok(reads.every((l) => /USING COVERING INDEX/.test(l)), `counts from covering indexes, no row per target: ${countPlan.join(' | ')}`);
  } finally {
    await store.close();
    t.cleanup();
  }
});
