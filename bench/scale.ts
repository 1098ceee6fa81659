/**
 * bench/scale: the operator at scale (issue #17 item 4), on SQLite and on PostgreSQL —
 *   node --import tsx bench/scale.ts [--cards 100000] [--enrol 3000] [--conc 32] [--workers 0]
 *        [--stores sqlite,postgres] [--json] [--enrol-only] [--loadgen worker|inline]
 *   (also `npm run bench -- --only scale`)
 * --enrol-only: fill, then the enrolment figures only (no query children).
 * --loadgen: where the enrolment children run the load generator (the cards' work): a worker thread
 *   of the child (default; bench/enrol-loadgen.ts) or the operator's own thread (inline).
 * SETLS_BENCH_CPU_PROF=<dir>: each child writes a V8 CPU profile (node --cpu-prof) there.
 * PostgreSQL: SETLS_TEST_PG_URL (a role that may CREATE DATABASE); a throw-away database is made
 * and dropped. Without it, only SQLite runs.
 *
 * Per store:
 *  1. registry fill: --cards cards, each with an identity and a good certificate (the issuing CA's
 *     real certificate made once from the DER template, then copied with a distinct serial and a
 *     not_after spread over the next 365 days: every row parses, its signature is not valid), bulk
 *     inserted (SQLite: prepared statements, 20 000 rows per transaction; PostgreSQL: INSERT …
 *     SELECT FROM unnest(arrays), 5 000 rows per statement). Not the enrolment path: a fill.
 *  2. queries, in child processes (one node; then two nodes at once on PostgreSQL), each 60 times:
 *     list page (50 cards) first and deep (after the middle UID), filtered by lifecycle and by label;
 *     "expiring within 7 days" (listExpiringCards({ before: now + 7 d }), store/expiring-cards.ts,
 *     first and mid-window page, with a label and a lifecycle filter; and in UID order,
 *     listCards({ expiringBefore }), first and deep page, for comparison; and the certificates by
 *     not_after, store/expiring.ts, first and mid-window page);
 *     lock latency (POST …/lock's store work: createCardJob for a random card).
 *  3. on-disk size (SQLite file + WAL; pg_database_size and pg_total_relation_size per table).
 *  4. enrolments/s end to end, in child processes (one node; two on PostgreSQL): each enrolment is
 *     the load generator's work (a fresh P-256 key, its CSR, the card's attestation statement signed
 *     by its attestation key; in a worker thread of the child by default) and the operator's
 *     (issueNonce: card read + enrolment row; complete: attestation chain + signature, CSR check,
 *     binding checks, issuance, one transaction) — all in the same process, on the same 2 cores:
 *     the load generator's CPU is included (process.cpuUsage() counts every thread). Every
 *     enrolment is a distinct card's first in its process (as in a roll-out): never answered from
 *     pki/chain.ts's cache; its attestation is checked from what manifest import verified about its
 *     certificate (the card row's facts, migration 11: its key imported, the statement verified).
 * The 10^6 fill takes minutes on this machine: the default is 10^5; pass --cards 1000000.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createPrivateKey, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import pg from 'pg';
import { initOperator } from '../src/operator/init.js';
import { Operator } from '../src/operator/operator.js';
import { DefaultAttestationVerifier, SETLS_ATTESTATION_V1 } from '../src/operator/pki/attestation.js';
import { importManifest } from '../src/operator/services/manifests.js';
import { createCardJob } from '../src/operator/services/jobs.js';
import { openStore } from '../src/operator/store/index.js';
import { LeafTemplate } from '../src/operator/pki/leaf-template.js';
import { makeManufacturer, SoftCard } from '../test/operator/helpers.js';
import { cardAnswer, freshCsr, LoadGenerator, type CardAnswer } from './enrol-loadgen.js';
import { threadCpu } from './thread-cpu.js';

const DAY = 86_400_000;
/** Enrolments before the measured ones, per enrolment child. */
const WARMUP = 20;
const LABELS = 16;

