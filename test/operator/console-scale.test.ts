// The console's fleet page on a 10⁵-card registry (rows inserted directly through the store): the
// first page with the counts by state, each filter (state, UID prefix, label), and keyset pages
// deep into the registry all answer correctly through GET /v1/fleet over HTTPS. No timing is
// asserted; the server times (the handler's `serverMs`) are printed as diagnostics — the numbers to
// read are in `npm run bench -- --only console` (bench/console.ts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { initOperator } from '../../src/operator/init.js';
import { startOperator, type RunningOperator } from '../../src/operator/service.js';
import { call, tempDir } from './helpers.js';
import { fillRegistry, median } from './console-fleet-scale.js';

const N = 100_000;
let svc: RunningOperator;
let tmp: ReturnType<typeof tempDir>;
let admin: string;
let someUid: string;

before(async () => {
  tmp = tempDir();
  const dir = join(tmp.dir, 'op');
  admin = (await initOperator({ dir, manufacturerCaPems: [] })).adminToken;
  svc = await startOperator({ dir, port: 0, quiet: true, runJobs: false, writeServeInfo: false });
  ({ someUid } = await fillRegistry(svc.operator.store, N));
});
after(async () => {
  await svc.stop();
  tmp.cleanup();
});

const fleet = async (q: string) => {
  const r = await call(svc.url, svc.operator.paths.tlsCaCert, 'GET', `/v1/fleet?${q}`, { token: admin });
  assert.equal(r.status, 200, r.body.toString());
  return r.json();
};

test(`a ${N}-card registry: first page + counts, filters and deep keyset pages through GET /v1/fleet`, async (t) => {
  const first = await fleet('limit=50');
  assert.equal(first.total, N);
  assert.equal(first.items.length, 50);
  assert.deepEqual(Object.keys(first.counts).sort(), ['active', 'enrolled', 'locked', 'manifest', 'terminated']);
  assert.equal(first.counts.active, N / 2);
  const uids = first.items.map((c: any) => c.uid);
  assert.deepEqual(uids, [...uids].sort(), 'UID order');
  const times: Record<string, number[]> = {};
  for (const [name, q] of [
    ['first page + counts', 'limit=50'],
    ['state=locked', 'limit=50&state=locked'],
    ['uid prefix (3 hex)', `limit=50&uid_prefix=${someUid.slice(0, 3)}`],
    ['label site=site-7', 'limit=50&label=site=site-7'],
    ['rare label canary', 'limit=50&label=canary'],
  ] as const) {
    for (let i = 0; i < 3; i++) {
      const r = await fleet(q);
      (times[name] ??= []).push(r.serverMs);
      assert.ok(r.items.length > 0, `${name} selects cards`);
    }
  }
  const prefix = await fleet(`limit=1000&uid_prefix=${someUid.slice(0, 4)}`);
  assert.ok(prefix.items.some((c: any) => c.uid === someUid));
  assert.ok(prefix.items.every((c: any) => c.uid.startsWith(someUid.slice(0, 4))));
  const rare = await fleet('limit=1000&label=canary');
  assert.equal(rare.items.length, N / 1000);
  // Deep keyset pages: 20 pages of 1000 from the middle on, each after the previous.
  let cursor: string | null = null;
  let last = '';
  let deepMs = 0;
  for (let p = 0; p < 20; p++) {
    const r: any = await fleet(`limit=1000&state=active${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(r.items.length, 1000);
    assert.ok(r.items[0].uid > last);
    last = r.items[r.items.length - 1].uid;
    cursor = r.nextCursor;
    deepMs = Math.max(deepMs, r.serverMs);
  }
  for (const [name, xs] of Object.entries(times)) t.diagnostic(`${name}: server ${median(xs).toFixed(1)} ms (median of ${xs.length}, SQLite, ${N} cards)`);
  t.diagnostic(`pages of 1000 active cards: server ≤ ${deepMs.toFixed(1)} ms each`);
});
