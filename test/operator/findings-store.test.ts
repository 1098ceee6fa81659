// The store part of the audits (store/findings.ts) on SQLite AND PostgreSQL, the same cases on
// both: one live finding per (check, subject) — also when two nodes (two stores on one database)
// record the same condition at once —, auto-resolution of what a run did not see, manual
// resolution and its suppression, the audit run lease (one holder, the interval remembered), the
// listing (filters, keyset pages) and the counts the metrics read. PostgreSQL: SETLS_TEST_PG_URL
// (skipped locally without it, a failure in CI).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { openPgStore, openSqliteStore } from '../../src/operator/store/index.js';
import type { FindingReport, OperatorStore } from '../../src/operator/store/types.js';
import { createTempDb, pgUnavailable } from './pg-helpers.js';
import { skipOrFail } from '../ci.js';
import { tempDir } from './helpers.js';
import { AuditService, type AuditCheck } from '../../src/operator/audits/index.js';
import { OpError } from '../../src/operator/errors.js';

const T0 = 1_700_000_000_000;

interface Backend {
  /** Two stores on one fresh database (two "nodes"), and the disposer. */
  open(): Promise<{ a: OperatorStore; b: OperatorStore; dispose: () => Promise<void> }>;
}

const sqlite: Backend = {
  async open() {
    const t = tempDir('setls-findings-');
    const path = join(t.dir, 'operator.db');
    const a = await openSqliteStore(path);
    const b = await openSqliteStore(path);
    return { a, b, dispose: async () => { await a.close(); await b.close(); t.cleanup(); } };
  },
};

const postgres: Backend = {
  async open() {
    const db = await createTempDb();
    const a = await openPgStore(db.url);
    const b = await openPgStore(db.url);
    return { a, b, dispose: async () => { await a.close(); await b.close(); await db.drop(); } };
  },
};

async function seedCard(s: OperatorStore, n: number): Promise<string> {
  const id = randomUUID();
  await s.insertCard({
    id, uid: Uint8Array.of(0xaa, n), batchId: null, attestCertDer: Uint8Array.of(0x30), attestSpkiSha256: new Uint8Array(32).fill(n),
    lifecycle: 'active', kvn: 0x31, transportKeyId: null, labels: {}, profile: {}, createdAt: T0,
  });
  return id;
}

const report = (subject: string, cardId: string | null = null, check = 'card-not-seen'): FindingReport => ({ check, subject, cardId, severity: 'low', detail: { n: subject } });

async function openCount(s: OperatorStore, check: string, subject?: string): Promise<number> {
  const rows = await s.listFindings({ check, status: 'open' }, null, 1000);
  return rows.filter((r) => subject === undefined || r.subject === subject).length;
}