function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN;
}
const r1 = (x: number): number => Math.round(x * 10) / 10;
const r2 = (x: number): number => Math.round(x * 100) / 100;

interface CardFile {
  readonly uid: string;
  readonly cert: string;
  readonly key: string;
}

// ---------------------------------------------------------------- child: enrolments
async function childEnrol(dir: string, store: string, n: number, conc: number, workers: number, loadgen: 'worker' | 'inline', first: number): Promise<void> {
  const op = await Operator.open({ dir, store, verifier: new DefaultAttestationVerifier(SETLS_ATTESTATION_V1), issuerWorkers: workers });
  const files = JSON.parse(readFileSync(join(dir, 'bench-cards.json'), 'utf8')) as CardFile[];
  const cards = files.map((c) => ({
    uid: Buffer.from(c.uid, 'hex'),
    cert: new Uint8Array(Buffer.from(c.cert, 'base64')),
    key: createPrivateKey({ key: Buffer.from(c.key, 'base64'), format: 'der', type: 'pkcs8' }),
  }));
  // The load generator (what the card does: key pair + CSR ahead, the statement signed per nonce):
  // a worker thread of this process (bench/enrol-loadgen.ts), or --loadgen inline: this thread.
  const gen = loadgen === 'worker' ? LoadGenerator.start(files, Math.max(16, 2 * conc)) : null;
  let counter = 0;
  const answer = (c: number, nonce: Uint8Array): Promise<CardAnswer> | CardAnswer =>
    gen ? gen.sign(c, nonce) : cardAnswer(cards[c]!.uid, cards[c]!.key, freshCsr(), nonce, ++counter);
  // card `first + i` for the i-th enrolment, its warm-up ones after them: each card's first
  // enrolment in this process (nothing of its attestation is cached)
  const one = async (i: number): Promise<void> => {
    const c = (first + i) % cards.length;
    const card = cards[c]!;
    const nonce = await op.enrolment.issueNonce(card.uid);
    const { csrDer, statement, signature } = await answer(c, nonce.nonce);
    await op.enrolment.complete({ uid: card.uid, evidence: { statement, signature, chain: [card.cert] }, csrDer, expectedEnrolmentId: nonce.enrolmentId });
  };
  for (let i = 0; i < WARMUP; i++) await one(n + i); // warm-up
  // What bounds the rate: statements sent to PostgreSQL (round trips), time spent waiting for a
  // pooled connection, and how busy this event loop was (1 = CPU-bound in this thread).
  const probe = { queries: 0, poolWaitMs: 0 };
  const q0 = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...a: unknown[]) {
    probe.queries++;
    return (q0 as (...x: unknown[]) => unknown).apply(this, a);
  } as typeof q0;
  const c0 = pg.Pool.prototype.connect;
  pg.Pool.prototype.connect = function (this: pg.Pool, cb?: (e: Error | undefined, c: pg.PoolClient, d: (r?: unknown) => void) => void) {
    const t = performance.now();
    if (cb) return (c0 as (f: unknown) => void).call(this, (e: Error | undefined, c: pg.PoolClient, d: (r?: unknown) => void) => ((probe.poolWaitMs += performance.now() - t), cb(e, c, d)));
    return (c0 as () => Promise<pg.PoolClient>).call(this).then((c) => ((probe.poolWaitMs += performance.now() - t), c));
  } as typeof c0;
  gen?.openWindow();
  const genElu0 = gen?.elu();
  const elu0 = performance.eventLoopUtilization();
  let next = 0;
  const lat: number[] = [];
  const cpu0 = process.cpuUsage();
  const th0 = threadCpu();
  const start = Date.now();
  await Promise.all(
    Array.from({ length: conc }, async () => {
      for (let i = next++; i < n; i = next++) {
        const t = performance.now();
        await one(i);
        lat.push(performance.now() - t);
      }
    }),
  );
  const end = Date.now();
  const cpu = process.cpuUsage(cpu0); // every thread of this process: operator, workers, load generator
  const th1 = threadCpu(); // the operator's thread alone (the main one) vs the others
  const mainCpuMsPerEnrolment = th0 && th1 ? (th1.mainUs - th0.mainUs) / 1000 / n : null;
  const elu = performance.eventLoopUtilization(elu0).utilization;
  const loadgenElu = gen ? gen.elu(genElu0).utilization : null;
  await gen?.close();
  const batches = (op.enrolment as { batchStats?: () => Record<string, number> }).batchStats?.() ?? null;
  pg.Client.prototype.query = q0;
  pg.Pool.prototype.connect = c0;
  await op.close();
  process.stdout.write(
    JSON.stringify({ n, start, end, p50: pct(lat, 50), p99: pct(lat, 99), cpuMsPerEnrolment: (cpu.user + cpu.system) / 1000 / n, mainCpuMsPerEnrolment, elu, loadgen, loadgenElu, batches, queriesPerEnrolment: probe.queries / n, poolWaitMsPerEnrolment: probe.poolWaitMs / n }) + '\n',
  );
}

