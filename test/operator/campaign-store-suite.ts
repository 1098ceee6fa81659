/**
 * Campaigns on the OperatorStore contract (issue #16), run by store-suite.ts on every back end
 * (SQLite and PostgreSQL): targets unique per card, counters derived from targets and jobs, the
 * campaign engine's decisions on a fake clock — never more releases than the rate allows in any
 * 60-second window (from the store's own release timestamps), no burst after a restart, no target
 * released twice by two engines ("nodes") on two connections at once, abort after the minimum with
 * the queued jobs canceled, pause/resume/cancel. Jobs here are finished through the store's own
 * claim/finish (the real executors and cards: test/operator/campaigns.test.ts).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { CardLifecycle, OperatorStore } from '../../src/operator/store/types.js';
import { CampaignEngine } from '../../src/operator/campaigns/engine.js';
import type { Principal } from '../../src/operator/auth/tokens.js';
import { storeRunner, type StoreFactory } from './store-factory.js';
import { maxPerWindow } from './rate-window.js';

const T0 = 1_700_000_000_000;
const OPERATOR = { tokenId: 'tok-1', name: 'alice', role: 'operator' } as unknown as Principal;

async function seed(s: OperatorStore, n: number, lifecycle: CardLifecycle = 'active', labels: (i: number) => Record<string, string> = () => ({})): Promise<string[]> {
  const mId = randomUUID();
  await s.addManufacturerCa({ id: mId, name: 'm', certDer: Uint8Array.of(0x30, 2), fingerprint: `f-${mId}`, notAfter: T0 + 1e10, createdAt: T0 });
  const batchId = randomUUID();
  await s.addManifestBatch({ id: batchId, manufacturerCaId: mId, name: 'b', count: n, importedBy: 'test', importedAt: T0 });
  const ids: string[] = [];
  await s.tx(async (t) => {
    for (let i = 0; i < n; i++) {
      const uid = new Uint8Array(16);
      new DataView(uid.buffer).setUint32(12, i + 1);
      const id = randomUUID();
      await t.insertCard({ id, uid, batchId, attestCertDer: Uint8Array.of(0x30, i & 0xff), attestSpkiSha256: uid, lifecycle, kvn: 0x31, transportKeyId: null, labels: labels(i), profile: {}, createdAt: T0 });
      ids.push(id);
    }
  });
  return ids;
}

function clock(start = T0): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}


async function releaseTimes(s: OperatorStore, id: string): Promise<number[]> {
  return (await s.campaignTargets(id, 0, 100_000)).filter((t) => t.state === 'released').map((t) => t.releasedAt!);
}

/** Claims and finishes every claimable job of `kind` (fails the cards in `failing`). */
async function runJobs(s: OperatorStore, now: number, failing: Set<string> = new Set()): Promise<number> {
  let n = 0;
  for (;;) {
    const j = await s.claimJob({ owner: 'w', now, leaseMs: 10_000, kinds: ['rekey', 'lock'] });
    if (!j) return n;
    const fail = failing.has(j.cardId);
    assert.ok(await s.finishJob(j.id, 'w', j.attempt, { status: fail ? 'failed' : 'succeeded', errorCode: fail ? 'ERR_OP_CARD_REFUSED' : null, now }));
    n++;
  }
}

