/**
 * bench/campaign: the campaign engine at fleet size — 10 000 cards in a real store (SQLite, or
 * PostgreSQL with --pg), the real CampaignEngine (selector, rate bucket and window, abort decision,
 * releases under the campaign's row lock) and the real JobRunner (claims, leases, outcomes). What it
 * does NOT include is the card: each job's executor stands for the SCP03 re-key script (it records
 * that it ran, and the 10 % "failing" cards throw the card-refused error a refusing card causes);
 * the real re-key through real cards and agents is test/operator/campaigns.test.ts (60 cards) and
 * campaigns-kill.test.ts (SIGKILL mid-campaign). Reports engine throughput (cards/s), the release
 * rate per 60 s window against the set rate, the abort point, and lost / doubled jobs.
 * Not part of `npm run bench`. imports src/operator/store, campaigns, jobs.
 *
 *   node --import tsx bench/campaign.ts [--n 10000] [--rate 30000] [--pg postgres://…(empty db)]
 *
 * With --real the card step is real (bench/campaign-real.ts: emulated ISD cards, device agents,
 * SCP03 re-key executor); --agents K, --concurrency C (job runner), --abort-min, --no-failing:
 *   node --import tsx bench/campaign.ts --real [--n 500] [--rate 600] [--agents 8] [--concurrency 8]
 */
import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { openPgStore, openSqliteStore } from '../src/operator/store/index.js';
import type { OperatorStore } from '../src/operator/store/types.js';
import { CampaignEngine } from '../src/operator/campaigns/engine.js';
import { JobError, JobRunner } from '../src/operator/jobs/runner.js';
import { OpErrorCode } from '../src/operator/errors.js';
import type { Principal } from '../src/operator/auth/tokens.js';
import { maxPerWindow } from '../test/operator/rate-window.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '10000' },
    rate: { type: 'string', default: '30000' },
    pg: { type: 'string' },
    real: { type: 'boolean', default: false },
    agents: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '8' },
    'abort-min': { type: 'string' },
    'no-failing': { type: 'boolean', default: false },
  },
});
const N = Number(values.n);
const RATE = Number(values.rate);
const OPERATOR = { tokenId: 'bench', name: 'bench', role: 'operator' } as unknown as Principal;

async function seed(s: OperatorStore, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 500) {
    await s.tx(async (t) => {
      for (let k = i; k < Math.min(n, i + 500); k++) {
        const id = randomUUID();
        await t.insertCard({ id, uid: new Uint8Array(randomBytes(16)), batchId: null, attestCertDer: new Uint8Array(64), attestSpkiSha256: new Uint8Array(randomBytes(32)), lifecycle: 'active', kvn: 0x31, transportKeyId: null, labels: { fleet: 'bench' }, profile: {}, createdAt: Date.now() });
        ids.push(id);
      }
    });
  }
  return ids;
}


async function run(store: OperatorStore, label: string, failing: Set<string>, abort: { minExecuted: number; failurePercent: number }): Promise<Record<string, unknown>> {
  const ran = new Map<string, number>(); // card → executions
  // wired as the Operator wires them (src/operator/operator.ts): a campaign job's outcome is recorded
  // with the abort decision, and a finished campaign job pokes the engine (progress, completion)
  let poke = (): void => undefined;
  const runner: JobRunner = new JobRunner({ store, pollMs: 20, concurrency: 32, leaseMs: 30_000, onFinish: () => poke(), recordOutcome: (job, write, failed) => engine.recordOutcome(job, write, failed) });
  const engine = new CampaignEngine({ store, tickMs: 100, pokeDelayMs: 20, onRelease: () => runner.poke(), log: { info: () => undefined, error: (o, m) => console.error(m, o) } });
  poke = () => engine.poke();
  runner.register('rekey', async (job) => {
    ran.set(job.cardId, (ran.get(job.cardId) ?? 0) + 1);
    // a real executor waits on the agent (I/O): yield to the event loop as it would
    await new Promise((r) => setTimeout(r, 2));
    if (failing.has(job.cardId)) throw new JobError(OpErrorCode.cardRefused, 'the card refused the key generation (6A84)');
    return { modelled: true };
  });
  const t0 = Date.now();
  const { row } = await engine.create({ name: label, kind: 'rekey', selector: { labels: { fleet: 'bench' } }, ratePerMinute: RATE, abort }, OPERATOR);
  const created = Date.now();
  runner.start();
  engine.start();
  let c = (await engine.snapshot(row.id))!;
  while (!['completed', 'aborted', 'canceled'].includes(c.row.state) || c.counters.running > 0 || c.counters.queued > 0) {
    await new Promise((r) => setTimeout(r, 200));
    c = (await engine.snapshot(row.id))!;
    if (process.env['BENCH_TRACE']) console.error(Date.now() - created, c.row.state, JSON.stringify(c.counters));
  }
  const done = Date.now();
  await engine.stop();
  await runner.stop();
  const targets = await store.campaignTargets(row.id, 0, N + 1);
  const jobs = await store.campaignJobs(row.id, null, N + 1);
  const jobsPerCard = new Map<string, number>();
  for (const j of jobs) jobsPerCard.set(j.cardId, (jobsPerCard.get(j.cardId) ?? 0) + 1);
  const released = targets.filter((t) => t.state === 'released');
  const jobIds = new Set(jobs.map((j) => j.id));
  const lost = released.filter((t) => !jobIds.has(t.jobId!)).length + jobs.filter((j) => j.status === 'queued' || j.status === 'in_progress').length;
  const executed = c.counters.succeeded + c.counters.failed;
  const stats = c.row.abortStats as { succeeded?: number; failed?: number } | null;
  return {
    run: label,
    store: store.dialect,
    cards: N,
    ratePerMinute: RATE,
    state: c.row.state,
    createSeconds: (created - t0) / 1000,
    seconds: (done - created) / 1000,
    cardsPerSecond: Math.round((executed / ((done - created) / 1000)) * 10) / 10,
    released: released.length,
    maxReleasesIn60s: maxPerWindow(released.map((t) => t.releasedAt!)),
    counters: c.counters,
    abortAtExecuted: stats ? (stats.succeeded ?? 0) + (stats.failed ?? 0) : null,
    abortReason: c.row.abortReason,
    lostJobs: lost,
    cardsWithTwoJobs: [...jobsPerCard.values()].filter((n) => n > 1).length,
    cardsExecutedTwice: [...ran.values()].filter((n) => n > 1).length,
    executions: [...ran.values()].reduce((a, b) => a + b, 0),
  };
}

if (values.real) {
  const { runReal } = await import('./campaign-real.js');
  await runReal({ n: N, rate: RATE, agents: Number(values.agents), concurrency: Number(values.concurrency), abortMin: Number(values['abort-min'] ?? Math.min(500, Math.ceil(N / 5))), skipFailing: values['no-failing'] });
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), 'setls-bench-campaign-'));
try {
  const open = async (): Promise<OperatorStore> => (values.pg ? openPgStore(values.pg) : openSqliteStore(join(dir, `op-${randomUUID()}.db`)));
  for (const [label, failRate, abort] of [
    ['all succeed', 0, { minExecuted: 500, failurePercent: 5 }],
    ['10 % failing', 0.1, { minExecuted: 500, failurePercent: 5 }],
  ] as const) {
    const store = await open();
    const cards = await seed(store, N);
    const failing = new Set(cards.filter((_, i) => failRate > 0 && i % Math.round(1 / failRate) === 3));
    console.log(JSON.stringify(await run(store, label, failing, abort)));
    await store.close();
    if (values.pg) break; // one run per (empty) PostgreSQL database
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
