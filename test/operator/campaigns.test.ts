/**
 * Campaigns end to end (issue #16) against real cards: the security domain on its in-memory test
 * platform (test/operator/isd-fixture.ts), behind real device agents over HTTPS, a real operator
 * (startOperator: API, relay, executors, runner, campaign driver). Cards are enrolled by jobs, then
 * a re-key campaign created through POST /v1/campaigns runs:
 *  - on all cards at a set rate: each card re-keyed exactly once (one job, one new certificate, the
 *    one the card now serves), never more releases per 60 s window than the rate (the store's own
 *    release timestamps), progress over server-sent events ending with `completed`;
 *  - with 10 % of the cards really failing (the card refuses the key generation with a status
 *    word): aborted at the first outcome where the rule holds (not before the minimum), its queued
 *    jobs canceled, nothing released after;
 *  - pause / resume / cancel and the REST errors.
 * The 10 000-card run is `npm run bench -- --only campaign` (bench/campaign.ts); a SIGKILL of the
 * operator mid-campaign: test/operator/campaigns-kill.test.ts.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { spawn } from 'node:child_process';
import { SlotStatus } from '../../src/gp/admin/constants.js';
import { makeBench, makeManufacturing, TestCard, type Bench, type Manufacturing } from './isd-fixture.js';
import { join } from 'node:path';
import { createApiToken } from '../../src/operator/auth/tokens.js';
import { call } from './helpers.js';
import { Command } from 'commander';
import { registerOperatorCommands } from '../../src/cli/operator-commands.js';
import { registerCampaignCommands } from '../../src/cli/operator-campaigns.js';
import { waitUntil } from '../wait.js';
import { maxPerWindow } from './rate-window.js';

const N = Number(process.env['SETLS_CAMPAIGN_TEST_CARDS'] ?? 60);
const AGENTS = 10;
let m: Manufacturing;
let bench: Bench;
let cards: TestCard[] = [];
let hosts = 0;

/** A wrapped STORE DATA (the operator's functions) on an admin channel. */
const isStoreData = (a: Uint8Array): boolean => a[1] === 0xe2 && a[0] !== 0x80;

async function enrolledCards(n: number, label: Record<string, string>): Promise<TestCard[]> {
  const out: TestCard[] = [];
  for (let i = 0; i < n; i++) out.push(await TestCard.create(m));
  const r = await bench.api('POST', '/v1/manifests', { cards: out.map((c) => c.manifestEntry({ labels: label })) });
  assert.ok(r.status === 201 || r.status === 200, r.body.toString());
  const per = Math.ceil(n / AGENTS);
  for (let i = 0; i < n; i += per) await bench.startAgent(out.slice(i, i + per), `dev-${++hosts}`);
  const jobs = await Promise.all(out.map((c) => bench.job(c.uidHex, 'enrol')));
  for (const j of jobs) assert.equal((await bench.wait(j.id)).status, 'succeeded');
  return out;
}


/** Reads `GET /v1/campaigns/{id}/events` until the server ends it; returns the events. */
function readEvents(id: string): Promise<{ status: number; type: string; events: { event: string; data: any }[] }> {
  const u = new URL(`${bench.url}/v1/campaigns/${id}/events`);
  return new Promise((resolve, reject) => {
    const req = request(
      { hostname: u.hostname, port: u.port, path: u.pathname, method: 'GET', ca: bench.tlsCaPem, agent: false, headers: { authorization: `Bearer ${bench.adminToken}`, accept: 'text/event-stream' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          const events = text
            .split('\n\n')
            .filter((b) => b.startsWith('event:'))
            .map((b) => ({ event: /^event: (.*)$/m.exec(b)![1]!, data: JSON.parse(/^data: (.*)$/m.exec(b)![1]!) }));
          resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), events });
        });
      },
    );
    req.setTimeout(300_000, () => req.destroy(new Error('event stream: no end')));
    req.on('error', reject);
    req.end();
  });
}

before(async () => {
  m = await makeManufacturing();
  bench = await makeBench(m, { runner: { pollMs: 50, leaseMs: 10_000, concurrency: 8 }, campaigns: { tickMs: 100, pokeDelayMs: 10 } });
  cards = await enrolledCards(N, { fleet: 'main' });
});
after(() => bench.close());

