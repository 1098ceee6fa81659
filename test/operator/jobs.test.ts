// The durable job runner (src/operator/jobs/runner.ts) over the SQLite store: leases, fencing,
// retries, deadlines, checkpoints — with an injected clock (no sleeps) — and a real process killed
// with SIGKILL while it holds a job, whose job another runner then finishes exactly once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/operator/store/index.js';
import type { CardRow, JobRow, OperatorStore } from '../../src/operator/store/types.js';
import { JobError, JobRunner, type JobContext } from '../../src/operator/jobs/runner.js';
import { tempDir } from './helpers.js';
import { waitUntil, within } from '../wait.js';

let tmp: ReturnType<typeof tempDir>;
let dbPath: string;
let store: OperatorStore;
let batchId: string;
let clock = 1_700_000_000_000;
const now = (): number => clock;

before(async () => {
  tmp = tempDir('setls-jobs-');
  dbPath = join(tmp.dir, 'operator.db');
  store = await openSqliteStore(dbPath);
  const mId = randomUUID();
  await store.addManufacturerCa({ id: mId, name: 'm', certDer: Uint8Array.of(0x30), fingerprint: 'f', notAfter: clock + 1e12, createdAt: clock });
  batchId = randomUUID();
  await store.addManifestBatch({ id: batchId, manufacturerCaId: mId, name: 'b', count: 0, importedBy: 't', importedAt: clock });
});
after(async () => {
  await store.close();
  tmp.cleanup();
});

let uidCounter = 0;
async function newCard(): Promise<CardRow> {
  const uid = new Uint8Array(16);
  new DataView(uid.buffer).setUint32(12, ++uidCounter);
  const id = randomUUID();
  await store.insertCard({ id, uid, batchId, attestCertDer: Uint8Array.of(0x30), attestSpkiSha256: new Uint8Array(32), lifecycle: 'active', kvn: 0x31, transportKeyId: null, labels: {}, profile: {}, createdAt: clock });
  return (await store.cardById(id))!;
}

async function newJob(card: CardRow, kind = 'lock', o: { maxAttempts?: number; deadlineAt?: number | null } = {}): Promise<JobRow> {
  return store.insertJob({ id: randomUUID(), cardId: card.id, kind, params: {}, maxAttempts: o.maxAttempts ?? 3, deadlineAt: o.deadlineAt ?? null, idempotencyKey: null, createdBy: 't', createdAt: clock });
}

/** A promise with its resolver (to hold an executor inside a job). */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

test('two runners, one crashes holding a job: the other finishes everything after the lease expires; nothing completes twice', async () => {
  const cards = await Promise.all([1, 2, 3, 4, 5].map(() => newCard()));
  const jobs: JobRow[] = [];
  for (const c of cards) jobs.push(await newJob(c));
  // two more for the first card: they must run after its first job, in order
  jobs.push(await newJob(cards[0]!, 'lock'), await newJob(cards[0]!, 'lock'));
  const victim = jobs[0]!;
  const executions = new Map<string, string[]>(); // job → runners that started it
  const completedOrder: string[] = [];
  const inFlight = new Set<string>();
  const held = gate();
  const executor = (name: string) => async (job: JobRow) => {
    assert.ok(!inFlight.has(job.id), `job ${job.id} is running twice at once`);
    inFlight.add(job.id);
    executions.set(job.id, [...(executions.get(job.id) ?? []), name]);
    try {
      if (name === 'A' && job.id === victim.id) await held.promise; // A "dies" in here
      completedOrder.push(`${name}:${job.id}`);
      return { by: name, attempt: job.attempt };
    } finally {
      if (!(name === 'A' && job.id === victim.id)) inFlight.delete(job.id);
    }
  };
  const leaseMs = 30_000;
  const a = new JobRunner({ store, owner: 'A', leaseMs, heartbeatMs: 3_600_000, now, concurrency: 1 }).register('lock', executor('A'));
  const b = new JobRunner({ store, owner: 'B', leaseMs, heartbeatMs: 3_600_000, now, concurrency: 2 }).register('lock', executor('B'));
  const aRun = a.runOnce();
  await waitUntil(() => executions.get(victim.id)?.[0] === 'A', 'runner A holds the first job');
  a.crash();
  inFlight.delete(victim.id); // A is dead: its execution no longer counts as running
  // B runs what it can now: the other cards' jobs; the victim (leased) and the first card's later jobs wait.
  while ((await b.runOnce()) > 0);
  assert.equal((await store.jobById(victim.id))!.status, 'in_progress');
  for (const j of jobs.slice(5)) assert.equal((await store.jobById(j.id))!.status, 'queued', 'later jobs of the same card wait');
  clock += leaseMs + 1; // the lease of the dead runner expires
  while ((await b.runOnce()) > 0);
  held.open(); // the dead runner's executor returns late: nothing may be recorded
  await within(aRun, 'the crashed runner settles');
  for (const j of jobs) {
    const row = (await store.jobById(j.id))!;
    assert.equal(row.status, 'succeeded', j.id);
    assert.equal((row.result as { by: string }).by, 'B');
  }
  const victimRow = (await store.jobById(victim.id))!;
  assert.equal(victimRow.attempt, 2);
  assert.deepEqual(executions.get(victim.id), ['A', 'B']);
  for (const j of jobs.slice(1)) assert.deepEqual(executions.get(j.id), ['B'], 'every other job ran once');
  assert.equal(completedOrder.filter((e) => e.endsWith(victim.id)).length, 2, 'A reached the end too late; only B recorded it');
  const firstCard = [victim.id, jobs[5]!.id, jobs[6]!.id].map((id) => `B:${id}`);
  assert.deepEqual(completedOrder.filter((e) => firstCard.includes(e)), firstCard, 'per-card order kept');
});

