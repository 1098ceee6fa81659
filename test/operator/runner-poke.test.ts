// A job runner woken (poke(): a notification, a job created) while its claim is in flight claims
// again right after it, instead of sleeping until its next poll: the wake-up is not lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JobRunner } from '../../src/operator/jobs/runner.js';
import type { OperatorStore } from '../../src/operator/store/types.js';
import { waitUntil } from '../wait.js';

test('a poke during an in-flight claim makes the runner claim again at once, not after its hourly poll', async () => {
  let claims = 0;
  let release!: () => void;
  const firstClaimHeld = new Promise<void>((r) => (release = r));
  let inFirstClaim!: () => void;
  const firstClaimStarted = new Promise<void>((r) => (inFirstClaim = r));
  const store = {
    watchJobs: async () => null,
    jobsToExpire: async () => [],
    claimJob: async () => {
      claims++;
      if (claims === 1) {
        inFirstClaim();
        await firstClaimHeld; // the claim is in flight while the runner is poked
      }
      return null;
    },
  } as unknown as OperatorStore;
  const runner = new JobRunner({ store, owner: 'poked', pollMs: 3_600_000 });
  runner.register('lock', async () => undefined);
  runner.start();
  try {
    await firstClaimStarted;
    runner.poke();
    release();
    await waitUntil(() => claims >= 2, 'a second claim right after the first, for the poke');
  } finally {
    await runner.stop();
  }
});
