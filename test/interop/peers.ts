/**
 * Interop peers (real programs nobody here wrote). In CI (CI=true) a missing peer is a failure;
 * locally the test is skipped with the reason.
 */
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

export function havePeer(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

/** The one rule for "running in CI" (CI=true or CI=1): there a missing peer or a failed set-up fails. */
export function underCI(): boolean {
  return process.env.CI === 'true' || process.env.CI === '1';
}

/** Returns true when the peer is there; otherwise fails (CI) or skips (locally) the test. */
export function requirePeer(t: TestContext, cmd: string): boolean {
  if (havePeer(cmd)) return true;
  if (underCI()) {
    throw new Error(`interop peer '${cmd}' is missing (CI installs it in .ci/run)`);
  }
  t.skip(`interop peer '${cmd}' is not installed (apt-get install it to run this test)`);
  return false;
}
