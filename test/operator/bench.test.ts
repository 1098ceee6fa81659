/**
 * `npm run bench -- --only operator` (bench/run.ts → bench/operator.ts → bench/operator-devices.ts, in
 * their own processes, small counts): measured — ok, exit 0, enrolments/s and lock-to-refusal
 * p50/p99 in the report, every enrolment and lock done; failed (a failure injected with
 * SETLS_BENCH_FAIL_SECTION=operator once everything is up) — ok false, exit 1, the human report says
 * FAILED. No timing assertions (the goal p99 < 2 s is reported, not asserted).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

function benchOperator(env: Record<string, string>, json = true) {
  const e: NodeJS.ProcessEnv = { ...process.env };
  delete e['SETLS_BENCH_FAIL_SECTION'];
  Object.assign(e, env);
  const r = spawnSync(process.execPath, ['--import', 'tsx', join('bench', 'run.ts'), '--only', 'operator', '--op-cards', '2', '--op-locks', '2', ...(json ? ['--json'] : [])], {
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
  const h = benchOperator({}, false);
  assert.equal(h.status, 0, h.stderr);
  assert.match(h.stdout, /enrolments\/s/);
  assert.match(h.stdout, /lock-to-refusal p99 ms/);
  assert.match(h.stdout, /goal lock-to-refusal p99 < 2000 ms: (met|NOT met)/);
  assert.match(h.stdout, /bench: ok/);
});

test('bench --only operator: a failed section → failed, ok false, exit status 1; the human report says FAILED', () => {
  const r = benchOperator({ SETLS_BENCH_FAIL_SECTION: 'operator' });
  assert.equal(r.status, 1);
  assert.equal(r.rep.ok, false);
  assert.match(r.rep.extra.operator.failed, /injected failure \(SETLS_BENCH_FAIL_SECTION=operator\)/);
  const h = benchOperator({ SETLS_BENCH_FAIL_SECTION: 'operator' }, false);
  assert.equal(h.status, 1);
  assert.match(h.stdout, /FAILED: injected failure/);
  assert.match(h.stdout, /bench: FAILED/);
});
