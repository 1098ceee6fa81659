/**
 * `npm run bench -- --only scale` (bench/run.ts → bench/scale.ts and its child processes) with
 * small counts on SQLite: ok, exit 0, every figure present (fill, list/expiring/lock latencies,
 * on-disk size, enrolments/s with CPU per enrolment), every enrolment done; the filled registry
 * answers "expiring within 7 days" with cards; the enrolment load generator ran in a worker thread of
 * the enrolment child (its utilisation is reported) and the operator thread's own CPU is reported.
 * Figures are reported, never asserted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

test('bench --only scale on SQLite: registry fill, queries, sizes and enrolments/s measured; ok, exit 0', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join('bench', 'run.ts'), '--only', 'scale', '--cards', '3000', '--enrol', '60', '--conc', '8', '--workers', '1', '--stores', 'sqlite', '--json'], {
    encoding: 'utf8',
    timeout: 280_000,
  });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { ok: boolean; results: Record<string, any>[] };
  assert.equal(out.ok, true);
  const s = out.results[0]!;
  assert.equal(s['store'], 'sqlite');
  assert.ok(s['fill cards/s'] > 0);
  assert.ok(s['size after fill']['sqlite file + wal MB'] > 0);
  const q = s['queries, 1 node (ms)'];
  for (const k of ['list first page', 'list deep page', 'expiring within 7 d, first page', 'expiring within 7 d, deep page', 'expiring within 7 d, label site=bench-3, first page', 'expiring within 7 d in UID order (listCards), deep page', 'lock (createCardJob)']) assert.ok(q.res[k].p99 >= q.res[k].p50, k);
  assert.ok(q.expiringFirst1000 > 0, 'some of the 3000 certificates end within 7 days');
  for (const k of ['enrol, 1 node, in-thread', 'enrol, 1 node, 1 issuer workers']) {
    assert.equal(s[k].n, 60, k);
    assert.ok(s[k]['enrolments/s'] > 0, k);
    assert.equal(s[k]['load generator'], 'worker thread', k);
    assert.ok(s[k]['load generator worker utilisation'][0] > 0, k);
    assert.ok(s[k]['operator thread (main) CPU ms per enrolment'][0] > 0, k);
  }
});
