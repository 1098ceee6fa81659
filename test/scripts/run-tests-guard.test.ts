// scripts/run-tests.mjs under CI: a run in which any test skipped (or is todo) fails and names the
// tests; locally it passes and lists them; a clean run passes under CI; the normal reporter's output
// is still there. Fixtures: test/fixtures/skip-guard (never collected by a folder run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

const SKIPS = 'test/fixtures/skip-guard/skips.test.ts';
const CLEAN = 'test/fixtures/skip-guard/clean.test.ts';

function runTests(file: string, ci: string | undefined, extra: readonly string[] = []) {
  const env = { ...process.env };
  delete env.CI;
  delete env.NODE_TEST_CONTEXT; // else the inner node --test thinks it is nested in this one and runs nothing
  if (ci !== undefined) env.CI = ci;
  const r = spawnSync(process.execPath, ['scripts/run-tests.mjs', ...extra, file], { encoding: 'utf8', env, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

for (const ci of ['true', '1']) {
  test(`CI=${ci}: a skipped and a todo test fail the run, named with their reasons`, () => {
    const r = runTests(SKIPS, ci);
    assert.notEqual(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /skip "fixture: skips at run time" — fixture peer is missing/);
    assert.match(r.stderr, /todo "fixture: todo" — fixture not written yet/);
    assert.match(r.stderr, /no test may skip in CI/);
    assert.match(r.stdout, /ok 1 - fixture: passes/, 'the normal reporter still prints');
  });
}

test('locally (no CI): the same run passes and lists what skipped', () => {
  const r = runTests(SKIPS, undefined);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stderr, /2 test\(s\) skipped or todo/);
  assert.doesNotMatch(r.stderr, /no test may skip in CI/);
});

test('CI=true: a run without skips passes and prints the usual summary only', () => {
  const r = runTests(CLEAN, 'true');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /# pass 1/);
  assert.doesNotMatch(r.stderr, /skipped or todo/);
});

test('CI=true with a caller-chosen reporter (spec): the guard still fails the run', () => {
  const r = runTests(SKIPS, 'true', ['--test-reporter=spec']);
  assert.notEqual(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /fixture: passes/);
  assert.match(r.stderr, /no test may skip in CI/);
});