// ---------------------------------------------------------------- child: queries
async function childQuery(store: string, middleHex: string, uidsHex: string[], reps: number): Promise<void> {
  const s = await openStore(store);
  const middle = Buffer.from(middleHex, 'hex');
  const now = Date.now();
  const time = async (fn: () => Promise<unknown>): Promise<number[]> => {
    await fn();
    const xs: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t = performance.now();
      await fn();
      xs.push(performance.now() - t);
    }
    return xs;
  };
  const out: Record<string, number[]> = {};
  out['list first page'] = await time(() => s.listCards({}, null, 50));
  out['list deep page'] = await time(() => s.listCards({}, middle, 50));
  out['list lifecycle=enrolled, deep'] = await time(() => s.listCards({ lifecycle: 'enrolled' }, middle, 50));
  out['list label site=bench-3, first'] = await time(() => s.listCards({ label: 'site=bench-3' }, null, 50));
  out['list label site=bench-3, deep'] = await time(() => s.listCards({ label: 'site=bench-3' }, middle, 50));
  // the expiring listing (store/expiring-cards.ts): soonest first, from the (not_after, card_id) index;
  // deep page = the page after the middle of the 7-day window
  const midWindow = { notAfter: now + 3.5 * DAY, cardId: '' };
  out['expiring within 7 d, first page'] = await time(() => s.listExpiringCards({ before: now + 7 * DAY }, null, 50));
  out['expiring within 7 d, deep page'] = await time(() => s.listExpiringCards({ before: now + 7 * DAY }, midWindow, 50));
  out['expiring within 7 d, label site=bench-3, first page'] = await time(() => s.listExpiringCards({ before: now + 7 * DAY, label: 'site=bench-3' }, null, 50));
  out['expiring within 7 d, lifecycle=enrolled, deep page'] = await time(() => s.listExpiringCards({ before: now + 7 * DAY, lifecycle: 'enrolled' }, midWindow, 50));
  // for comparison: the same cards in UID order (listCards({ expiringBefore }), a probe per card)
  out['expiring within 7 d in UID order (listCards), first page'] = await time(() => s.listCards({ expiringBefore: now + 7 * DAY }, null, 50));
  out['expiring within 7 d in UID order (listCards), deep page'] = await time(() => s.listCards({ expiringBefore: now + 7 * DAY }, middle, 50));
  // the certificates themselves, by not_after (store/expiring.ts): first page, and one from mid-window
  out['expiring certs by not_after, first page'] = await time(() => s.listExpiringCertificates(now, now + 7 * DAY, null, 50));
  out['expiring certs by not_after, mid-window page'] = await time(() => s.listExpiringCertificates(now, now + 7 * DAY, { notAfter: now + 3.5 * DAY, serial: new Uint8Array(16) }, 50));
  const principal = { tokenId: 'bench', name: 'bench', role: 'admin' as const };
  let k = 0;
  out['lock (createCardJob)'] = await time(() => createCardJob(s, { uid: Buffer.from(uidsHex[k++ % uidsHex.length]!, 'hex'), kind: 'lock', body: {}, principal, idempotencyKey: null }));
  const expiring = await s.listExpiringCards({ before: now + 7 * DAY }, null, 1000);
  await s.close();
  const res: Record<string, { p50: number; p99: number }> = {};
  for (const [name, xs] of Object.entries(out)) res[name] = { p50: r2(pct(xs, 50)), p99: r2(pct(xs, 99)) };
  process.stdout.write(JSON.stringify({ res, expiringFirst1000: expiring.length }) + '\n');
}

