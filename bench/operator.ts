/**
 * The operator section of `npm run bench` (`--only operator`), also runnable alone:
 *   node --import tsx bench/operator.ts [--cards 8] [--locks 20] [--json]
 *
 * Processes: this one runs the operator (`startOperator`: HTTPS API, relay hub, executors, job
 * runner, SQLite store in a temp folder) AND the load generator (the REST client that posts jobs
 * and polls them, and the TLS probe); bench/operator-devices.ts, a child process, holds the devices:
 * K emulated cards in-process (the real card OS with its security domain), one device agent each
 * long-polling the operator on loopback, card 0 also served over HTTPS (`serve https --operator`).
 *
 *   - enrolments/s end to end: K enrol jobs posted at once, until every one succeeded (take
 *     ownership, key generated and attested in the card, verification, issuance, chain installed and
 *     activated; the manifests give the cards' sequence counters, so each enrolment is 2 round trips
 *     through the agents); per-enrolment latency p50/p99 (job created → finished, the operator's own
 *     timestamps);
 *   - lock-to-refusal: POST /v1/cards/{uid}/lock at t0, while a client (node:tls, this process)
 *     opens TLS connections to card 0 one after another; t1 = the end of the first handshake the card
 *     refuses; latency = t1 − t0, p50/p99 over --locks locks (each followed by an unlock and a
 *     handshake that succeeds again). Also the lock job's own duration (created → finished).
 *
 * The outcome, as for bench/coap.ts: { ok, params, results, failed? } with --json; ok false and
 * exit 1 when anything failed (a job that did not succeed, a lock never refused, a crash).
 * SETLS_BENCH_FAIL_SECTION=operator injects a failure once everything is up (tests).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { initOperator } from '../src/operator/init.js';
import { startOperator, type RunningOperator } from '../src/operator/service.js';
import { createAgentToken } from '../src/operator/auth/agent-tokens.js';
import { call } from '../test/operator/helpers.js';

export interface OperatorSection {
  readonly ok: boolean;
  readonly params?: Record<string, number | string>;
  readonly results?: Record<string, number>;
  readonly failed?: string;
}

const HERE = fileURLToPath(new URL('.', import.meta.url));

function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN;
}
const r1 = (x: number): number => Math.round(x * 10) / 10;

/** One TLS handshake to card 0: true when it completed, false when the card (or host) refused it. */
function handshake(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(15_000, () => done(false));
    s.once('secureConnect', () => done(true));
    s.once('error', () => done(false));
    s.once('close', () => done(false));
  });
}

interface Child {
  next(): Promise<Record<string, any>>;
  send(o: unknown): void;
  stop(): Promise<void>;
  stderr(): string;
}

