/**
 * `npm run bench -- --only console` (or `node --import tsx bench/console.ts [--cards 100000]
 * [--store pg|postgres://…]`): the web console's fleet page on a large registry. An operator in this
 * process (no job runner) over SQLite (or PostgreSQL), N card rows inserted directly through the
 * store, then GET /v1/fleet over HTTPS as the console calls it — the first page with the counts by
 * state, each filter, a deep keyset page — repeated; prints the server time the handler measured
 * (`serverMs`: the queries and the JSON views) and the client's round trip, median and max.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initOperator } from '../src/operator/init.js';
import { startOperator } from '../src/operator/service.js';
import { call } from '../test/operator/helpers.js';
import { fillRegistry, median } from '../test/operator/console-fleet-scale.js';
import { createTempDb } from '../test/operator/pg-helpers.js';

export async function runConsoleBench(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({ args: [...argv], options: { cards: { type: 'string' }, reps: { type: 'string' }, store: { type: 'string' }, only: { type: 'string' } }, strict: false });
  const n = Number(values.cards ?? 100_000);
  const reps = Number(values.reps ?? 9);
  const tmp = mkdtempSync(join(tmpdir(), 'setls-bench-console-'));
  const dir = join(tmp, 'op');
  // --store pg: a throw-away database on SETLS_TEST_PG_URL's server (test/operator/pg-helpers.ts).
  const pgDb = values.store === 'pg' ? await createTempDb() : null;
  const store = pgDb ? pgDb.url : typeof values.store === 'string' ? values.store : undefined;
  const admin = (await initOperator({ dir, manufacturerCaPems: [], ...(store ? { store } : {}) })).adminToken;
  const svc = await startOperator({ dir, port: 0, quiet: true, runJobs: false, writeServeInfo: false, ...(store ? { store } : {}) });
  try {
    const t0 = Date.now();
    const { someUid } = await fillRegistry(svc.operator.store, n);
    console.log(`console bench: ${n} cards inserted in ${((Date.now() - t0) / 1000).toFixed(1)} s (${svc.operator.store.dialect})`);
    const get = async (q: string): Promise<{ serverMs: number; rtt: number; items: number; next: string | null }> => {
      const s = process.hrtime.bigint();
      const r = await call(svc.url, svc.operator.paths.tlsCaCert, 'GET', `/v1/fleet?${q}`, { token: admin });
      const rtt = Number(process.hrtime.bigint() - s) / 1e6;
      if (r.status !== 200) throw new Error(`GET /v1/fleet?${q}: ${r.status} ${r.body.toString()}`);
      const j = r.json();
      return { serverMs: j.serverMs, rtt, items: j.items.length, next: j.nextCursor };
    };
    // A cursor deep in the active cards (after 40 pages of 1000).
    let deep: string | null = null;
    for (let p = 0; p < 40; p++) deep = (await get(`limit=1000&state=active${deep ? `&cursor=${deep}` : ''}`)).next;
    const cases: [string, string][] = [
      ['first page (50) + counts', 'limit=50'],
      ['state=locked', 'limit=50&state=locked'],
      ['uid prefix (4 hex)', `limit=50&uid_prefix=${someUid.slice(0, 4)}`],
      ['label site=site-7 (2 %)', 'limit=50&label=site=site-7'],
      ['rare label canary (0.1 %)', 'limit=50&label=canary'],
      ['active, page 801 (keyset)', `limit=50&state=active&cursor=${deep}`],
    ];
    console.log(`${'query'.padEnd(30)} ${'server ms (median / max)'.padEnd(26)} round trip ms (median)   items`);
    for (const [name, q] of cases) {
      const xs: number[] = [];
      const rtts: number[] = [];
      let items = 0;
      await get(q);
      for (let i = 0; i < reps; i++) {
        const r = await get(q);
        xs.push(r.serverMs);
        rtts.push(r.rtt);
        items = r.items;
      }
      console.log(`${name.padEnd(30)} ${`${median(xs).toFixed(1)} / ${Math.max(...xs).toFixed(1)}`.padEnd(26)} ${median(rtts).toFixed(1).padEnd(24)} ${items}`);
    }
  } finally {
    await svc.stop();
    await pgDb?.drop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runConsoleBench().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