function child(args: string[]): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    // SETLS_BENCH_CPU_PROF=<dir>: each child writes a V8 CPU profile there (node --cpu-prof)
    const prof = process.env['SETLS_BENCH_CPU_PROF'];
    const p = spawn(process.execPath, [...process.execArgv, ...(prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : []), fileURLToPath(import.meta.url), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-3000)));
    p.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      try {
        if (code !== 0) throw new Error(`exit ${code}`);
        resolve(JSON.parse(line));
      } catch (e) {
        reject(new Error(`child ${args[0]} failed (${(e as Error).message}): ${err}`));
      }
    });
  });
}

// ---------------------------------------------------------------- fill
interface FillRows {
  readonly caId: string;
  readonly attestCert: Uint8Array;
  readonly certTemplate: Uint8Array;
  readonly serialAt: number;
  readonly notAfterAt: number;
  /** UIDs of some enrolled cards of the fill (lock jobs go to them). */
  readonly sample: string[];
}

function utc(t: number): string {
  const d = new Date(t);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
}

function* rows(total: number, f: FillRows, now: number): Generator<{ card: unknown[]; identity: unknown[]; cert: unknown[] }> {
  for (let i = 0; i < total; i++) {
    const uid = randomBytes(16);
    const cardId = randomUUID();
    const idId = randomUUID();
    const serial = randomBytes(16);
    serial[0] = (serial[0]! & 0x7f) | 0x40;
    const notAfter = now + Math.floor(Math.random() * 365 * DAY);
    const der = Buffer.from(f.certTemplate);
    serial.copy(der, f.serialAt);
    der.write(utc(notAfter), f.notAfterAt, 'latin1');
    const lifecycle = i % 10 === 0 ? 'manifest' : 'enrolled';
    if (lifecycle === 'enrolled' && f.sample.length < 200 && i % 97 === 1) f.sample.push(uid.toString('hex'));
    yield {
      card: [cardId, uid, f.attestCert, randomBytes(32), lifecycle, 0x30, JSON.stringify({ site: `bench-${i % LABELS}` }), '{}', now, now],
      identity: [idId, cardId, 1, 'p256', randomBytes(91), randomBytes(32), 'active', now, now],
      cert: [serial, idId, cardId, f.caId, `CN=${uid.toString('hex')}`, JSON.stringify({ dnsNames: ['localhost'], ipAddresses: [] }), now - DAY, notAfter, der, 'good', now],
    };
  }
}

const CARD_COLS = 'id, uid, attest_cert_der, attest_spki_sha256, lifecycle, kvn, labels, profile, created_at, updated_at';
const ID_COLS = 'id, card_id, slot, alg, spki_der, spki_sha256, state, attested_at, created_at';
const CERT_COLS = 'serial, identity_id, card_id, ca_id, subject, san, not_before, not_after, der, status, created_at';