const campaign = async (id: string): Promise<Record<string, any>> => (await bench.api('GET', `/v1/campaigns/${id}`)).json();

test(`a re-key campaign over ${N} real cards at a set rate: each card re-keyed exactly once, ≤ rate per minute, progress streamed until completed`, async () => {
  const slotsBefore = cards.map((c) => c.platform.record().slots.find((s) => s.status === SlotStatus.active)!.slot);
  const rate = 1200; // 20 per second
  const r = await bench.api('POST', '/v1/campaigns', { name: 'rotate all', kind: 'rekey', selector: { state: 'active', labels: { fleet: 'main' } }, ratePerMinute: rate, abort: { minExecuted: 10, failurePercent: 20 } }, { 'idempotency-key': 'rotate-1' });
  assert.equal(r.status, 201, r.body.toString());
  const c = r.json();
  assert.equal(c.state, 'running');
  assert.equal(c.counters.targeted, N);
  // the same request again (Idempotency-Key): the same campaign, not a second one
  const again = await bench.api('POST', '/v1/campaigns', { name: 'rotate all', kind: 'rekey', selector: { state: 'active', labels: { fleet: 'main' } }, ratePerMinute: rate, abort: { minExecuted: 10, failurePercent: 20 } }, { 'idempotency-key': 'rotate-1' });
  assert.equal(again.json().id, c.id);
  const stream = await readEvents(c.id);
  assert.equal(stream.status, 200);
  assert.match(stream.type, /^text\/event-stream/);
  if (stream.events[0]!.data.state === 'running') assert.ok(stream.events.length >= 2, 'the view at once, then changes');
  assert.ok(stream.events.every((e) => e.event === 'progress' && e.data.id === c.id));
  const last = stream.events.at(-1)!.data;
  assert.equal(last.state, 'completed', 'the stream ends after the final state');
  assert.deepEqual(last.counters, { targeted: N, pending: 0, queued: 0, running: 0, succeeded: N, failed: 0, canceled: 0 });
  // the counters the stream showed only moved forward
  for (let i = 1; i < stream.events.length; i++) assert.ok(stream.events[i]!.data.counters.succeeded >= stream.events[i - 1]!.data.counters.succeeded);

  const store = bench.svc.operator.store;
  const targets = await store.campaignTargets(c.id, 0, 100_000);
  assert.equal(targets.length, N);
  assert.ok(maxPerWindow(targets.map((t) => t.releasedAt!)) <= rate);
  const jobs = await store.campaignJobs(c.id, null, 100_000);
  assert.equal(jobs.length, N, 'one job per card');
  assert.equal(new Set(jobs.map((j) => j.cardId)).size, N);
  assert.ok(jobs.every((j) => j.status === 'succeeded' && j.attempt === 1), 'each ran once');
  for (let i = 0; i < N; i++) {
    const card = cards[i]!;
    const row = (await store.cardByUid(card.uid))!;
    const job = jobs.find((j) => j.cardId === row.id)!;
    const issued = await store.certificatesOfJob(job.id);
    assert.equal(issued.length, 1, 'one certificate per re-key');
    const certs = await store.certificatesOfCard(row.id);
    assert.deepEqual(certs.map((x) => x.status).sort(), ['good', 'superseded'], 'enrolment + one re-key');
    const slots = card.platform.record().slots;
    assert.equal(slots.length, 1);
    assert.notEqual(slots[0]!.slot, slotsBefore[i], 'the card serves the new key');
  }
  const listed = (await bench.api('GET', `/v1/campaigns/${c.id}/jobs?limit=${N}`)).json();
  assert.equal(listed.items.length, N);
  assert.ok(listed.items.every((j: any) => j.kind === 'rekey' && j.status === 'succeeded'));
});

