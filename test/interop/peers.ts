/**
 * Interop peers (real programs nobody here wrote). In CI (CI=true or CI=1) a missing peer is a
 * failure; locally the test is skipped with the reason (the rule lives in test/ci.ts).
 */
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';
import { skipOrFail } from '../ci.js';

export function havePeer(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

/** Returns true when the peer is there; otherwise fails (CI) or skips (locally) the test. */
export function requirePeer(t: TestContext, cmd: string): boolean {
  if (havePeer(cmd)) return true;
  return skipOrFail(t, `interop peer '${cmd}' is not installed (.ci/run installs it; locally apt-get install it to run this test)`);
}