function fillSqlite(file: string, total: number, f: FillRows): void {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('cache_size = -262144'); // 256 MB for the fill: random-key index inserts miss the default 2 MB cache
  const q = (cols: string): string => cols.split(',').map(() => '?').join(', ');
  const ic = db.prepare(`INSERT INTO card (${CARD_COLS}) VALUES (${q(CARD_COLS)})`);
  const ii = db.prepare(`INSERT INTO identity (${ID_COLS}) VALUES (${q(ID_COLS)})`);
  const ce = db.prepare(`INSERT INTO certificate (${CERT_COLS}) VALUES (${q(CERT_COLS)})`);
  const batch = db.transaction((rs: { card: unknown[]; identity: unknown[]; cert: unknown[] }[]) => {
    for (const r of rs) {
      ic.run(...r.card);
      ii.run(...r.identity);
      ce.run(...r.cert);
    }
  });
  let buf: { card: unknown[]; identity: unknown[]; cert: unknown[] }[] = [];
  for (const r of rows(total, f, Date.now())) {
    buf.push(r);
    if (buf.length === 20_000) {
      batch(buf);
      buf = [];
    }
  }
  if (buf.length) batch(buf);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.exec('ANALYZE');
  db.close();
}

async function fillPg(url: string, total: number, f: FillRows): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const types = {
    card: ['text', 'bytea', 'bytea', 'bytea', 'text', 'int8', 'jsonb', 'jsonb', 'int8', 'int8'],
    identity: ['text', 'text', 'int8', 'text', 'bytea', 'bytea', 'text', 'int8', 'int8'],
    cert: ['bytea', 'text', 'text', 'text', 'text', 'jsonb', 'int8', 'int8', 'bytea', 'text', 'int8'],
  };
  const stmt = (table: string, cols: string, ts: string[]): string => `INSERT INTO ${table} (${cols}) SELECT * FROM unnest(${ts.map((t, i) => `$${i + 1}::${t}[]`).join(', ')})`;
  const flush = async (table: 'card' | 'identity' | 'cert', rs: unknown[][]): Promise<void> => {
    const ts = types[table];
    const cols = ts.map((_, i) => rs.map((r) => r[i]));
    await c.query(stmt(table === 'cert' ? 'certificate' : table, table === 'card' ? CARD_COLS : table === 'identity' ? ID_COLS : CERT_COLS, ts), cols);
  };
  let buf: { card: unknown[]; identity: unknown[]; cert: unknown[] }[] = [];
  const go = async (): Promise<void> => {
    await c.query('BEGIN');
    await flush('card', buf.map((r) => r.card));
    await flush('identity', buf.map((r) => r.identity));
    await flush('cert', buf.map((r) => r.cert));
    await c.query('COMMIT');
    buf = [];
  };
  for (const r of rows(total, f, Date.now())) {
    buf.push(r);
    if (buf.length === 5000) await go();
  }
  if (buf.length) await go();
  await c.query('VACUUM ANALYZE');
  await c.end();
}