export function campaignStoreSuite(name: string, factory: StoreFactory): void {
  const withStore = storeRunner(factory);

  describe(`campaigns on the store (${name})`, () => {
    test('the selector resolves at creation (state, labels, kind-allowed states); a card is targeted once; counters follow the jobs', async () => {
      await withStore(async (s) => {
        const ids = await seed(s, 12, 'active', (i) => ({ site: i % 2 ? 'lyon' : 'oslo', tier: i < 6 ? 'a' : 'b' }));
        await s.updateCard(ids[1]!, { lifecycle: 'manifest' }, T0); // lyon but not re-keyable: not targeted
        const c = clock();
        const e = new CampaignEngine({ store: s, now: c.now });
        const snap = await e.create({ name: 'lyon a', kind: 'rekey', selector: { state: 'active', labels: { site: 'lyon', tier: 'a' } }, ratePerMinute: 60, abort: { minExecuted: 5, failurePercent: 50 } }, OPERATOR);
        // lyon = odd indexes; tier a = 0..5 → 1, 3, 5; card 1 is not active → 3 and 5
        assert.deepEqual(snap.counters, { targeted: 2, pending: 2, queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0 });
        await s.insertCampaignTargets(snap.row.id, [ids[3]!, ids[3]!, ids[5]!], 10);
        assert.equal((await s.campaignCounters(snap.row.id)).targeted, 2, 'UNIQUE (campaign, card): targeted once');
        assert.equal(await e.step(snap.row.id), 1, 'rate 60/min: one now');
        assert.equal(await e.step(snap.row.id), 0, 'and not another in the same second');
        c.advance(1000);
        assert.equal(await e.step(snap.row.id), 1);
        assert.deepEqual(await s.campaignCounters(snap.row.id), { targeted: 2, pending: 0, queued: 2, running: 0, succeeded: 0, failed: 0, canceled: 0 });
        const jobs = await s.campaignJobs(snap.row.id, null, 10);
        assert.deepEqual(jobs.map((j) => j.cardId).sort(), [ids[3]!, ids[5]!].sort());
        assert.ok(jobs.every((j) => j.kind === 'rekey' && j.campaignId === snap.row.id && j.idempotencyKey === `campaign:${snap.row.id}:${j.cardId}`));
        await runJobs(s, c.now(), new Set([ids[5]!]));
        assert.deepEqual(await s.campaignCounters(snap.row.id), { targeted: 2, pending: 0, queued: 0, running: 0, succeeded: 1, failed: 1, canceled: 0 });
        await e.step(snap.row.id);
        assert.equal((await s.campaignById(snap.row.id))!.state, 'completed', 'below minExecuted: no abort; all done: completed');
        // bad requests are refused before anything is stored
        await assert.rejects(e.create({ name: 'x', kind: 'format-all', ratePerMinute: 1, abort: { minExecuted: 1, failurePercent: 1 } }, OPERATOR), /kind must be one of/);
        await assert.rejects(e.create({ name: 'x', kind: 'lock', ratePerMinute: 0, abort: { minExecuted: 1, failurePercent: 1 } }, OPERATOR), /ratePerMinute/);
        await assert.rejects(e.create({ name: 'x', kind: 'rekey', params: { bogus: 1 }, ratePerMinute: 1, abort: { minExecuted: 1, failurePercent: 1 } }, OPERATOR), /unknown parameter 'bogus'/);
        assert.equal((await s.listCampaigns(undefined, null, 10)).length, 1);
      });
    });

    test('expiringBefore selects the cards whose good certificate expires before the time', async () => {
      await withStore(async (s) => {
        const ids = await seed(s, 4);
        const caId = randomUUID();
        await s.putCa({ id: caId, role: 'issuing', certDer: Uint8Array.of(0x30, 1), keyRef: 'file:ca.key', notAfter: T0 + 1e10, createdAt: T0 });
        for (const [i, notAfter, status] of [[0, T0 + 1000, 'good'], [1, T0 + 9e9, 'good'], [2, T0 + 1000, 'revoked']] as const) {
          const idn = randomUUID();
          const spki = new Uint8Array(32).fill(i + 1);
          await s.insertIdentity({ id: idn, cardId: ids[i]!, slot: 1, alg: 'p256', spkiDer: spki, spkiSha256: spki, state: 'active', attestedAt: T0, createdAt: T0 });
          await s.insertCertificate({ serial: Uint8Array.of(i + 1), identityId: idn, cardId: ids[i]!, caId, jobId: null, enrolmentId: null, subject: 'CN=x', san: {}, notBefore: T0, notAfter, der: Uint8Array.of(0x30), status: status === 'good' ? 'good' : 'revoked', revokedAt: null, reason: null, createdAt: T0 });
        }
        const e = new CampaignEngine({ store: s, now: () => T0 });
        const snap = await e.create({ name: 'renew', kind: 'rekey', selector: { expiringBefore: new Date(T0 + 5000).toISOString() }, ratePerMinute: 10, abort: { minExecuted: 1, failurePercent: 100 } }, OPERATOR);
        assert.equal(snap.counters.targeted, 1);
        assert.deepEqual((await s.campaignTargets(snap.row.id, 0, 10)).map((t) => t.cardId), [ids[0]!]);
        assert.equal(snap.row.selector['expiringBefore'], new Date(T0 + 5000).toISOString());
      });
    });

    test('rollout: never more than ratePerMinute in any 60 s window (store timestamps), one second of burst at most, and no burst after a restart', async () => {
      await withStore(async (s, reopen) => {
        await seed(s, 120);
        const c = clock();
        let e = new CampaignEngine({ store: s, now: c.now });
        const { row } = await e.create({ name: 'slow', kind: 'lock', ratePerMinute: 30, abort: { minExecuted: 1000, failurePercent: 100 } }, OPERATOR);
        const perSecond: number[] = [];
        for (let sec = 0; sec < 150; sec++) {
          if (sec === 70 && reopen) e = new CampaignEngine({ store: await reopen(), now: c.now }); // "restart": a new engine on a new connection
          perSecond.push(await e.step(row.id));
          c.advance(1000);
        }
        const times = await releaseTimes(s, row.id);
        assert.ok(maxPerWindow(times) <= 30, `at most 30 releases in any minute, saw ${maxPerWindow(times)}`);
        assert.ok(Math.max(...perSecond) <= 1, 'rate 30/min: one release at a time');
        // it does release at the rate: 150 s at 30/min → 75 (±1 at the edges)
        assert.ok(times.length >= 74 && times.length <= 76, `released ${times.length}`);
        // a pause of 5 minutes, then resume: no catch-up burst
        await e.pause(row.id, 'alice');
        for (let i = 0; i < 10; i++) {
          assert.equal(await e.step(row.id), 0, 'paused: nothing released');
          c.advance(30_000);
        }
        await e.resume(row.id, 'alice');
        const burst = await e.step(row.id);
        assert.ok(burst <= 1, `no catch-up after a pause (released ${burst} at once)`);
      });
    });

    test('high rate: releases up to one second of the rate per step, still ≤ rate per minute', async () => {
      await withStore(async (s) => {
        await seed(s, 600);
        const c = clock();
        const e = new CampaignEngine({ store: s, now: c.now });
        const { row } = await e.create({ name: 'fast', kind: 'lock', ratePerMinute: 300, abort: { minExecuted: 1000, failurePercent: 100 } }, OPERATOR);
        const perStep: number[] = [];
        // a step every 200 ms for 70 s: the bucket alone would allow its burst on top of a minute's rate
        for (let i = 0; i < 350; i++) {
          perStep.push(await e.step(row.id));
          c.advance(200);
        }
        const times = await releaseTimes(s, row.id);
        assert.ok(maxPerWindow(times) <= 300, `≤ 300 per minute, saw ${maxPerWindow(times)}`);
        assert.ok(Math.max(...perStep) <= 5, 'at most one second of the rate at once');
        assert.ok(times.length >= 330, `released ${times.length} in 70 s at 300/min`);
      });
    });

    test('two engines ("nodes") on two connections stepping at once never release a target twice', async () => {
      await withStore(async (s, reopen) => {
        if (!reopen) return;
        const ids = await seed(s, 300);
        const other = await reopen();
        const c = clock();
        const a = new CampaignEngine({ store: s, now: c.now });
        const b = new CampaignEngine({ store: other, now: c.now });
        const { row } = await a.create({ name: 'race', kind: 'lock', ratePerMinute: 6000, abort: { minExecuted: 1000, failurePercent: 100 } }, OPERATOR);
        let released = 0;
        for (let round = 0; round < 10; round++) {
          const r = await Promise.all([a.step(row.id), b.step(row.id), a.step(row.id), b.step(row.id)]);
          released += r.reduce((x, y) => x + y, 0);
          assert.ok(r.reduce((x, y) => x + y, 0) <= 100, 'one second of burst at 6000/min, whoever releases it');
          c.advance(1000);
        }
        const jobs = await s.campaignJobs(row.id, null, 10_000);
        assert.equal(jobs.length, released);
        assert.equal(new Set(jobs.map((j) => j.cardId)).size, jobs.length, 'one job per card');
        const targets = await s.campaignTargets(row.id, 0, 10_000);
        assert.equal(targets.filter((t) => t.state === 'released').length, released);
        assert.ok(targets.every((t) => (t.state === 'released') === (t.jobId !== null)));
        assert.equal(released, 300, 'all 300 within 10 s at 6000/min');
        assert.equal(ids.length, 300);
      });
    });

    test('abort: after minExecuted with failures ≥ failurePercent → aborted, queued jobs canceled, pending skipped, nothing more released', async () => {
      await withStore(async (s) => {
        const ids = await seed(s, 200);
        const failing = new Set(ids.filter((_, i) => i % 10 === 3)); // 10 %
        const c = clock();
        const e = new CampaignEngine({ store: s, now: c.now });
        const { row } = await e.create({ name: 'abort', kind: 'rekey', ratePerMinute: 600, abort: { minExecuted: 40, failurePercent: 5 } }, OPERATOR);
        for (let i = 0; i < 100 && (await s.campaignById(row.id))!.state === 'running'; i++) {
          await e.step(row.id); // releases up to 10
          // the "runner" finishes 4 jobs between two decisions
          for (let k = 0; k < 4; k++) {
            const j = await s.claimJob({ owner: 'w', now: c.now(), leaseMs: 10_000, kinds: ['rekey'] });
            if (!j) break;
            const fail = failing.has(j.cardId);
            await s.finishJob(j.id, 'w', j.attempt, { status: fail ? 'failed' : 'succeeded', errorCode: fail ? 'ERR_OP_CARD_REFUSED' : null, now: c.now() });
          }
          c.advance(1000);
        }
        const after = (await s.campaignById(row.id))!;
        assert.equal(after.state, 'aborted');
        assert.match(after.abortReason!, /failed/);
        const at = after.abortStats as { succeeded: number; failed: number };
        const executed = at.succeeded + at.failed;
        assert.ok(executed >= 40 && executed < 44, `aborted at the first decision after 40 executed (${executed})`);
        const k = await s.campaignCounters(row.id);
        assert.equal(k.pending, 0);
        assert.equal(k.queued, 0, 'queued jobs canceled');
        assert.equal(k.succeeded + k.failed, executed, 'nothing ran after the abort');
        assert.equal(k.targeted, 200);
        assert.equal(k.canceled, 200 - executed);
        const before = (await s.campaignJobs(row.id, null, 1000)).length;
        c.advance(60_000);
        assert.equal(await e.step(row.id), 0);
        assert.equal((await s.campaignJobs(row.id, null, 1000)).length, before, 'no release after the abort');
      });
    });

    test('abort in the transaction that records the outcome: the outcome that makes the rule hold aborts at once, before any tick, and nothing is claimed after', async () => {
      await withStore(async (s) => {
        const ids = await seed(s, 40);
        const failing = new Set([ids[5]!, ids[6]!]);
        const c = clock();
        // the driver never runs on its own here: only step() releases, only recordOutcome decides
        const e = new CampaignEngine({ store: s, now: c.now });
        const { row } = await e.create({ name: 'in-tx', kind: 'rekey', ratePerMinute: 6000, abort: { minExecuted: 8, failurePercent: 20 } }, OPERATOR);
        assert.equal(await e.step(row.id), 40, 'every target released up front (one second of 6000/min)');
        let executed = 0;
        let failed = 0;
        let expectAbortAt = -1;
        for (;;) {
          const j = await s.claimJob({ owner: 'w', now: c.now(), leaseMs: 10_000, kinds: ['rekey'] });
          if (!j) break;
          const fail = failing.has(j.cardId);
          assert.ok(await e.recordOutcome(j, (t) => t.finishJob(j.id, 'w', j.attempt, { status: fail ? 'failed' : 'succeeded', errorCode: fail ? 'ERR_OP_CARD_REFUSED' : null, now: c.now() }), fail));
          executed++;
          if (fail) failed++;
          if (expectAbortAt < 0 && executed >= 8 && failed * 100 >= 20 * executed) expectAbortAt = executed;
          if (expectAbortAt > 0) break;
        }
        assert.ok(expectAbortAt > 0, 'the rule came to hold');
        const after = (await s.campaignById(row.id))!;
        assert.equal(after.state, 'aborted', 'aborted by the outcome itself, no step() ran');
        const at = after.abortStats as { succeeded: number; failed: number };
        assert.equal(at.succeeded + at.failed, expectAbortAt, 'decided at exactly the outcome that made the rule hold');
        assert.equal(await s.claimJob({ owner: 'w2', now: c.now(), leaseMs: 10_000, kinds: ['rekey'] }), null, 'its queued jobs are canceled: nothing left to claim');
        assert.equal((await s.campaignCounters(row.id)).canceled, 40 - expectAbortAt);
      });
    });

    test('two nodes recording outcomes and stepping at once on two connections: one abort, no deadlock, nothing claimable after', async () => {
      await withStore(async (s, reopen) => {
        if (!reopen) return;
        await seed(s, 80);
        const other = await reopen();
        const c = clock();
        const a = new CampaignEngine({ store: s, now: c.now });
        const b = new CampaignEngine({ store: other, now: c.now });
        const { row } = await a.create({ name: 'race-abort', kind: 'rekey', ratePerMinute: 6000, abort: { minExecuted: 20, failurePercent: 50 } }, OPERATOR);
        assert.equal(await a.step(row.id), 80);
        // each node claims 20 jobs on its own connection; every job fails
        const claimed: [CampaignEngine, OperatorStore, Awaited<ReturnType<OperatorStore['claimJob']>>][] = [];
        for (let i = 0; i < 20; i++) {
          claimed.push([a, s, await s.claimJob({ owner: 'a', now: c.now(), leaseMs: 10_000, kinds: ['rekey'] })]);
          claimed.push([b, other, await other.claimJob({ owner: 'b', now: c.now(), leaseMs: 10_000, kinds: ['rekey'] })]);
        }
        const outcomes = await Promise.all([
          ...claimed.map(([e, , j], i) => e.recordOutcome(j!, (t) => t.finishJob(j!.id, i % 2 ? 'b' : 'a', j!.attempt, { status: 'failed', errorCode: 'ERR_OP_CARD_REFUSED', now: c.now() }), true)),
          a.step(row.id).then(() => true),
          b.step(row.id).then(() => true),
        ]);
        assert.ok(outcomes.every((x) => x === true), 'every outcome written');
        const after = (await s.campaignById(row.id))!;
        assert.equal(after.state, 'aborted');
        const at = after.abortStats as { succeeded: number; failed: number };
        assert.equal(at.succeeded + at.failed, 20, 'aborted at the outcome that met the minimum');
        const aborted = (await s.listEvents(null, 1000)).filter((e) => e.kind === 'campaign.aborted' && e.subject === row.id);
        assert.equal(aborted.length, 1, 'aborted once');
        assert.equal(await other.claimJob({ owner: 'b', now: c.now(), leaseMs: 10_000, kinds: ['rekey'] }), null);
        const k = await s.campaignCounters(row.id);
        assert.equal(k.failed, 40, 'the 20 outcomes after the abort still count');
        assert.equal(k.queued, 0);
        assert.equal(k.canceled, 40);
      });
    });

    test('past its minimum, a failure that tips the share still aborts in its own outcome; beyond exactLimit the tick decides; campaignOutcomes counts at most its limit', async () => {
      await withStore(async (s) => {
        await seed(s, 24);
        const c = clock();
        // the campaign row locks the engine takes in its transactions
        let locks = 0;
        const bind = <T extends object>(o: T, p: string | symbol): unknown => {
          const v = Reflect.get(o, p) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(o) : v;
        };
        const counting = new Proxy(s, {
          get: (o, p) =>
            p === 'tx'
              ? <R>(fn: (t: OperatorStore) => Promise<R>) => o.tx((t) => fn(new Proxy(t, { get: (tt, q) => (q === 'lockCampaign' && locks++, bind(tt, q)) })))
              : bind(o, p),
        });
        const run = async (exactLimit: number): Promise<{ id: string; finish: (status: 'succeeded' | 'failed') => Promise<void>; e: CampaignEngine }> => {
          const e = new CampaignEngine({ store: counting, now: c.now, exactLimit });
          const { row } = await e.create({ name: `limit ${exactLimit}`, kind: 'rekey', ratePerMinute: 6000, abort: { minExecuted: 2, failurePercent: 50 } }, OPERATOR);
          c.advance(1000);
          assert.ok((await e.step(row.id)) > 0);
          const finish = async (status: 'succeeded' | 'failed'): Promise<void> => {
            const j = (await s.claimJob({ owner: 'w', now: c.now(), leaseMs: 10_000, kinds: ['rekey'] }))!;
            assert.equal(j.campaignId, row.id);
            assert.ok(await e.recordOutcome(j, (t) => t.finishJob(j.id, 'w', j.attempt, { status, now: c.now() }), status === 'failed'));
          };
          return { id: row.id, finish, e };
        };
        // 4 successes (past the minimum), then failures: the 4th (4 of 8) tips the share in its own transaction
        const a = await run(100);
        for (let i = 0; i < 4; i++) await a.finish('succeeded');
        assert.deepEqual(await s.campaignOutcomes(a.id, 4), { succeeded: 4, failed: 0, exact: false }, 'cut at the limit');
        assert.deepEqual(await s.campaignOutcomes(a.id, 5), { succeeded: 4, failed: 0, exact: true });
        for (let i = 0; i < 3; i++) await a.finish('failed');
        assert.equal((await s.campaignById(a.id))!.state, 'running', '3 of 7: not yet');
        await a.finish('failed');
        const aborted = (await s.campaignById(a.id))!;
        assert.equal(aborted.state, 'aborted', 'decided by the outcome itself, no step() ran');
        assert.deepEqual([(aborted.abortStats as { succeeded: number }).succeeded, (aborted.abortStats as { failed: number }).failed], [4, 4]);
        // the same with exactLimit 6: past 6 executed the outcome does not count; the tick decides
        const b = await run(6);
        for (let i = 0; i < 4; i++) await b.finish('succeeded');
        for (let i = 0; i < 2; i++) await b.finish('failed');
        // 6 executed: the count was cut; the campaign's later outcomes take neither the lock nor the count
        locks = 0;
        for (let i = 0; i < 2; i++) await b.finish('failed');
        assert.equal(locks, 0, 'past exactLimit, a failure is written without the campaign lock');
        assert.equal((await s.campaignById(b.id))!.state, 'running', 'beyond the limit: left to the tick');
        assert.equal(await b.e.step(b.id), 0);
        assert.equal((await s.campaignById(b.id))!.state, 'aborted', 'the tick decides');
      });
    });

    test('an expired campaign job (deadline passed while queued) is recorded with the abort decision too', async () => {
      await withStore(async (s) => {
        await seed(s, 3);
        const c = clock();
        const e = new CampaignEngine({ store: s, now: c.now });
        const { row } = await e.create({ name: 'expiry', kind: 'rekey', ratePerMinute: 6000, abort: { minExecuted: 1, failurePercent: 100 } }, OPERATOR);
        assert.equal(await e.step(row.id), 3);
        c.advance(24 * 3600_000); // past every job's deadline
        const [j] = await s.jobsToExpire(c.now(), 1);
        assert.ok(j);
        assert.ok(await e.recordOutcome(j, (t) => t.expireJob(j.id, j.attempt, { status: 'timed_out', errorCode: 'ERR_OP_JOB_TIMEOUT', errorMessage: 'deadline', now: c.now() }), true));
        assert.equal((await s.campaignById(row.id))!.state, 'aborted');
        assert.equal((await s.campaignCounters(row.id)).canceled, 2);
      });
    });

    test('recordOutcome on a job of no campaign just writes it; a write that does not apply decides nothing', async () => {
      await withStore(async (s) => {
        const [card] = await seed(s, 1);
        const c = clock();
        const e = new CampaignEngine({ store: s, now: c.now });
        await s.insertJob({ id: randomUUID(), cardId: card!, campaignId: null, kind: 'lock', params: {}, maxAttempts: 1, deadlineAt: null, idempotencyKey: null, createdBy: 'test', createdAt: c.now() });
        const j = (await s.claimJob({ owner: 'w', now: c.now(), leaseMs: 10_000, kinds: ['lock'] }))!;
        assert.equal(await e.recordOutcome(j, (t) => t.finishJob(j.id, 'someone else', j.attempt, { status: 'failed', now: c.now() }), true), false);
        assert.equal(await e.recordOutcome(j, (t) => t.finishJob(j.id, 'w', j.attempt, { status: 'succeeded', now: c.now() }), false), true);
        assert.equal((await s.jobById(j.id))!.status, 'succeeded');
      });
    });

    test('pause/resume/cancel: state rules, cancel skips pending targets and cancels queued jobs', async () => {
      await withStore(async (s) => {
        await seed(s, 10);
        const c = clock();
        const e = new CampaignEngine({ store: s, now: c.now });
        const { row } = await e.create({ name: 'pc', kind: 'lock', ratePerMinute: 180, abort: { minExecuted: 100, failurePercent: 100 } }, OPERATOR);
        assert.equal(await e.step(row.id), 3);
        await assert.rejects(e.resume(row.id, 'alice'), (err: { code?: string }) => err.code === 'ERR_OP_CAMPAIGN_STATE');
        assert.equal((await e.pause(row.id, 'alice')).row.state, 'paused');
        c.advance(10_000);
        assert.equal(await e.step(row.id), 0);
        const progress: unknown[] = [];
        e.on('progress', (v) => progress.push(v));
        const done = await e.cancel(row.id, 'alice');
        assert.equal(done.row.state, 'canceled');
        assert.ok(done.row.finishedAt !== null);
        assert.deepEqual(done.counters, { targeted: 10, pending: 0, queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 10 });
        assert.equal((progress.at(-1) as { state: string }).state, 'canceled', 'the emitter announced the final state');
        await assert.rejects(e.pause(row.id, 'alice'), (err: { code?: string }) => err.code === 'ERR_OP_CAMPAIGN_STATE');
        await assert.rejects(e.cancel(randomUUID(), 'alice'), (err: { code?: string }) => err.code === 'ERR_OP_UNKNOWN_CAMPAIGN');
      });
    });
  });
}
