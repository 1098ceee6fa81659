/**
 * bench/campaign-real: `bench/campaign.ts --real` — the campaign over REAL emulated cards, not a
 * stand-in step. N cards made of the real ISD applet on its in-memory test platform
 * (test/operator/isd-fixture.ts: TestCard, personalised by the real factory sequence), spread over K
 * real device agents (HTTPS long-poll to the operator on loopback; at most 64 cards per agent, the
 * relay's heartbeat limit; one script at a time per agent), a real operator (startOperator: API,
 * relay hub, executors, job runner with concurrency C, campaign driver, SQLite store), all in this
 * one process. Stages, each timed:
 *   1. make the N cards; import their manifests (POST /v1/manifests, batches of 500);
 *   2. enrol every card (POST /v1/cards/{uid}/enrol: SCP03 take-ownership, key generated and
 *      attested in the card, CSR, issuance, install, activate) — enrolments/s;
 *   3. a re-key campaign (POST /v1/campaigns) over all N at --rate per minute: cards/s, the largest
 *      number released in any 60 s window vs the rate, then per card: exactly one campaign job, one
 *      certificate issued by it, the card's certificates = one good + one superseded, and the card's
 *      OWN audit log (platform.record().audit) shows exactly 2 key generations and 2 certificate
 *      installations (enrolment + this re-key) — lost / doubled counts;
 *   4. on the same fleet, 10 % of the cards refuse the key generation (every wrapped STORE DATA
 *      answered 6A84, as test/operator/campaigns.test.ts injects it) and a second re-key campaign
 *      with abort {minExecuted, failurePercent}: the executed count the abort decision saw, and that
 *      no job was created / no target released after the abort.
 * Memory (process.memoryUsage) and the load average are printed after each stage. JSON lines.
 * imports test/operator/isd-fixture (like bench/operator.ts imports test helpers), src/operator,
 * src/gp/admin/audit, src/protocol/isd.
 */
import { loadavg } from 'node:os';
import { toHex } from '../src/bytes/index.js';
import { parseAuditEntry } from '../src/gp/admin/audit.js';
import { AuditEvent, Fn } from '../src/protocol/isd.js';
import { RelayLimits } from '../src/relay/index.js';
import { makeBench, makeManufacturing, TestCard, type Bench } from '../test/operator/isd-fixture.js';
import { maxPerWindow } from '../test/operator/rate-window.js';

export interface RealOptions {
  readonly n: number;
  readonly rate: number;
  readonly agents: number;
  readonly concurrency: number;
  readonly abortMin: number;
  readonly skipFailing: boolean;
}

const r1 = (x: number): number => Math.round(x * 10) / 10;
const mb = (x: number): number => Math.round(x / 1048576);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const isStoreData = (a: Uint8Array): boolean => a[1] === 0xe2 && a[0] !== 0x80;

function sys(): Record<string, number> {
  const m = process.memoryUsage();
  const l = loadavg();
  return { rssMB: mb(m.rss), heapUsedMB: mb(m.heapUsed), externalMB: mb(m.external + m.arrayBuffers), load1: r1(l[0]!), load5: r1(l[1]!) };
}
const say = (o: Record<string, unknown>): void => console.log(JSON.stringify({ ...o, ...sys() }));


