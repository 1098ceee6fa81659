/**
 * A large registry for the console's fleet page (test/operator/console-scale.test.ts and
 * bench/console.ts): `n` card rows inserted directly through the store in transactions of 5 000
 * (no manifest, no device: rows only), UIDs random 16 bytes, states and labels spread so that
 * every filter selects something; and a timer of GET /v1/fleet as the console calls it.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { CardLifecycle, OperatorStore } from '../../src/operator/store/types.js';

const STATES: readonly CardLifecycle[] = ['active', 'active', 'active', 'active', 'enrolled', 'locked', 'manifest', 'terminated'];

export async function fillRegistry(store: OperatorStore, n: number): Promise<{ someUid: string }> {
  const now = Date.now();
  const attest = randomBytes(300);
  let someUid = '';
  for (let done = 0; done < n; ) {
    const batch = Math.min(5000, n - done);
    await store.tx(async (t) => {
      for (let i = 0; i < batch; i++) {
        const k = done + i;
        const uid = randomBytes(16);
        if (k === Math.floor(n / 2)) someUid = uid.toString('hex');
        await t.insertCard({
          id: randomUUID(),
          uid,
          batchId: null,
          attestCertDer: attest,
          attestSpkiSha256: new Uint8Array(32),
          lifecycle: STATES[k % STATES.length]!,
          kvn: 1,
          transportKeyId: null,
          labels: { site: `site-${k % 50}`, ...(k % 1000 === 0 ? { canary: 'yes' } : {}) },
          profile: {},
          createdAt: now,
        });
      }
    });
    done += batch;
  }
  return { someUid };
}

/** Server time (ms) of one GET /v1/fleet, as the handler measured it (`serverMs`), and the body. */
export interface FleetTiming {
  readonly query: string;
  readonly serverMs: number;
  readonly items: number;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