test('a stalled runner that lost its lease cannot record its outcome or checkpoints (fencing)', async () => {
  const card = await newCard();
  const job = await newJob(card);
  const stall = gate();
  let cCtx: JobContext | null = null;
  const c = new JobRunner({ store, owner: 'C', leaseMs: 1000, heartbeatMs: 3_600_000, now }).register('lock', async (_j, ctx) => {
    cCtx = ctx;
    await stall.promise;
    return { by: 'C' };
  });
  const d = new JobRunner({ store, owner: 'D', leaseMs: 1000, heartbeatMs: 3_600_000, now }).register('lock', async () => ({ by: 'D' }));
  const cRun = c.runOnce();
  await waitUntil(async () => (await store.jobById(job.id))!.leaseOwner === 'C', 'C claimed');
  clock += 1001;
  assert.equal(await d.runOnce(), 1);
  stall.open();
  await cRun; // C's executor returned { by: 'C' }: the store refuses C's outcome (owner/attempt fencing)
  const row = (await store.jobById(job.id))!;
  assert.deepEqual(row.result, { by: 'D' });
  await assert.rejects(cCtx!.checkpoint({ from: 'C' }), { code: 'ERR_OP_LEASE_LOST' });
  assert.deepEqual((await store.jobById(job.id))!.progress, {});
});

test('retryable failures are retried after a back-off; an integrity failure fails at once with reason integrity', async () => {
  const card = await newCard();
  const flaky = await newJob(card, 'unblock-pin', { maxAttempts: 3 });
  const card2 = await newJob(await newCard(), 'rekey');
  let calls = 0;
  const r = new JobRunner({ store, owner: 'R', leaseMs: 10_000, heartbeatMs: 3_600_000, backoffBaseMs: 5_000, now })
    .register('unblock-pin', async (job) => {
      calls++;
      if (job.attempt < 3) throw new JobError('ERR_OP_INTERNAL', 'agent unavailable', { retryable: true });
      return { attempts: job.attempt };
    })
    .register('rekey', async () => {
      throw new JobError('ERR_OP_INTEGRITY', 'R-MAC mismatch on response 3');
    });
  await r.runOnce();
  let row = (await store.jobById(flaky.id))!;
  assert.equal(row.status, 'queued');
  assert.equal(row.errorCode, 'ERR_OP_INTERNAL');
  assert.equal(row.notBefore, clock + 5_000);
  const failed = (await store.jobById(card2.id))!;
  assert.equal(failed.status, 'failed');
  assert.equal(failed.errorCode, 'ERR_OP_INTEGRITY');
  assert.deepEqual(failed.result, { reason: 'integrity' });
  assert.equal(failed.attempt, 1, 'no retry after an integrity failure');
  assert.equal(await r.runOnce(), 0, 'nothing before the back-off');
  clock += 5_000;
  await r.runOnce();
  assert.equal((await store.jobById(flaky.id))!.notBefore, clock + 10_000, 'back-off doubles');
  clock += 10_000;
  await r.runOnce();
  row = (await store.jobById(flaky.id))!;
  assert.equal(row.status, 'succeeded');
  assert.deepEqual(row.result, { attempts: 3 });
  assert.equal(calls, 3);
});