/** Runs `fn` over `items` with at most `width` at a time. */
async function pool<T>(items: readonly T[], width: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

function auditCounts(card: TestCard): { gen: number; install: number } {
  let gen = 0;
  let install = 0;
  for (const raw of card.platform.record().audit.entries) {
    const e = parseAuditEntry(raw);
    if (e.event !== AuditEvent.functionExecuted) continue;
    const fn = (e.detail[0]! << 8) | e.detail[1]!;
    if (fn === Fn.generateIdentityKey) gen++;
    if (fn === Fn.installCertificateChain) install++;
  }
  return { gen, install };
}

export async function runReal(o: RealOptions): Promise<void> {
  const k = Math.max(o.agents, Math.ceil(o.n / RelayLimits.maxCards));
  const perAgent = Math.ceil(o.n / k);
  say({ stage: 'params', cards: o.n, agents: k, cardsPerAgent: perAgent, runnerConcurrency: o.concurrency, ratePerMinute: o.rate, store: 'sqlite', processes: 'one (operator, agents, cards)' });
  const m = await makeManufacturing();
  let t = performance.now();
  const cards: TestCard[] = [];
  for (let i = 0; i < o.n; i++) cards.push(await TestCard.create(m));
  say({ stage: 'cards made', seconds: r1((performance.now() - t) / 1000) });

  const bench: Bench = await makeBench(m, {
    runner: { pollMs: 200, leaseMs: 120_000, concurrency: o.concurrency },
    campaigns: { tickMs: 250, pokeDelayMs: 20 },
    scriptTimeoutMs: 120_000,
    sweepMs: 3_600_000,
  });
  const store = bench.svc.operator.store;
  try {
    for (let i = 0; i < o.n; i += 500) {
      const r = await bench.api('POST', '/v1/manifests', { cards: cards.slice(i, i + 500).map((c) => c.manifestEntry({ labels: { fleet: 'bench' } })) });
      if (r.status !== 201 && r.status !== 200) throw new Error(`manifest import: ${r.status} ${r.body.toString()}`);
    }
    for (let i = 0; i < o.n; i += perAgent) await bench.startAgent(cards.slice(i, i + perAgent), `dev-${i / perAgent}`);
    while (bench.svc.relay.hosts().length < k) await sleep(50);

    // ---- 2. enrolment of every card
    t = performance.now();
    const before = await store.countJobsByStatus();
    await pool(cards, 16, async (c) => void (await bench.job(c.uidHex, 'enrol')));
    let lastEnrolReport = performance.now();
    for (;;) {
      const s = await store.countJobsByStatus();
      const ended = (s['succeeded'] ?? 0) + (s['failed'] ?? 0) + (s['timed_out'] ?? 0) + (s['canceled'] ?? 0) - ((before['succeeded'] ?? 0) + (before['failed'] ?? 0));
      if (ended >= o.n) {
        if ((s['succeeded'] ?? 0) < o.n) throw new Error(`enrolment: ${JSON.stringify(s)}`);
        break;
      }
      if (performance.now() - lastEnrolReport > 60_000) {
        lastEnrolReport = performance.now();
        say({ stage: 'enrolling', seconds: r1((lastEnrolReport - t) / 1000), jobs: s });
      }
      await sleep(500);
    }
    const enrolS = (performance.now() - t) / 1000;
    say({ stage: 'enrolled', cards: o.n, seconds: r1(enrolS), enrolmentsPerSecond: r1(o.n / enrolS) });

    // ---- 3. re-key campaign, all succeed
    const uidToCard = new Map(cards.map((c) => [c.uidHex, c]));
    const runCampaign = async (name: string, abort: { minExecuted: number; failurePercent: number }): Promise<{ id: string; seconds: number; view: Record<string, any> }> => {
      const r = await bench.api('POST', '/v1/campaigns', { name, kind: 'rekey', selector: { state: 'active', labels: { fleet: 'bench' } }, ratePerMinute: o.rate, abort });
      if (r.status !== 201) throw new Error(`campaign: ${r.status} ${r.body.toString()}`);
      const id = r.json().id as string;
      const t0 = performance.now();
      let lastReport = t0;
      let v: Record<string, any>;
      for (;;) {
        v = (await bench.api('GET', `/v1/campaigns/${id}`)).json();
        if (['completed', 'aborted', 'canceled'].includes(v['state']) && v['counters'].running === 0 && v['counters'].queued === 0) break;
        if (performance.now() - lastReport > 60_000) {
          lastReport = performance.now();
          say({ stage: `${name}: progress`, seconds: r1((lastReport - t0) / 1000), state: v['state'], counters: v['counters'] });
        }
        await sleep(1000);
      }
      return { id, seconds: (performance.now() - t0) / 1000, view: v };
    };

    const one = await runCampaign('rekey all', { minExecuted: Math.min(500, o.n), failurePercent: 5 });
    const targets = await store.campaignTargets(one.id, 0, o.n + 1);
    const jobs = await store.campaignJobs(one.id, null, o.n + 1);
    const jobsPerCard = new Map<string, number>();
    for (const j of jobs) jobsPerCard.set(j.cardId, (jobsPerCard.get(j.cardId) ?? 0) + 1);
    let lost = 0;
    let doubled = 0;
    let certWrong = 0;
    let auditWrong = 0;
    const auditSample: Record<string, number> = {};
    for (const c of cards) {
      const row = (await store.cardByUid(c.uid))!;
      const nJobs = jobsPerCard.get(row.id) ?? 0;
      const job = jobs.find((j) => j.cardId === row.id);
      const issued = job ? (await store.certificatesOfJob(job.id)).length : 0;
      const statuses = (await store.certificatesOfCard(row.id)).map((x) => x.status).sort().join(',');
      const a = auditCounts(c);
      auditSample[`gen${a.gen}/install${a.install}`] = (auditSample[`gen${a.gen}/install${a.install}`] ?? 0) + 1;
      if (nJobs === 0 || job!.status !== 'succeeded' || issued === 0 || a.gen < 2) lost++;
      if (nJobs > 1 || (job && job.attempt !== 1) || issued > 1 || a.gen > 2 || a.install > 2) doubled++;
      if (statuses !== 'good,superseded') certWrong++;
      if (a.gen !== 2 || a.install !== 2) auditWrong++;
    }
    const released = targets.filter((x) => x.releasedAt !== null);
    say({
      stage: 'campaign 1: re-key all (real cards)',
      state: one.view['state'],
      counters: one.view['counters'],
      seconds: r1(one.seconds),
      cardsPerSecond: r1(one.view['counters'].succeeded / one.seconds),
      ratePerMinute: o.rate,
      maxReleasedIn60s: maxPerWindow(released.map((x) => x.releasedAt!)),
      jobs: jobs.length,
      lost,
      doubled,
      cardsWithWrongCertificates: certWrong,
      cardsWithWrongAuditCounts: auditWrong,
      cardAuditLogs: auditSample,
    });
    if (o.skipFailing) return;

    // ---- 4. 10 % of the cards refuse the key generation; abort criterion
    const failing = new Set(cards.filter((_, i) => i % 10 === 4).map((c) => c.uidHex));
    for (const c of cards) if (failing.has(c.uidHex)) c.filter = async (apdu, next) => (isStoreData(apdu) ? Uint8Array.of(0x6a, 0x84) : next(apdu));
    const abort = { minExecuted: o.abortMin, failurePercent: 5 };
    const two = await runCampaign('rekey with 10 % failing', abort);
    const row = (await store.campaignById(two.id))!;
    const jobs2 = await store.campaignJobs(two.id, null, o.n + 1);
    const targets2 = await store.campaignTargets(two.id, 0, o.n + 1);
    const at = row.abortStats as { succeeded?: number; failed?: number } | null;
    let wrongFailures = 0;
    let gen3 = 0;
    for (const j of jobs2.filter((x) => x.status === 'failed')) {
      const card = uidToCard.get(toHex((await store.cardById(j.cardId))!.uid))!;
      if (!failing.has(card.uidHex)) wrongFailures++;
    }
    for (const j of jobs2.filter((x) => x.status === 'succeeded')) {
      const card = uidToCard.get(toHex((await store.cardById(j.cardId))!.uid))!;
      if (auditCounts(card).gen === 3) gen3++;
    }
    say({
      stage: 'campaign 2: 10 % of the cards refuse the key generation',
      state: row.state,
      abortReason: row.abortReason,
      abort,
      executedAtAbort: at ? (at.succeeded ?? 0) + (at.failed ?? 0) : null,
      abortCounters: at,
      counters: two.view['counters'],
      seconds: r1(two.seconds),
      jobsCreatedAfterAbort: jobs2.filter((j) => j.createdAt > row.finishedAt!).length,
      targetsReleasedAfterAbort: targets2.filter((x) => x.releasedAt !== null && x.releasedAt > row.finishedAt!).length,
      failedJobsOnNonFailingCards: wrongFailures,
      succeededJobs: jobs2.filter((x) => x.status === 'succeeded').length,
      succeededWithThirdKeyGenInCardLog: gen3,
    });
  } finally {
    await bench.close();
  }
}