function devices(root: string, k: number): Child {
  const p = spawn(process.execPath, ['--import', 'tsx', join(HERE, 'operator-devices.ts'), root, String(k)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  p.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const queue: Record<string, any>[] = [];
  const waiting: ((v: Record<string, any>) => void)[] = [];
  const exited = new Promise<void>((r) => p.on('exit', () => r()));
  createInterface({ input: p.stdout }).on('line', (l) => {
    let v: Record<string, any>;
    try {
      v = JSON.parse(l);
    } catch {
      return;
    }
    const w = waiting.shift();
    if (w) w(v);
    else queue.push(v);
  });
  return {
    next: () =>
      queue.length
        ? Promise.resolve(queue.shift()!)
        : new Promise((resolve, reject) => {
            waiting.push(resolve);
            void exited.then(() => reject(new Error(`bench/operator-devices.ts exited: ${err}`)));
          }),
    send: (o) => p.stdin.write(JSON.stringify(o) + '\n'),
    stop: async () => {
      p.stdin.end();
      const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
    stderr: () => err,
  };
}

export async function runOperatorBench(o: { cards: number; locks: number }): Promise<OperatorSection> {
  const root = mkdtempSync(join(tmpdir(), 'setls-bench-op-'));
  const params = { cards: o.cards, locks: o.locks, store: 'sqlite', processes: 'operator + load generator here; K cards + K agents in one child process' };
  let svc: RunningOperator | undefined;
  const child = devices(join(root, 'devices'), o.cards);
  try {
    const made = (await child.next())['cards'] as { manufacturerPem: string; masterKeyFile: string; manifest: Record<string, unknown>[] };
    const dir = join(root, 'op');
    const init = await initOperator({ dir, manufacturerCaPems: [made.manufacturerPem], manufacturerKeyFiles: [made.masterKeyFile] });
    svc = await startOperator({ dir, port: 0, quiet: true, writeServeInfo: false, runner: { pollMs: 200, concurrency: Math.max(4, o.cards) } });
    const caFile = join(dir, 'tls-ca.crt');
    const api = (method: string, path: string, body?: unknown) => call(svc!.url, caFile, method, path, { token: init.adminToken, ...(body !== undefined ? { body } : {}) });
    const imp = await api('POST', '/v1/manifests', { cards: made.manifest });
    if (imp.status !== 201) throw new Error(`manifest import: ${imp.status} ${imp.body.toString()}`);
    const tokens: Record<string, string> = {};
    for (let i = 0; i < o.cards; i++) tokens[`bench-${i}`] = await createAgentToken(svc.operator.store, `bench-${i}`);
    child.send({ operator: { url: svc.url, caPem: readFileSync(caFile, 'utf8'), tokens } });
    const httpsPort = ((await child.next())['devices'] as { httpsPort: number }).httpsPort;
    await waitAgents(svc, o.cards);
    if (process.env['SETLS_BENCH_FAIL_SECTION'] === 'operator') throw new Error('injected failure (SETLS_BENCH_FAIL_SECTION=operator)');
    const uids = made.manifest.map((e) => String(e['uid']));

    // ---- enrolments/s: every card at once
    const t0 = performance.now();
    const jobs = await Promise.all(uids.map(async (u) => (await api('POST', `/v1/cards/${u}/enrol`, {})).json().job.id as string));
    const done = await Promise.all(jobs.map((id) => untilDone(api, id)));
    const elapsed = (performance.now() - t0) / 1000;
    const bad = done.filter((j) => j.status !== 'succeeded');
    if (bad.length) throw new Error(`${bad.length} enrolment(s) did not succeed: ${JSON.stringify(bad[0])}`);
    const enrolMs = done.map((j) => Date.parse(j.finishedAt) - Date.parse(j.createdAt));
    const rts = done.map((j) => j.result.roundTrips as number);

    // ---- lock → the next TLS handshake refused
    if (!(await handshake(httpsPort))) throw new Error('card 0 does not serve TLS before the first lock');
    const refusal: number[] = [];
    const lockJob: number[] = [];
    let probes = 0;
    for (let i = 0; i < o.locks; i++) {
      const start = performance.now();
      const post = api('POST', `/v1/cards/${uids[0]}/lock`, {});
      let refusedAt: number | undefined;
      for (let n = 0; n < 2000 && refusedAt === undefined; n++) {
        probes++;
        if (!(await handshake(httpsPort))) refusedAt = performance.now();
      }
      if (refusedAt === undefined) throw new Error(`lock ${i + 1}: the card kept serving`);
      refusal.push(refusedAt - start);
      const lock = await untilDone(api, (await post).json().job.id);
      if (lock.status !== 'succeeded') throw new Error(`lock ${i + 1}: ${JSON.stringify(lock)}`);
      lockJob.push(Date.parse(lock.finishedAt) - Date.parse(lock.createdAt));
      const unlock = await untilDone(api, (await api('POST', `/v1/cards/${uids[0]}/unlock`, {})).json().job.id);
      if (unlock.status !== 'succeeded') throw new Error(`unlock ${i + 1}: ${JSON.stringify(unlock)}`);
      if (!(await handshake(httpsPort))) throw new Error(`unlock ${i + 1}: the card does not serve again`);
    }
    return {
      ok: true,
      params,
      results: {
        'enrolments/s (K cards at once, end to end)': r1(o.cards / elapsed),
        'enrolment p50 ms (job created → finished)': Math.round(pct(enrolMs, 50)),
        'enrolment p99 ms': Math.round(pct(enrolMs, 99)),
        'round trips per enrolment (p50)': pct(rts, 50),
        'lock-to-refusal p50 ms (POST /lock → first refused handshake)': r1(pct(refusal, 50)),
        'lock-to-refusal p99 ms': r1(pct(refusal, 99)),
        'lock job p50 ms (created → finished)': Math.round(pct(lockJob, 50)),
        'lock job p99 ms': Math.round(pct(lockJob, 99)),
        'TLS probes per lock (handshakes until refused)': r1(probes / o.locks),
      },
    };
  } catch (e) {
    return { ok: false, params, failed: `${(e as Error).message}${child.stderr() ? ` (devices: ${child.stderr().slice(-500)})` : ''}` };
  } finally {
    await child.stop();
    await svc?.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

async function untilDone(api: (m: string, p: string) => Promise<{ json(): any }>, id: string): Promise<Record<string, any>> {
  const deadline = Date.now() + 300_000;
  for (;;) {
    const j = (await api('GET', `/v1/jobs/${id}`)).json().job;
    if (['succeeded', 'failed', 'timed_out', 'canceled'].includes(j.status)) return j;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${j.status}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Every agent polls (its heartbeat reached the registry) before the clock starts. */
async function waitAgents(svc: RunningOperator, k: number): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (svc.relay.hosts().length < k) {
    if (Date.now() > deadline) throw new Error(`${svc.relay.hosts().length} of ${k} agents polled`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { cards: { type: 'string', default: '8' }, locks: { type: 'string', default: '20' }, json: { type: 'boolean', default: false } } });
  const r = await runOperatorBench({ cards: Number(values.cards), locks: Number(values.locks) });
  if (values.json) process.stdout.write(JSON.stringify(r) + '\n');
  else {
    process.stdout.write(`operator (${JSON.stringify(r.params)})\n`);
    for (const [k, v] of Object.entries(r.results ?? {})) process.stdout.write(`  ${k.padEnd(64)} ${v}\n`);
    if (!r.ok) process.stdout.write(`  FAILED: ${r.failed}\n`);
  }
  process.exitCode = r.ok ? 0 : 1;
}