// ---------------------------------------------------------------- one store
async function runStore(kind: 'sqlite' | 'postgres', o: { cards: number; enrol: number; conc: number; workers: number; enrolOnly?: boolean; loadgen?: 'worker' | 'inline' }): Promise<Record<string, unknown>> {
  const root = mkdtempSync(join(tmpdir(), 'setls-bench-scale-'));
  let dropDb: (() => Promise<void>) | undefined;
  try {
    const dir = join(root, 'op');
    let store = join(dir, 'operator.db');
    if (kind === 'postgres') {
      const { createTempDb } = await import('../test/operator/pg-helpers.js');
      const db = await createTempDb('setls_bench');
      dropDb = db.drop;
      store = db.url;
    }
    const m = await makeManufacturer();
    await initOperator({ dir, manufacturerCaPems: [m.caPem], ...(kind === 'postgres' ? { store } : {}) });
    const op = await Operator.open({ dir, store, verifier: new DefaultAttestationVerifier(SETLS_ATTESTATION_V1) });
    // Enrolling cards: one per enrolment of every enrolment run (measured and warm-up), so that each
    // is a card's first in its process, as in a roll-out — nothing of its attestation is cached
    // (pki/chain.ts caches checks that passed: with a few cards re-enrolling, the certificate's key
    // would be read once per card, not per enrolment).
    const runs = 1 + (o.workers > 0 ? 1 : 0) + (kind === 'postgres' ? 1 : 0);
    const softs = await Promise.all(Array.from({ length: Math.max(64, runs * (o.enrol + 2 * WARMUP)) }, () => SoftCard.create(m)));
    let nextCard = 0;
    await importManifest(op.store, { cards: softs.map((s) => s.manifestEntry()) }, 'bench');
    writeFileSync(join(dir, 'bench-cards.json'), JSON.stringify(softs.map((s) => ({ uid: s.uidHex, cert: Buffer.from(s.attestCertDer).toString('base64'), key: Buffer.from(s.attestKey).toString('base64') }))));
    // a real certificate of this CA, the fill's template
    const mat = op.ca.templateMaterial();
    const serial = Buffer.alloc(16, 0xab);
    serial[0] = 0x41;
    const notAfter = Date.UTC(2030, 0, 2, 3, 4, 5);
    const cert = new LeafTemplate(mat.certDer, mat.key).issue({ spkiDer: new Uint8Array(randomPublicSpki()), serial, subject: 'CN=template', dnsNames: ['localhost'], ipAddresses: [], notBefore: new Date(), notAfter: new Date(notAfter) });
    const fr: FillRows = { caId: op.caId, attestCert: softs[0]!.attestCertDer, certTemplate: cert, serialAt: Buffer.from(cert).indexOf(serial), notAfterAt: Buffer.from(cert).indexOf(utc(notAfter), 0, 'latin1'), sample: [] };
    await op.close();

    const out: Record<string, unknown> = { store: kind, cards: o.cards };
    let t0 = performance.now();
    if (kind === 'sqlite') fillSqlite(store, o.cards, fr);
    else await fillPg(store, o.cards, fr);
    out['fill seconds'] = r1((performance.now() - t0) / 1000);
    out['fill cards/s'] = Math.round(o.cards / ((performance.now() - t0) / 1000));

    // the middle UID (deep pages start after it) and a sample of UIDs for lock jobs
    const s = await openStore(store);
    let middle = Buffer.alloc(16, 0x80);
    const firstPage = await s.listCards({}, middle, 1);
    middle = Buffer.from(firstPage[0]?.uid ?? middle);
    await s.close();

    const sizes: Record<string, number> = {};
    const sizeNow = async (): Promise<void> => {
      if (kind === 'sqlite') {
        const f = (p: string): number => (existsSync(p) ? statSync(p).size : 0);
        sizes['sqlite file + wal MB'] = Math.round((f(store) + f(`${store}-wal`)) / 1e6);
      } else {
        const c = new pg.Client({ connectionString: store });
        await c.connect();
        const r = await c.query(
          "SELECT pg_database_size(current_database()) AS db, pg_total_relation_size('card') AS card, pg_total_relation_size('certificate') AS cert, pg_total_relation_size('identity') AS ident",
        );
        await c.end();
        const row = r.rows[0] as Record<string, string>;
        sizes['pg_database_size MB'] = Math.round(Number(row['db']) / 1e6);
        sizes['pg_total_relation_size(card) MB'] = Math.round(Number(row['card']) / 1e6);
        sizes['pg_total_relation_size(certificate) MB'] = Math.round(Number(row['cert']) / 1e6);
        sizes['pg_total_relation_size(identity) MB'] = Math.round(Number(row['ident']) / 1e6);
      }
    };
    await sizeNow();
    out['size after fill'] = { ...sizes };

    const qargs = ['--child-query', '--store', store, '--middle', middle.toString('hex'), '--uids', fr.sample.join(',')];
    if (!o.enrolOnly) out['queries, 1 node (ms)'] = { load: loadavg().map(r2), ...(await child(qargs)) };
    if (kind === 'postgres' && !o.enrolOnly) {
      const two = await Promise.all([child(qargs), child(qargs)]);
      out['queries, 2 nodes at once (ms), node A'] = { load: loadavg().map(r2), ...two[0] };
      out['queries, 2 nodes at once (ms), node B'] = two[1];
    }

    const enrol = async (nodes: number, workers: number): Promise<Record<string, unknown>> => {
      const dirs = [dir];
      for (let i = 1; i < nodes; i++) {
        const d = join(root, `op${i}`);
        cpSync(dir, d, { recursive: true, filter: (src) => !src.endsWith('.db') && !src.endsWith('-wal') && !src.endsWith('-shm') });
        dirs.push(d);
      }
      const per = Math.floor(o.enrol / nodes);
      const firsts = dirs.map((_, k) => nextCard + k * (per + WARMUP));
      nextCard += nodes * (per + WARMUP);
      const l0 = loadavg()[0]!;
      // backends end with their child's pool: sample while they live, keep each one's last figure
      const pgCpu = new Map<string, number>();
      const dbName = kind === 'postgres' ? decodeURIComponent(new URL(store).pathname.slice(1)) : '';
      const pgBase = kind === 'postgres' ? postgresCpu(dbName) : new Map<string, number>();
      const sample = (): void => {
        for (const [pid, t] of postgresCpu(dbName)) pgCpu.set(pid, t);
      };
      const sampler = kind === 'postgres' ? setInterval(sample, 200) : undefined;
      const rs = await Promise.all(
        dirs.map((d, k) => child(['--child-enrol', '--dir', d, '--store', store, '--n', String(per), '--first', String(firsts[k]), '--conc', String(o.conc), '--workers', String(workers), '--loadgen', o.loadgen ?? 'worker'])),
      );
      clearInterval(sampler);
      let pgMs = 0;
      for (const [pid, t] of pgCpu) pgMs += t - (pgBase.get(pid) ?? 0);
      const start = Math.min(...rs.map((r) => r['start'] as number));
      const end = Math.max(...rs.map((r) => r['end'] as number));
      return {
        'enrolments/s': Math.round((per * nodes) / ((end - start) / 1000)),
        n: per * nodes,
        'p50 ms': r1(Math.max(...rs.map((r) => r['p50'] as number))),
        'p99 ms': r1(Math.max(...rs.map((r) => r['p99'] as number))),
        'CPU ms per enrolment (operator + load generator process; not the PostgreSQL server)': r2(rs.reduce((a, r) => a + (r['cpuMsPerEnrolment'] as number), 0) / rs.length),
        'operator thread (main) CPU ms per enrolment': rs.map((r) => (r['mainCpuMsPerEnrolment'] === null ? null : r2(r['mainCpuMsPerEnrolment'] as number))),
        'load average (1 min) before / after': [r2(l0), r2(loadavg()[0]!)],
        'event loop utilisation (1 = CPU-bound)': rs.map((r) => r2(r['elu'] as number)),
        'load generator': rs[0]!['loadgen'] === 'worker' ? 'worker thread' : 'operator thread',
        ...(rs[0]!['loadgen'] === 'worker' ? { 'load generator worker utilisation': rs.map((r) => r2(r['loadgenElu'] as number)) } : {}),
        ...(rs[0]!['batches'] ? { 'shared batches (nonce issue, persist; with the warm-up)': rs.map((r) => r['batches']) } : {}),
        ...(kind === 'postgres'
          ? {
              'PostgreSQL statements per enrolment': r2(rs.reduce((a, r) => a + (r['queriesPerEnrolment'] as number), 0) / rs.length),
              'pool wait ms per enrolment': r2(rs.reduce((a, r) => a + (r['poolWaitMsPerEnrolment'] as number), 0) / rs.length),
              'PostgreSQL backends CPU ms per enrolment (this database\'s, sampled every 200 ms)': r2(pgMs / (per * nodes)),
            }
          : {}),
      };
    };
    out[`enrol, 1 node, in-thread`] = await enrol(1, 0);
    if (o.workers > 0) out[`enrol, 1 node, ${o.workers} issuer workers`] = await enrol(1, o.workers);
    if (kind === 'postgres') out['enrol, 2 nodes, in-thread'] = await enrol(2, 0);
    await sizeNow();
    out['size at the end'] = { ...sizes };
    return out;
  } finally {
    await dropDb?.().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  }
}

