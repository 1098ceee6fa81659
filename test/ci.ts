/**
 * The one rule for tests that depend on something outside the code (a peer program, a kernel
 * feature, a daemon): under CI (CI=true or CI=1) a missing prerequisite FAILS; locally the test is
 * skipped with the reason. Every test under test/ decides "CI or not" through `inCI` and skips only
 * through `skipOrFail`; scripts/run-tests.mjs fails a CI run in which any test skipped.
 * Imports: node:test types only.
 */
import type { TestContext } from 'node:test';

/** True when the environment says CI (the values .ci/run and common CI services set). */
export function inCI(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.CI === 'true' || env.CI === '1';
}

/**
 * When `reason` is a string the prerequisite is missing: throws under CI (the test fails), skips the
 * test locally and returns false. Returns true when `reason` is undefined (go ahead).
 */
export function skipOrFail(t: TestContext, reason: string | undefined): boolean {
  if (reason === undefined) return true;
  if (inCI()) throw new Error(`cannot run in CI: ${reason}`);
  t.skip(reason);
  return false;
}