test('deadlines: a queued job past its deadline times out; a crashed runner out of attempts leaves the job failed (abandoned)', async () => {
  const late = await newJob(await newCard(), 'lock', { deadlineAt: clock + 100 });
  const one = await newJob(await newCard(), 'terminate', { maxAttempts: 1 });
  const hang = gate();
  const r1 = new JobRunner({ store, owner: 'X', leaseMs: 500, heartbeatMs: 3_600_000, now }).register('terminate', async () => hang.promise.then(() => ({})));
  const run = r1.runOnce();
  await waitUntil(async () => (await store.jobById(one.id))!.status === 'in_progress', 'claimed');
  r1.crash();
  clock += 1000;
  const r2 = new JobRunner({ store, owner: 'Y', leaseMs: 500, now }).register('terminate', async () => ({})).register('lock', async () => ({}));
  await r2.runOnce();
  const lateRow = (await store.jobById(late.id))!;
  assert.equal(lateRow.status, 'timed_out');
  assert.equal(lateRow.errorCode, 'ERR_OP_JOB_TIMEOUT');
  const oneRow = (await store.jobById(one.id))!;
  assert.equal(oneRow.status, 'failed');
  assert.equal(oneRow.errorCode, 'ERR_OP_JOB_ABANDONED');
  hang.open();
  await run;
});

test('checkpoints survive a crash: the next attempt sees the progress of the last one', async () => {
  const job = await newJob(await newCard(), 'enrol');
  const hang = gate();
  const seen: unknown[] = [];
  const first = new JobRunner({ store, owner: 'P1', leaseMs: 1000, heartbeatMs: 3_600_000, now }).register('enrol', async (j, ctx) => {
    seen.push(j.progress);
    await ctx.checkpoint({ step: 'key-generated', slot: 1 });
    await hang.promise;
    return {};
  });
  const run = first.runOnce();
  await waitUntil(async () => (await store.jobById(job.id))!.progress['step'] === 'key-generated', 'checkpoint written');
  first.crash();
  clock += 1001;
  const second = new JobRunner({ store, owner: 'P2', leaseMs: 1000, now }).register('enrol', async (j) => {
    seen.push(j.progress);
    return { resumedFrom: j.progress['step'] ?? null };
  });
  await second.runOnce();
  assert.deepEqual(seen, [{}, { step: 'key-generated', slot: 1 }]);
  assert.deepEqual((await store.jobById(job.id))!.result, { resumedFrom: 'key-generated' });
  hang.open();
  await run;
});

test('SIGKILL of a runner process holding a job: another process finishes it once the lease expires', async () => {
  const job = await newJob(await newCard(), 'lock');
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'fixtures', 'crash-runner.ts'), dbPath, '1500'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await waitUntil(() => out.includes(`claimed ${job.id}`), () => `the child claimed the job (stdout ${out}, stderr ${err})`, 60_000);
  child.kill('SIGKILL');
  await within(exited, 'the killed runner exits');
  const held = (await store.jobById(job.id))!;
  assert.equal(held.status, 'in_progress');
  assert.equal(held.leaseOwner, 'doomed');
  assert.deepEqual(held.progress, { step: 'started-by-doomed' });
  let runs = 0;
  const survivor = new JobRunner({ store, owner: 'survivor', leaseMs: 10_000 }).register('lock', async (j) => {
    runs++;
    return { resumedFrom: j.progress['step'] ?? null, attempt: j.attempt };
  });
  // real time now: poll until the child's lease (1.5 s) has expired and the job is taken over
  await waitUntil(async () => (await survivor.runOnce()) > 0 || (await store.jobById(job.id))!.status === 'succeeded', 'the survivor took the job over', 60_000, 100);
  const row = (await store.jobById(job.id))!;
  assert.equal(row.status, 'succeeded');
  assert.deepEqual(row.result, { resumedFrom: 'started-by-doomed', attempt: 2 });
  assert.equal(runs, 1);
});