/** CPU time (ms) of the PostgreSQL backends serving database `db`, by pid (/proc; Linux, 100 Hz
 *  ticks; the server's WAL writer and checkpointer, shared with other databases, are not counted). */
function postgresCpu(db: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const st = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const close = st.lastIndexOf(')');
      if (!st.slice(st.indexOf('(') + 1, close).startsWith('postgres')) continue;
      if (!readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(` ${db} `)) continue;
      const f = st.slice(close + 2).split(' ');
      out.set(pid, (Number(f[11]) + Number(f[12])) * 10); // utime, stime (fields 14, 15)
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function randomPublicSpki(): Buffer {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
}

export async function runScaleBench(o: { cards: number; enrol: number; conc: number; workers: number; stores: string[]; enrolOnly?: boolean; loadgen?: 'worker' | 'inline' }): Promise<{ ok: boolean; params: Record<string, unknown>; results: unknown[]; failed?: string }> {
  const params = { ...o, machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`, 'load average at start': loadavg().map(r2) };
  const results: unknown[] = [];
  try {
    for (const st of o.stores) {
      if (st === 'postgres' && !process.env['SETLS_TEST_PG_URL']) {
        results.push({ store: 'postgres', skipped: 'SETLS_TEST_PG_URL is not set' });
        continue;
      }
      results.push(await runStore(st as 'sqlite' | 'postgres', o));
    }
    return { ok: true, params, results };
  } catch (e) {
    return { ok: false, params, results, failed: (e as Error).message };
  }
}

function loadgenMode(v: string | undefined): 'worker' | 'inline' {
  if (v === undefined || v === 'worker' || v === 'inline') return v ?? 'worker';
  throw new Error(`--loadgen worker|inline, not ${v}`);
}

/** The command line (also `npm run bench -- --only scale …`). */
export async function scaleMain(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      cards: { type: 'string', default: '100000' },
      enrol: { type: 'string', default: '3000' },
      conc: { type: 'string', default: '32' },
      workers: { type: 'string', default: '0' },
      stores: { type: 'string', default: 'sqlite,postgres' },
      json: { type: 'boolean', default: false },
      'enrol-only': { type: 'boolean', default: false },
      loadgen: { type: 'string', default: 'worker' },
      'child-enrol': { type: 'boolean' },
      'child-query': { type: 'boolean' },
      dir: { type: 'string' },
      store: { type: 'string' },
      n: { type: 'string' },
      first: { type: 'string', default: '0' },
      middle: { type: 'string' },
      uids: { type: 'string' },
    },
  });
  if (values['child-enrol']) await childEnrol(values.dir!, values.store!, Number(values.n), Number(values.conc), Number(values.workers), loadgenMode(values.loadgen), Number(values.first));
  else if (values['child-query']) await childQuery(values.store!, values.middle!, values.uids!.split(','), 60);
  else {
    const r = await runScaleBench({ cards: Number(values.cards), enrol: Number(values.enrol), conc: Number(values.conc), workers: Number(values.workers), stores: values.stores.split(','), enrolOnly: values['enrol-only'], loadgen: loadgenMode(values.loadgen) });
    process.stdout.write(values.json ? JSON.stringify(r) + '\n' : JSON.stringify(r, null, 2) + '\n');
    process.exitCode = r.ok ? 0 : 1;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await scaleMain(process.argv.slice(2));
