/**
 * The scale section of `npm run bench` and of `--only operator` (issue #17 item 4): bench/scale.ts
 * in its own process (registry fill, list and "expiring within 7 days" pages, lock latency, on-disk
 * size, enrolments/s end to end with the load generator's CPU included; SQLite, and PostgreSQL
 * with one node and two when SETLS_TEST_PG_URL is set), summarised next to the issue's goals.
 * imports bench/child-section; bench/scale.ts runs as a child.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sectionOf } from './child-section.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(HERE);

/** Issue #17's goals, reported next to the measures (never asserted). */
export const SCALE_GOALS = { sqliteEnrolPerS: 800, postgresEnrolPerS: 1000, listP99Ms: 50, expiringP99Ms: 100, registry: 1_000_000 } as const;

type Percentiles = { readonly p50: number; readonly p99: number };
interface Enrol {
  readonly 'enrolments/s': number;
  readonly 'p99 ms': number;
  readonly 'CPU ms per enrolment (operator + load generator process; not the PostgreSQL server)': number;
}
/** One store's figures as bench/scale.ts gives them (the keys it prints), or why it did not run. */
export interface ScaleStoreResult {
  readonly store: string;
  readonly skipped?: string;
  readonly cards?: number;
  readonly 'fill seconds'?: number;
  readonly 'fill cards/s'?: number;
  readonly 'size after fill'?: Record<string, number>;
  readonly [key: string]: unknown;
}
export interface ScaleSection {
  readonly ok: boolean;
  readonly params?: Record<string, unknown>;
  readonly results?: readonly ScaleStoreResult[];
  readonly failed?: string;
}

/** bench/scale.ts --json with `cards` cards and `enrol` enrolments per store; no report or a non-zero exit is a failure. */
export function scaleSection(o: { readonly scaleCards: number; readonly scaleEnrol: number }): ScaleSection {
  const stores = process.env['SETLS_TEST_PG_URL'] ? 'sqlite,postgres' : 'sqlite';
  const args = ['--import', 'tsx', join(HERE, 'scale.ts'), '--json', '--cards', String(o.scaleCards), '--enrol', String(o.scaleEnrol), '--stores', stores];
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 3_600_000, maxBuffer: 64 * 1024 * 1024 });
  return sectionOf<ScaleSection>('bench/scale.ts', r);
}

const f1 = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '—' : (Math.round(x * 10) / 10).toString());
const met = (ok: boolean): string => (ok ? 'met' : 'NOT met');

function queries(r: ScaleStoreResult): Record<string, Percentiles> | undefined {
  return (r['queries, 1 node (ms)'] as { res?: Record<string, Percentiles> } | undefined)?.res;
}
function enrolments(r: ScaleStoreResult): [string, Enrol][] {
  return Object.entries(r).filter(([k]) => k.startsWith('enrol, ')) as [string, Enrol][];
}
function sizeMb(r: ScaleStoreResult): string {
  const s = (r['size at the end'] ?? r['size after fill']) as Record<string, number> | undefined;
  if (!s) return '—';
  return `${s['sqlite file + wal MB'] ?? s['pg_database_size MB'] ?? '?'} MB`;
}

/** The human lines: per store, then each goal met or not (with the registry size it was measured at). */
export function humanScale(s: ScaleSection): string {
  const cards = Number(s.params?.['cards'] ?? NaN);
  const out = [`== the operator at scale (bench/scale.ts: ${Number.isFinite(cards) ? cards : '?'} cards per store; enrolments end to end, load generator's CPU included; issue #17) ==`];
  if (s.failed) out.push(`  FAILED: ${s.failed}`);
  const goals: string[] = [];
  let listP99 = -Infinity;
  let expiringP99 = -Infinity;
  for (const r of s.results ?? []) {
    const name = r.store.padEnd(9);
    if (r.skipped) {
      out.push(`  ${name} skipped: ${r.skipped}`);
      continue;
    }
    out.push(`  ${name} fill ${f1(r['fill seconds'])} s (${f1(r['fill cards/s'])} cards/s), ${sizeMb(r)} on disk`);
    const q = queries(r);
    if (q) {
      const first = q['list first page'];
      const expiring = q['expiring within 7 d, first page'];
      const lock = q['lock (createCardJob)'];
      out.push(`  ${name} list page p50/p99 ${f1(first?.p50)}/${f1(first?.p99)} ms; expiring within 7 d ${f1(expiring?.p50)}/${f1(expiring?.p99)} ms; lock ${f1(lock?.p50)}/${f1(lock?.p99)} ms`);
      for (const [k, v] of Object.entries(q)) {
        if (k.startsWith('list ')) listP99 = Math.max(listP99, v.p99);
        if (k.startsWith('expiring within 7 d,')) expiringP99 = Math.max(expiringP99, v.p99);
      }
    }
    let best: [string, number] | null = null;
    for (const [k, e] of enrolments(r)) {
      const perS = e['enrolments/s'];
      out.push(`  ${name} ${k.slice('enrol, '.length)}: ${f1(perS)} enrolments/s, p99 ${f1(e['p99 ms'])} ms, ${f1(e['CPU ms per enrolment (operator + load generator process; not the PostgreSQL server)'])} CPU-ms each`);
      if (!best || perS > best[1]) best = [k.slice('enrol, '.length).split(',')[0]!, perS];
    }
    if (best) {
      const goal = r.store === 'postgres' ? SCALE_GOALS.postgresEnrolPerS : SCALE_GOALS.sqliteEnrolPerS;
      goals.push(`${r.store} ≥ ${goal} enrolments/s: ${met(best[1] >= goal)} (${f1(best[1])}/s, ${best[0]})`);
    }
  }
  if (listP99 > -Infinity) goals.push(`list pages p99 < ${SCALE_GOALS.listP99Ms} ms: ${met(listP99 < SCALE_GOALS.listP99Ms)} (worst ${f1(listP99)} ms)`);
  if (expiringP99 > -Infinity) goals.push(`expiring within 7 d p99 < ${SCALE_GOALS.expiringP99Ms} ms: ${met(expiringP99 < SCALE_GOALS.expiringP99Ms)} (worst ${f1(expiringP99)} ms)`);
  if (goals.length) {
    out.push(`  goals${cards < SCALE_GOALS.registry ? ` (the registry goals are at 10⁶ cards: --scale-cards 1000000; this run: ${cards})` : ''}:`);
    for (const g of goals) out.push(`    ${g}`);
  }
  return out.join('\n') + '\n';
}
