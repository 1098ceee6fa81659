// The OperatorStore contract on PostgreSQL: the SAME suite as SQLite (test/operator/store-suite.ts),
// each test in a throw-away database; plus what is PostgreSQL-specific (types, concurrent job
// sequence numbers across connections, LISTEN/NOTIFY of job changes). Server: SETLS_TEST_PG_URL
// (test/operator/pg-helpers.ts); locally skipped with the reason when unreachable, a failure in CI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { MIGRATIONS, openPgStore, openStore } from '../../src/operator/store/index.js';
import type { OperatorStore } from '../../src/operator/store/types.js';
import { storeSuite } from './store-suite.js';
import { createTempDb, pgUnavailable } from './pg-helpers.js';
import { skipOrFail } from '../ci.js';
import { JobRunner } from '../../src/operator/jobs/runner.js';
import { waitUntil, within } from '../wait.js';

const unavailable = await pgUnavailable();

if (unavailable !== undefined) {
  test('postgres: the store suite needs a PostgreSQL server', (t) => {
    skipOrFail(t, unavailable);
  });
} else {
  storeSuite('postgres', {
    async create() {
      const db = await createTempDb();
      const opened: OperatorStore[] = [];
      try {
        const store = await openPgStore(db.url);
        opened.push(store);
        return {
          store,
          reopen: async () => {
            const s = await openPgStore(db.url);
            opened.push(s);
            return s;
          },
          dispose: async () => {
            for (const s of opened) await s.close();
            await db.drop();
          },
        };
      } catch (e) {
        await db.drop();
        throw e;
      }
    },
  });

  const withDb = async (fn: (url: string) => Promise<void>) => {
    const db = await createTempDb();
    try {
      await fn(db.url);
    } finally {
      await db.drop();
    }
  };

  const seedCard = async (s: OperatorStore, n: number) => {
    const id = randomUUID();
    await s.insertCard({
      id, uid: Uint8Array.of(n >> 8, n & 0xff), batchId: null, attestCertDer: Uint8Array.of(0x30), attestSpkiSha256: new Uint8Array(32).fill(n & 0xff),
      lifecycle: 'manifest', kvn: 0x30, transportKeyId: null, labels: {}, profile: {}, createdAt: 1,
    });
    return id;
  };

  test('postgres: openStore picks PostgreSQL for a postgres:// URL; the schema uses bytea, bigint and jsonb; migrations recorded', async () => {
    await withDb(async (url) => {
      const s = await openStore(url);
      assert.equal(s.dialect, 'postgres');
      await s.close();
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        const cols = await c.query(
          `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'card' AND column_name IN ('uid', 'created_at', 'labels') ORDER BY column_name`,
        );
        assert.deepEqual(cols.rows, [
          { column_name: 'created_at', data_type: 'bigint' },
          { column_name: 'labels', data_type: 'jsonb' },
          { column_name: 'uid', data_type: 'bytea' },
        ]);
        const v = await c.query('SELECT version FROM schema_migrations ORDER BY version');
        assert.deepEqual(v.rows.map((r) => Number(r.version)), MIGRATIONS.map((m) => m.version));
      } finally {
        await c.end();
      }
    });
  });

  test('postgres: jobs created at once through two pools get distinct, increasing sequence numbers', async () => {
    await withDb(async (url) => {
      const a = await openPgStore(url, { max: 4 });
      const b = await openPgStore(url, { max: 4 });
      try {
        const cards: string[] = [];
        for (let i = 0; i < 8; i++) cards.push(await seedCard(a, i));
        const made = await Promise.all(
          Array.from({ length: 40 }, (_, i) =>
            (i % 2 ? a : b).insertJob({ id: randomUUID(), cardId: cards[i % 8]!, kind: 'lock', params: {}, maxAttempts: 1, deadlineAt: null, idempotencyKey: null, createdBy: 't', createdAt: 1 }),
          ),
        );
        const seqs = made.map((j) => j.seq).sort((x, y) => x - y);
        assert.deepEqual(seqs, Array.from({ length: 40 }, (_, i) => i + 1));
      } finally {
        await a.close();
        await b.close();
      }
    });
  });

  test('postgres: a job created through one store wakes a watcher of another (LISTEN/NOTIFY), also a finished one', async () => {
    await withDb(async (url) => {
      const a = await openPgStore(url);
      const b = await openPgStore(url);
      try {
        const card = await seedCard(a, 1);
        let woke = 0;
        let signal: () => void = () => undefined;
        // each wait is bounded: a missing notification fails the test instead of hanging it
        const next = () =>
          new Promise<void>((resolve, reject) => {
            const t = setTimeout(() => reject(new Error('no notification within 15 s')), 15_000);
            signal = () => {
              clearTimeout(t);
              resolve();
            };
          });
        let first = next();
        const stop = await b.watchJobs(() => {
          woke++;
          signal();
        });
        assert.ok(stop, 'PostgreSQL offers notifications');
        await first; // the call after LISTEN is in place
        const before = woke;
        first = next();
        const job = await a.insertJob({ id: randomUUID(), cardId: card, kind: 'lock', params: {}, maxAttempts: 1, deadlineAt: null, idempotencyKey: null, createdBy: 't', createdAt: 1 });
        await first;
        assert.equal(woke, before + 1);
        const claimed = (await a.claimJob({ owner: 'x', now: 2, leaseMs: 1000, kinds: ['lock'] }))!;
        first = next();
        assert.equal(await a.finishJob(job.id, 'x', claimed.attempt, { status: 'succeeded', now: 3 }), true);
        await first;
        await stop!();
      } finally {
        await a.close();
        await b.close();
      }
    });
  });

  test('postgres: a job runner that polls once an hour still runs a job at once when another node finishes the job it waited behind (LISTEN/NOTIFY)', async () => {
    await withDb(async (url) => {
      const a = await openPgStore(url);
      const raw = await openPgStore(url);
      let claims = 0;
      // node B's store, counting the claims its runner made
      const b = new Proxy(raw, {
        get(target, prop) {
          if (prop === 'claimJob') {
            return async (o: Parameters<OperatorStore['claimJob']>[0]) => {
              const r = await target.claimJob(o);
              claims++;
              return r;
            };
          }
          const v = Reflect.get(target, prop) as unknown;
          return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(target) : v;
        },
      });
      let ran!: (id: string) => void;
      const running = new Promise<string>((r) => (ran = r));
      const runner = new JobRunner({ store: b, owner: 'node-b', pollMs: 3_600_000, leaseMs: 60_000 });
      runner.register('lock', async (job) => {
        ran(job.id);
      });
      try {
        const card = await seedCard(a, 1);
        runner.start();
        await waitUntil(() => claims >= 1, 'node B made its first (empty) claim'); // from now on it only polls hourly
        const mk = (kind: string) =>
          a.insertJob({ id: randomUUID(), cardId: card, kind, params: {}, maxAttempts: 1, deadlineAt: null, idempotencyKey: null, createdBy: 't', createdAt: Date.now() - 10 });
        const first = await mk('unlock'); // node A's kind: node B waits behind it
        const second = await mk('lock');
        const held = (await a.claimJob({ owner: 'node-a', now: Date.now(), leaseMs: 60_000, kinds: ['unlock'] }))!;
        assert.equal(held.id, first.id);
        assert.equal(await a.finishJob(first.id, 'node-a', held.attempt, { status: 'succeeded', now: Date.now() }), true);
        assert.equal(await within(running, 'node B runs the job it waited behind, woken by the notification', 15_000), second.id);
        await waitUntil(async () => (await a.jobById(second.id))!.status === 'succeeded', 'node B records the outcome');
      } finally {
        await runner.stop();
        await a.close();
        await raw.close();
      }
    });
  });

  test('postgres: a claim skips a job another node is claiming right now (FOR UPDATE SKIP LOCKED) instead of waiting for it', async () => {
    await withDb(async (url) => {
      const a = await openPgStore(url);
      const b = await openPgStore(url);
      try {
        const mk = async (n: number) => {
          const card = await seedCard(a, n);
          return a.insertJob({ id: randomUUID(), cardId: card, kind: 'lock', params: {}, maxAttempts: 1, deadlineAt: null, idempotencyKey: null, createdBy: 't', createdAt: 1 });
        };
        const j1 = await mk(1);
        const j2 = await mk(2);
        await a.tx(async (t) => {
          // node A's claim of the first job is not committed yet while node B claims
          assert.equal((await t.claimJob({ owner: 'a', now: 10, leaseMs: 1000, kinds: ['lock'] }))!.id, j1.id);
          const other = await within(b.claimJob({ owner: 'b', now: 10, leaseMs: 1000, kinds: ['lock'] }), 'node B claims without waiting for node A', 10_000);
          assert.equal(other?.id, j2.id);
        });
        assert.equal((await a.jobById(j1.id))!.leaseOwner, 'a');
        assert.equal((await a.jobById(j2.id))!.leaseOwner, 'b');
      } finally {
        await a.close();
        await b.close();
      }
    });
  });

  test('postgres: nodes starting at once on an empty database migrate it once (no race on CREATE TABLE)', async () => {
    await withDb(async (url) => {
      const opened = await Promise.allSettled([openPgStore(url), openPgStore(url), openPgStore(url), openPgStore(url)]);
      try {
        for (const r of opened) assert.equal(r.status, 'fulfilled', r.status === 'rejected' ? String(r.reason) : '');
        const s = (opened[0] as PromiseFulfilledResult<OperatorStore>).value;
        assert.equal(await s.schemaVersion(), MIGRATIONS.at(-1)!.version);
      } finally {
        for (const r of opened) if (r.status === 'fulfilled') await r.value.close();
      }
    });
  });

  test('postgres: two nodes writing the same settings, host credential and audit head at once never collide (upserts)', async () => {
    await withDb(async (url) => {
      const a = await openPgStore(url);
      const b = await openPgStore(url);
      try {
        const card = await seedCard(a, 1);
        for (let round = 0; round < 5; round++) {
          await Promise.all(
            [a, b].flatMap((s, i) => [
              s.setMeta(`k${round}`, `v${i}`),
              s.putHostCredential({ id: `h${round}`, name: `n${i}`, credentialHash: new Uint8Array(32).fill(i), createdAt: 1 }),
              s.putAuditHead({ cardId: card, seq: round * 2 + i, headHash: new Uint8Array(32), signature: Uint8Array.of(i), verified: true, time: 1, receivedAt: 1 }),
            ]),
          );
          assert.ok(['v0', 'v1'].includes((await a.getMeta(`k${round}`))!));
          assert.ok(['n0', 'n1'].includes((await a.hostById(`h${round}`))!.name));
        }
      } finally {
        await a.close();
        await b.close();
      }
    });
  });
}
