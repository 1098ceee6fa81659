// Smoke test of `npm run bench -- --only pressure` (issue #14's attacks): measured, and failed (a
// failure injected with SETLS_BENCH_FAIL_SECTION=pressure) are two different reports; only "failed"
// makes ok false and the exit status non-zero. No timing assertions (the machine is shared and noisy).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

/** bench/run.ts --only pressure with small counts (5 looping clients, 20 connections, 2 legitimate requests per attack). */
function benchPressure(env: Record<string, string | undefined>) {
  const e: NodeJS.ProcessEnv = { ...process.env };
  delete e.SETLS_BENCH_FAIL_SECTION;
  for (const [k, v] of Object.entries(env)) if (v !== undefined) e[k] = v;
  const r = spawnSync(process.execPath, ['--import', 'tsx', join('bench', 'run.ts'), '--only', 'pressure', '--pressure-clients', '5', '--pressure-total', '20', '--pressure-legit', '2', '--json'], {
    encoding: 'utf8',
    env: e,
    timeout: 600_000,
  });
  const rep = r.stdout.trim() ? (JSON.parse(r.stdout.trim().split('\n').pop()!) as any) : undefined;
  return { status: r.status, rep, stderr: r.stderr };
}

test('bench --only pressure: a failed pressure section → ok false, exit status 1, the reason in the report', () => {
  const r = benchPressure({ SETLS_BENCH_FAIL_SECTION: 'pressure' });
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.rep.ok, false);
  assert.match(r.rep.extra.pressure.failed, /injected failure \(SETLS_BENCH_FAIL_SECTION=pressure\)/);
});

test('bench --only pressure: measured (the positive control): ok true, exit 0, the loop and every attack reported for setls, no failure', { timeout: 600_000 }, () => {
  const r = benchPressure({});
  assert.equal(r.status, 0, `${r.stderr}\n${JSON.stringify(r.rep?.extra?.pressure)}`);
  const p = r.rep.extra.pressure;
  assert.equal(p.ok, true);
  assert.equal(p.loop.setls.completed, 20);
  assert.equal(p.loop.setls.failed, 0);
  assert.equal(p.loop['node:tls'].completed, 20);
  assert.deepEqual(Object.keys(p.attacks), ['idle', 'slowloris', 'trickle', 'dtls-flood', 'all']);
  for (const [attack, m] of Object.entries(p.attacks as Record<string, Record<string, { ok: number; n: number; p99Ms: number }>>)) {
    assert.equal(m.setls!.ok, 2, `${attack}: setls legitimate requests served`);
    assert.ok(m.setls!.p99Ms > 0);
    if (attack !== 'dtls-flood') assert.ok(m['node:tls'], `${attack}: node:tls reported`);
  }
});