test('10 % of the cards really fail: the campaign aborts once the minimum ran, its queued jobs are canceled, nothing is released after', async () => {
  // every 10th card refuses the key generation (a status word from the card, after authentication)
  const failing = new Set(cards.filter((_, i) => i % 10 === 4).map((c) => c.uidHex));
  for (const card of cards) if (failing.has(card.uidHex)) card.filter = async (apdu, next) => (isStoreData(apdu) ? Uint8Array.of(0x6a, 0x84) : next(apdu));
  try {
    const minExecuted = Math.min(30, Math.floor(N * 0.3));
    const r = await bench.api('POST', '/v1/campaigns', { name: 'rotate again', kind: 'rekey', selector: { labels: { fleet: 'main' } }, ratePerMinute: 600, abort: { minExecuted, failurePercent: 5 } });
    assert.equal(r.status, 201, r.body.toString());
    const id = r.json().id as string;
    let v: Record<string, any> = {};
    await waitUntil(
      async () => (v = await campaign(id)).state === 'aborted',
      () => `the campaign aborts (now ${JSON.stringify(v)})`,
      120_000,
      100,
    );
    assert.match(v.abortReason, /failed/);
    const at = v.abortCounters;
    const executedAtAbort = at.succeeded + at.failed;
    assert.ok(executedAtAbort >= minExecuted, `not before the minimum (${executedAtAbort})`);
    // Aborted by the outcome that made the rule hold (in its own transaction), not later: the rule
    // holds at the abort, and not in the state just before it, whether that outcome was a failure
    // or a success (the failing cards fall anywhere in the UID order the targets are released in,
    // so where the rule first holds varies from run to run).
    const holds = (executed: number, failed: number): boolean => executed >= minExecuted && failed > 0 && failed * 100 >= 5 * executed;
    assert.ok(holds(executedAtAbort, at.failed), `the rule holds at the abort (${JSON.stringify(at)})`);
    assert.ok(!holds(executedAtAbort - 1, at.failed - 1) || !holds(executedAtAbort - 1, at.failed), `aborted at the first outcome where the rule held (${JSON.stringify(at)})`);
    // let what was running end; then nothing is queued or pending and nothing more is released
    await waitUntil(async () => (v = await campaign(id)).counters.running === 0, 'running jobs end');
    assert.equal(v.counters.pending, 0);
    assert.equal(v.counters.queued, 0);
    assert.ok(v.counters.canceled > 0, 'queued jobs and pending targets canceled');
    const store = bench.svc.operator.store;
    const jobs = await store.campaignJobs(id, null, 100_000);
    const row = (await store.campaignById(id))!;
    assert.ok(jobs.every((j) => j.createdAt <= row.finishedAt!), 'no job released after the abort');
    assert.ok(jobs.filter((j) => j.status === 'failed').every((j) => j.errorCode !== null));
    const failedCards = new Set(await Promise.all(jobs.filter((j) => j.status === 'failed').map(async (j) => (await store.cardById(j.cardId))!.uid)).then((u) => u.map((x) => Buffer.from(x).toString('hex'))));
    for (const u of failedCards) assert.ok(failing.has(u), 'only the failing cards failed');
    assert.equal(v.counters.targeted, N);
    assert.equal(v.counters.succeeded + v.counters.failed + v.counters.canceled, N);
  } finally {
    for (const card of cards) card.filter = undefined;
  }
});

test('pause, resume, cancel through the API; state errors; unknown campaign; viewer may read, not create', async () => {
  const r = await bench.api('POST', '/v1/campaigns', { name: 'slow', kind: 'lock', params: { reason: 'test' }, selector: { labels: { fleet: 'main' } }, ratePerMinute: 1, abort: { minExecuted: 1, failurePercent: 100 } });
  assert.equal(r.status, 201);
  const id = r.json().id as string;
  const paused = await bench.api('POST', `/v1/campaigns/${id}/pause`);
  assert.equal(paused.json().state, 'paused');
  assert.equal((await bench.api('POST', `/v1/campaigns/${id}/pause`)).json().error.code, 'ERR_OP_CAMPAIGN_STATE');
  assert.equal((await bench.api('POST', `/v1/campaigns/${id}/resume`)).json().state, 'running');
  const canceled = await bench.api('POST', `/v1/campaigns/${id}/cancel`);
  assert.equal(canceled.status, 200);
  assert.equal(canceled.json().state, 'canceled');
  const k = canceled.json().counters;
  assert.equal(k.pending, 0);
  assert.equal(k.targeted, N);
  assert.ok(k.queued + k.running + k.succeeded + k.failed <= 1, 'rate 1/min: at most one released');
  const stream = await readEvents(id);
  assert.equal(stream.events.length, 1, 'a finished campaign: its view, then the end');
  assert.equal(stream.events[0]!.data.state, 'canceled');
  const list = (await bench.api('GET', '/v1/campaigns?state=canceled')).json();
  assert.ok(list.items.some((x: any) => x.id === id));
  assert.ok('next' in list);
  assert.equal((await bench.api('GET', `/v1/campaigns/00000000-0000-0000-0000-000000000000`)).status, 404);
  assert.equal((await bench.api('POST', '/v1/campaigns', { name: 'x', kind: 'rekey', ratePerMinute: 10 })).json().error.code, 'ERR_OP_BAD_REQUEST');
  const viewer = (await createApiToken(bench.svc.operator.store, 'viewer', 'watcher')).token;
  const asViewer = (method: string, path: string, body?: unknown) => call(bench.url, join(bench.dir, 'tls-ca.crt'), method, path, { token: viewer, ...(body !== undefined ? { body } : {}) });
  assert.equal((await asViewer('GET', `/v1/campaigns/${id}`)).status, 200);
  assert.equal((await asViewer('GET', `/v1/campaigns/${id}/jobs`)).status, 200);
  const refused = await asViewer('POST', '/v1/campaigns', { name: 'x', kind: 'lock', ratePerMinute: 10, abort: { minExecuted: 1, failurePercent: 1 } });
  assert.equal(refused.status, 403);
  assert.equal((await asViewer('POST', `/v1/campaigns/${id}/pause`)).status, 403);
});