function suite(name: string, backend: Backend, unavailable: () => Promise<string | undefined>): void {
  describe(`findings store (${name})`, () => {
    const withStores = async (t: import('node:test').TestContext, fn: (a: OperatorStore, b: OperatorStore) => Promise<void>) => {
      if (!skipOrFail(t, await unavailable())) return;
      const { a, b, dispose } = await backend.open();
      try {
        await fn(a, b);
      } finally {
        await dispose();
      }
    };

    test('a condition seen again updates its open finding (last_seen moves, detail replaced); unseen ones are resolved auto', async (t) => {
      await withStores(t, async (s) => {
        const card = await seedCard(s, 1);
        assert.equal(await s.recordFinding(report('x', card), T0 + 10), 'new');
        assert.equal(await s.recordFinding(report('y'), T0 + 10), 'new');
        assert.equal(await s.recordFinding({ ...report('x', card), severity: 'high', detail: { again: true } }, T0 + 20), 'seen');
        const [x] = (await s.listFindings({ check: 'card-not-seen' }, null, 10)).filter((f) => f.subject === 'x');
        assert.equal(x!.firstSeenAt, T0 + 10);
        assert.equal(x!.lastSeenAt, T0 + 20);
        assert.equal(x!.severity, 'high');
        assert.deepEqual(x!.detail, { again: true });
        assert.deepEqual(x!.cardUid, Uint8Array.of(0xaa, 1));
        assert.equal(await openCount(s, 'card-not-seen'), 2);
        // a run at T0 + 20 saw x only: y is resolved, x stays
        assert.equal(await s.resolveUnseenFindings('card-not-seen', T0 + 20, T0 + 30), 1);
        const y = (await s.listFindings({ status: 'resolved' }, null, 10))[0]!;
        assert.equal(y.subject, 'y');
        assert.equal(y.resolution, 'auto');
        assert.equal(y.resolvedBy, 'audit');
        assert.equal(y.resolvedAt, T0 + 30);
        // another check's findings are not touched
        assert.equal(await s.resolveUnseenFindings('shared-key', T0 + 100, T0 + 100), 0);
        assert.equal(await openCount(s, 'card-not-seen', 'x'), 1);
        // the condition of y comes back: a NEW finding, the resolved one stays as history
        assert.equal(await s.recordFinding(report('y'), T0 + 40), 'new');
        assert.equal((await s.listFindings({ check: 'card-not-seen' }, null, 10)).filter((f) => f.subject === 'y').length, 2);
      });
    });

    test('two nodes recording the same condition at once open ONE finding (partial unique index, insert-or-update)', async (t) => {
      await withStores(t, async (a, b) => {
        for (let round = 0; round < 5; round++) {
          const outcomes = await Promise.all(Array.from({ length: 16 }, (_, i) => (i % 2 ? a : b).recordFinding(report(`k${round}`), T0 + round * 100 + i)));
          assert.equal(outcomes.filter((o) => o === 'new').length, 1, `round ${round}: ${outcomes.join(',')}`);
          assert.equal(await openCount(a, 'card-not-seen', `k${round}`), 1);
        }
        assert.equal((await a.countOpenFindingsByCheck())['card-not-seen'], 5);
      });
    });

    test('resolved by hand: fixed is reported again by the next run; accepted / false-positive are not while the condition lasts', async (t) => {
      await withStores(t, async (s) => {
        await s.recordFinding(report('f'), T0);
        await s.recordFinding(report('a'), T0);
        const byS = async (sub: string) => (await s.listFindings({}, null, 100)).filter((f) => f.subject === sub);
        const f = (await byS('f'))[0]!;
        const a = (await byS('a'))[0]!;
        assert.equal(await s.resolveFinding(f.id, 'fixed', 'alice', T0 + 1), true);
        assert.equal(await s.resolveFinding(f.id, 'accepted', 'alice', T0 + 2), false, 'only an open finding');
        assert.equal(await s.resolveFinding(a.id, 'accepted', 'bob', T0 + 1), true);
        const got = (await s.findingById(a.id))!;
        assert.equal(got.status, 'resolved');
        assert.equal(got.resolution, 'accepted');
        assert.equal(got.resolvedBy, 'bob');
        assert.equal(got.suppressing, true);
        // next run still sees both conditions
        assert.equal(await s.recordFinding(report('f'), T0 + 10), 'new');
        assert.equal(await s.recordFinding(report('a'), T0 + 10), 'suppressed');
        assert.equal((await s.findingById(a.id))!.lastSeenAt, T0 + 10);
        assert.equal(await s.resolveUnseenFindings('card-not-seen', T0 + 10, T0 + 10), 0);
        // a run that no longer sees 'a' ends the suppression; when it comes back it is new
        assert.equal(await s.resolveUnseenFindings('card-not-seen', T0 + 20, T0 + 20), 1, 'f resolved auto');
        assert.equal((await s.findingById(a.id))!.suppressing, false);
        assert.equal(await s.recordFinding(report('a'), T0 + 30), 'new');
        assert.equal(await s.findingById(randomUUID()), null);
      });
    });

    test('listing: newest first, filters by check, status and card, keyset pages that neither skip nor repeat', async (t) => {
      await withStores(t, async (s) => {
        const c1 = await seedCard(s, 1);
        const c2 = await seedCard(s, 2);
        for (let i = 0; i < 25; i++) await s.recordFinding(report(`s${i}`, i % 2 ? c1 : c2, i % 3 ? 'card-not-seen' : 'cert-expiring'), T0 + Math.floor(i / 2));
        const seen: string[] = [];
        let after: { firstSeenAt: number; id: string } | null = null;
        for (;;) {
          const page: Awaited<ReturnType<OperatorStore['listFindings']>> = await s.listFindings({}, after, 4);
          if (page.length === 0) break;
          seen.push(...page.map((f) => f.subject));
          const last = page.at(-1)!;
          after = { firstSeenAt: last.firstSeenAt, id: last.id };
        }
        assert.equal(seen.length, 25);
        assert.equal(new Set(seen).size, 25);
        const all = await s.listFindings({}, null, 100);
        for (let i = 1; i < all.length; i++) assert.ok(all[i - 1]!.firstSeenAt >= all[i]!.firstSeenAt);
        assert.equal((await s.listFindings({ cardId: c1 }, null, 100)).length, 12);
        assert.equal((await s.listFindings({ check: 'cert-expiring' }, null, 100)).length, 9);
        assert.equal((await s.listFindings({ check: 'cert-expiring', cardId: c2, status: 'open' }, null, 100)).length, 5);
        assert.deepEqual(await s.countOpenFindingsByCheck(), { 'card-not-seen': 16, 'cert-expiring': 9 });
      });
    });

    test('the audit lease: one holder at a time across nodes; a periodic run waits for the interval since the last run; an expired lease is taken over', async (t) => {
      await withStores(t, async (a, b) => {
        const got = await Promise.all([a.acquireAuditLease('audits', 'A', T0, 60_000, 0), b.acquireAuditLease('audits', 'B', T0, 60_000, 0)]);
        assert.deepEqual(got.filter(Boolean).length, 1, 'exactly one node holds it');
        const holder = got[0] ? 'A' : 'B';
        const other = holder === 'A' ? b : a;
        assert.equal(await other.acquireAuditLease('audits', 'C', T0 + 1, 60_000, 0), false);
        await (holder === 'A' ? a : b).releaseAuditLease('audits', holder, T0 + 100);
        // a periodic run (interval 1 h) right after the last one: skipped; a manual one goes
        assert.equal(await other.acquireAuditLease('audits', 'C', T0 + 200, 60_000, 3_600_000), false);
        assert.equal(await other.acquireAuditLease('audits', 'C', T0 + 200, 60_000, 0), true);
        // C dies holding it: taken over only after its lease expired
        assert.equal(await a.acquireAuditLease('audits', 'D', T0 + 30_000, 60_000, 0), false);
        assert.equal(await a.acquireAuditLease('audits', 'D', T0 + 200 + 60_000, 60_000, 0), true);
      });
    });

    test('two nodes running audits at once: one run at a time (periodic: the other skips; asked for: ERR_OP_AUDIT_RUNNING), one finding; a failing check resolves nothing', async (t) => {
      await withStores(t, async (a, b) => {
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        let entered!: () => void;
        const inside = new Promise<void>((r) => (entered = r));
        let fail = false;
        const check = (wait: boolean): AuditCheck => ({
          name: 'card-not-seen',
          async run() {
            if (fail) throw new Error('the check broke');
            if (wait) {
              entered();
              await gate;
            }
            return { reports: [report('same')], truncated: false };
          },
        });
        let clock = T0;
        const now = () => clock;
        const nodeA = new AuditService({ store: a, now, owner: 'A', checks: [check(true)] });
        const nodeB = new AuditService({ store: b, now, owner: 'B', checks: [check(false)] });
        const runA = nodeA.run({ minIntervalMs: 3_600_000 });
        await inside; // A holds the lease and is inside its check
        assert.equal(await nodeB.run({ minIntervalMs: 3_600_000 }), null, 'a periodic run on B skips');
        await assert.rejects(nodeB.run(), (e: unknown) => e instanceof OpError && e.code === 'ERR_OP_AUDIT_RUNNING');
        release();
        const r = (await runA)!;
        assert.deepEqual(r.checks['card-not-seen'], { open: 1, new: 1, resolved: 0 });
        // right after A's run, B's periodic run (interval 1 h) still skips; an asked-for one runs and adds nothing
        clock += 1000;
        assert.equal(await nodeB.run({ minIntervalMs: 3_600_000 }), null);
        assert.deepEqual((await nodeB.run())!.checks['card-not-seen'], { open: 1, new: 0, resolved: 0 });
        assert.equal(await openCount(a, 'card-not-seen'), 1);
        // a check that throws reports its error and leaves its findings open
        fail = true;
        clock += 1000;
        const broken = (await nodeB.run())!.checks['card-not-seen']!;
        assert.equal(broken.error, 'the check broke');
        assert.equal(broken.resolved, 0);
        assert.equal(await openCount(a, 'card-not-seen'), 1);
      });
    });

    test('enrolments counted by mode and result (the metrics read it)', async (t) => {
      await withStores(t, async (s) => {
        const card = await seedCard(s, 1);
        const add = (status: string, n: number) =>
          s.insertEnrolment({ id: randomUUID(), cardId: card, jobId: null, mode: 'admin', nonceHash: new Uint8Array(32).fill(n), status, errorCode: null, expiresAt: T0, startedAt: T0, finishedAt: null });
        await add('open', 1);
        await add('succeeded', 2);
        await add('succeeded', 3);
        await add('refused', 4);
        await s.insertEnrolment({ id: randomUUID(), cardId: card, jobId: null, mode: 'est', nonceHash: new Uint8Array(32).fill(5), status: 'succeeded', errorCode: null, expiresAt: T0, startedAt: T0, finishedAt: T0 });
        assert.deepEqual(await s.countEnrolments(), [
          { mode: 'admin', status: 'open', count: 1 },
          { mode: 'admin', status: 'refused', count: 1 },
          { mode: 'admin', status: 'succeeded', count: 2 },
          { mode: 'est', status: 'succeeded', count: 1 },
        ]);
      });
    });
  });
}

suite('sqlite', sqlite, async () => undefined);
suite('postgres', postgres, pgUnavailable);
