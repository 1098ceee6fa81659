/**
 * `npm run bench -- --only operator` (bench/run.ts → bench/operator.ts → bench/operator-devices.ts, in
 * their own processes, small counts): measured — ok, exit 0, enrolments/s and lock-to-refusal
 * p50/p99 in the report, every enrolment and lock done, and the scale section (bench/scale.ts, a small
 * SQLite registry) with its goals; failed (a failure injected with
 * SETLS_BENCH_FAIL_SECTION=operator once everything is up) — ok false, exit 1, the human report says
 * FAILED. No timing assertions (the goal p99 < 2 s is reported, not asserted).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

function benchOperator(env: Record<string, string>, json = true, scaleCards = 300) {
  const e: NodeJS.ProcessEnv = { ...process.env };
  delete e['SETLS_BENCH_FAIL_SECTION'];
  delete e['SETLS_TEST_PG_URL']; // the scale section on SQLite only here (test/operator/bench-scale.test.ts runs both stores)
  Object.assign(e, env);
  const args = ['--only', 'operator', '--op-cards', '2', '--op-locks', '2', '--scale-cards', String(scaleCards), '--scale-enrol', '40'];
  const r = spawnSync(process.execPath, ['--import', 'tsx', join('bench', 'run.ts'), ...args, ...(json ? ['--json'] : [])], {
    encoding: 'utf8',
    env: e,
    timeout: 300_000,
  });
  const rep = json && r.stdout.trim() ? (JSON.parse(r.stdout.trim().split('\n').pop()!) as any) : undefined;
  return { status: r.status, rep, stdout: r.stdout, stderr: r.stderr };
}

test('bench --only operator: enrolments/s end to end and lock-to-refusal p50/p99 measured, ok, exit 0; the human report shows them and the goal', () => {
  const r = benchOperator({});
  assert.equal(r.status, 0, `${r.stderr}\n${JSON.stringify(r.rep?.extra?.operator)}`);
  assert.equal(r.rep.ok, true);
  const o = r.rep.extra.operator;
  assert.equal(o.ok, true, o.failed);
  assert.equal(o.params.cards, 2);
  assert.equal(o.params.store, 'sqlite');
  assert.ok(o.results['enrolments/s (K cards at once, end to end)'] > 0);
  assert.equal(o.results['round trips per enrolment (p50)'], 2, 'manifests with sequence counters: 2 round trips');
  for (const k of ['lock-to-refusal p50 ms (POST /lock → first refused handshake)', 'lock-to-refusal p99 ms']) assert.ok(o.results[k] > 0, k);
  // the scale section (issue #17): bench/scale.ts's figures for the SQLite store
  const sc = r.rep.extra.scale;
  assert.equal(sc.ok, true, sc.failed);
  assert.equal(sc.params.cards, 300);
  assert.deepEqual(sc.results.map((x: { store: string }) => x.store), ['sqlite']);
  assert.ok(sc.results[0]['enrol, 1 node, in-thread']['enrolments/s'] > 0);
  assert.ok(sc.results[0]['queries, 1 node (ms)'].res['list first page'].p99 > 0);
  const h = benchOperator({}, false);
  assert.equal(h.status, 0, h.stderr);
  assert.match(h.stdout, /enrolments\/s/);
  assert.match(h.stdout, /lock-to-refusal p99 ms/);
  assert.match(h.stdout, /goal lock-to-refusal p99 < 2000 ms: (met|NOT met)/);
  assert.match(h.stdout, /the operator at scale \(bench\/scale\.ts: 300 cards per store/);
  assert.match(h.stdout, /sqlite\s+1 node, in-thread: [\d.]+ enrolments\/s/);
  assert.match(h.stdout, /sqlite ≥ 800 enrolments\/s: (met|NOT met)/);
  assert.match(h.stdout, /list pages p99 < 50 ms: (met|NOT met)/);
  assert.match(h.stdout, /expiring within 7 d p99 < 100 ms: (met|NOT met)/);
  assert.match(h.stdout, /the registry goals are at 10⁶ cards/);
  assert.match(h.stdout, /bench: ok/);
});

test('bench --only operator: a failed section → failed, ok false, exit status 1; the human report says FAILED', () => {
  const r = benchOperator({ SETLS_BENCH_FAIL_SECTION: 'operator' }, true, 0);
  assert.equal(r.status, 1);
  assert.equal(r.rep.ok, false);
  assert.match(r.rep.extra.operator.failed, /injected failure \(SETLS_BENCH_FAIL_SECTION=operator\)/);
  assert.equal(r.rep.extra.scale, undefined, '--scale-cards 0 leaves the scale section out');
  const h = benchOperator({ SETLS_BENCH_FAIL_SECTION: 'operator' }, false, 0);
  assert.equal(h.status, 1);
  assert.match(h.stdout, /FAILED: injected failure/);
  assert.match(h.stdout, /bench: FAILED/);
});