test('CLI: setls operator campaign create | list | show | pause | resume | cancel against the running operator', async () => {
  const common = ['--dir', bench.dir, '--url', bench.url, '--json'];
  // the real binary once (the command is registered in main.ts) — async: the operator runs in this process
  const spawned = (...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [join(process.cwd(), 'bin/setls.mjs'), 'operator', 'campaign', ...args, ...common], { env: { ...process.env, SETLS_FROM_SOURCE: '1' } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
      child.on('error', reject);
      child.on('close', (status) => {
        clearTimeout(timer);
        resolve({ status, stdout, stderr });
      });
    });
  // the rest in this process: the same commands on a fresh commander program, stdout captured
  const cli = async (...args: string[]): Promise<{ ok: boolean; stdout: string; error: string }> => {
    const program = new Command().exitOverride();
    registerOperatorCommands(program);
    registerCampaignCommands(program);
    const out: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => void out.push(a.join(' '));
    try {
      await program.parseAsync(['node', 'setls', 'operator', 'campaign', ...args, ...common]);
      return { ok: true, stdout: out.join('\n'), error: '' };
    } catch (e) {
      return { ok: false, stdout: out.join('\n'), error: `${(e as { code?: string }).code ?? ''} ${(e as Error).message}` };
    } finally {
      console.log = log;
    }
  };
  const made = await spawned('create', '--name', 'deny 01', '--kind', 'push-deny-list', '--params', '{"serials":["01"]}', '--label', 'fleet=main', '--state', 'active', '--rate', '1', '--abort-min', '3', '--abort-percent', '50');
  assert.equal(made.status, 0, made.stderr);
  const c = JSON.parse(made.stdout);
  assert.equal(c.kind, 'push-deny-list');
  assert.equal(c.jobKind, 'push-deny-list');
  assert.deepEqual(c.selector, { state: 'active', labels: { fleet: 'main' } });
  assert.deepEqual(c.params, { serials: ['01'] });
  assert.equal(JSON.parse((await cli('pause', c.id)).stdout).state, 'paused');
  const again = await cli('pause', c.id);
  assert.equal(again.ok, false);
  assert.match(again.error, /ERR_OP_CAMPAIGN_STATE/);
  assert.equal(JSON.parse((await cli('resume', c.id)).stdout).state, 'running');
  assert.ok(JSON.parse((await cli('list', '--state', 'running')).stdout).items.some((x: any) => x.id === c.id));
  assert.equal(JSON.parse((await cli('cancel', c.id)).stdout).state, 'canceled');
  const shown = await cli('show', c.id, '--wait');
  assert.equal(shown.ok, false, 'show --wait: exit 0 only for a completed campaign');
  assert.equal(JSON.parse(shown.stdout).state, 'canceled');
  const bad = await cli('create', '--name', 'x', '--kind', 'format', '--rate', '1', '--abort-min', '1', '--abort-percent', '1');
  assert.equal(bad.ok, false);
  assert.match(bad.error, /ERR_OP_BAD_REQUEST/);
});
